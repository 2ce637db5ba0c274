"""The images the compose test needs, built locally (no registry is reachable here).

A Debian base made with debootstrap and imported, stand-ins for the official images built on
it from Debian's packages (what each one keeps of its official image: STANDINS.md), the
project's own images from its Dockerfile. Each image is tagged with a hash of its inputs and
reused when an image of that tag is already in the engine; a missing one is built.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
STANDINS = HERE / "standins"
SUITE = "bookworm"
# What the project's Dockerfile needs of its base: Python 3.11 with venv, TLS roots.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Bump to rebuild every image when the recipes below change.
RECIPE = "2"


def docker(*args: str, input_bytes: bytes | None = None, timeout: float = 1800,
           check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run the docker client against the engine in DOCKER_HOST (or the default one)."""
    result = subprocess.run(["docker", *args], input=input_bytes, capture_output=True,
                            timeout=timeout, check=False, env=builder_env())
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed ({result.returncode}):\n"
                           f"{result.stdout.decode(errors='replace')[-3000:]}\n"
                           f"{result.stderr.decode(errors='replace')[-3000:]}")
    return result


def exists(tag: str) -> bool:
    """True when the engine holds an image of this tag."""
    return docker("image", "inspect", tag, check=False).returncode == 0


def content_hash(*parts: str | Path) -> str:
    """A short hash of strings and files (directories: every file, sorted by path)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            files: Iterable[Path] = sorted(p for p in part.rglob("*") if p.is_file()) \
                if part.is_dir() else [part]
            for file in files:
                digest.update(str(file.relative_to(part) if part.is_dir() else file.name).encode())
                digest.update(file.read_bytes())
        else:
            digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 .sources or one-line lists)."""
    sources = sorted(Path("/etc/apt").glob("sources.list.d/*.sources"))
    for path in sources:
        match = re.search(r"^URIs:\s*(\S+)", path.read_text(encoding="utf-8"), re.MULTILINE)
        if match and "security" not in match[1]:
            return match[1].rstrip("/")
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt").glob("sources.list.d/*.list")]:
        if path.is_file():
            match = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+" + SUITE + r"\s",
                              path.read_text(encoding="utf-8"), re.MULTILINE)
            if match:
                return match[1].rstrip("/")
    return DEFAULT_MIRROR


def base_tag() -> str:
    """The base image's tag: a hash of what goes into it."""
    ca_bundle = [HOST_CA_BUNDLE] if HOST_CA_BUNDLE.is_file() else []
    return "todo-lab-standin/debian:" + content_hash(
        RECIPE, SUITE, debian_mirror(), ",".join(BASE_PACKAGES), *ca_bundle)


def base_image() -> str:
    """The Debian base: debootstrap minbase + Python, the host's CA bundle, `python`."""
    tag = base_tag()
    if exists(tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="todo-lab-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                        SUITE, str(rootfs), debian_mirror()], check=True, capture_output=True,
                       timeout=1800)
        import_rootfs(rootfs, tag)
    return tag


def import_rootfs(rootfs: Path, tag: str) -> None:
    """Finish a debootstrapped tree as an image base and `docker import` it as tag."""
    (rootfs / "usr/bin/python").unlink(missing_ok=True)
    (rootfs / "usr/bin/python").symlink_to("python3")
    # As Docker's debian images: packages installed in a build start no services.
    policy = rootfs / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n", encoding="utf-8")
    policy.chmod(0o755)
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    if HOST_CA_BUNDLE.is_file():
        # pip and apt inside builds trust what this machine trusts (a TLS-inspecting
        # proxy's CA included).
        (rootfs / bundle.lstrip("/")).unlink(missing_ok=True)
        shutil.copyfile(HOST_CA_BUNDLE, rootfs / bundle.lstrip("/"))
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for item in (rootfs / cache).glob("*"):
            if item.is_file():
                item.unlink()
    tar = subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."],
                         capture_output=True, check=True, timeout=600).stdout
    docker("import", "--change", f"ENV PIP_CERT={bundle} SSL_CERT_FILE={bundle} "
           f"REQUESTS_CA_BUNDLE={bundle} LANG=C.UTF-8",
           "--change", 'CMD ["bash"]', "-", tag, input_bytes=tar)


def standin(name: str, **build_args: str) -> str:
    """The stand-in image for one official image, built from STANDINS/<name>."""
    context = STANDINS / name
    tag = f"todo-lab-standin/{name}:" + content_hash(
        RECIPE, context, *[f"{k}={v}" for k, v in sorted(build_args.items())],
        *[image_id(v) for v in build_args.values()])
    if not exists(tag):
        args = [a for k, v in sorted(build_args.items()) for a in ("--build-arg", f"{k}={v}")]
        docker("build", "--pull=false", *args, "-t", tag, str(context),
               timeout=1800)
    return tag


def image_id(tag: str) -> str:
    """The engine's id of an image (content-addressed)."""
    return docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.decode().strip()


def builder_env() -> dict[str, str]:
    """The environment for docker builds: the classic builder, which every engine has."""
    return {**os.environ, "DOCKER_BUILDKIT": "0"}
