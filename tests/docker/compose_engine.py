"""The compose stack on a real Docker engine, as a workshop room starts it: `make test-docker`.

Run by tests/docker/run.sh (which installs Docker and starts an engine when none answers);
`make test` does not collect this file (its name does not start with test_). Images come
from tests/docker/images.py: the project's own from its Dockerfile, stand-ins for the
official ones (STANDINS.md). The stack runs from a copy of the checkout whose notebooks
belong to a non-root host user, with a password holding "@", "%", ":" and "/". web and worker
run two replicas each (`--scale`); at the end the same compose file is deployed to a one-node
swarm (`docker stack deploy`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from app.observability import names
from stack.switchboard import FaultSwitch
from tests.docker import images
from tests.support.compose import read_env_file
from tests.support.processes import ROOT, free_port

PROJECT = "todolabtest"
HOST_UID = 4242  # the notebooks' owner: a host user who is neither root nor the image's 10001
PASSWORD = "p@ss%40w:rd/x"  # what used to break DATABASE_URL
FAULTS_TOKEN = "compose-test-faults-token"  # the admin route's token: the host switches faults
HEALTH_TIMEOUT_S = 420.0
# The fleet the stack runs: `up --scale web=2 --scale worker=2`, and deploy.replicas in swarm.
REPLICAS = {"web": 2, "worker": 2}
# The one-node swarm's stack: the compose file deployed with `docker stack deploy`.
SWARM_STACK = "todolabswarm"
# Not in the swarm: JupyterLab needs group_add, which the swarm's schema refuses, and Locust is
# its load tool; both stay on compose.
SWARM_LEFT_OUT = ("jupyter", "locust-master", "locust-worker")
# The only services whose ports the swarm publishes (what the test reads): a swarm cannot bind
# a port to one host address, so each port is open on every interface.
SWARM_PUBLISHED = ("caddy", "prometheus")
# The official images the compose file names, each replaced by its stand-in (STANDINS.md).
STANDIN_OF = {"db": "postgres", "redis": "redis", "caddy": "caddy", "prometheus": "prometheus",
              "alertmanager": "alertmanager"}
# Copied into the stack's directory: the build context and the bind mounts, nothing local.
IGNORED = shutil.ignore_patterns(".git", ".venv*", "var", "reports", "__pycache__", ".*_cache",
                                 "*.egg-info", ".env", "node_modules")


def compose_command() -> list[str]:
    """Compose v2 (`docker compose`) when the client has it, else Debian's docker-compose 1.29."""
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return ["docker", "compose"] if plugin.returncode == 0 else ["docker-compose"]


@dataclass
class Stack:
    """A compose project started from a copy of the checkout."""

    workdir: Path
    files: list[Path]
    env_file: Path
    env: dict[str, str]
    command: list[str]
    failed: str = ""

    def compose(self, *args: str, timeout: float = 900, check: bool = True,
                extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """docker compose with this project's name, files and .env."""
        argv = [*self.command, "-p", PROJECT, "--project-directory", str(self.workdir),
                "--env-file", str(self.env_file)]
        for file in self.files:
            argv += ["-f", str(file)]
        result = subprocess.run([*argv, *args], cwd=self.workdir, capture_output=True, text=True,
                                timeout=timeout, check=False,
                                env={**images.builder_env(), **(extra_env or {})})
        if check and result.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        return result

    def url(self, variable: str, path: str = "/") -> str:
        """A published port on 127.0.0.1 (the only host traffic this test makes)."""
        return f"http://127.0.0.1:{self.env[variable]}{path}"

    def output(self, service: str, *argv: str) -> str:
        """What a command prints in a running container of a service (`exec`)."""
        return self.compose("exec", "-T", service, *argv, check=False).stdout

    def containers(self, service: str) -> list[str]:
        """The ids of a service's containers (one per replica)."""
        return self.compose("ps", "-q", service).stdout.split()

    def health(self) -> dict[str, str]:
        """Each service's health status (or state, when it has stopped), one per replica:
        "healthy" only when every replica is."""
        statuses = {}
        for service in yaml.safe_load(self.files[0].read_text(encoding="utf-8"))["services"]:
            replicas = []
            for cid in self.containers(service):
                state = json.loads(images.docker("inspect", "--format", "{{json .State}}", cid)
                                   .stdout.decode())
                replicas.append(state.get("Health", {}).get("Status") or state["Status"])
            statuses[service] = ",".join(sorted(set(replicas))) or "absent"
        return statuses


def write_stack_files(workdir: Path, base: str, standins: dict[str, str]) -> list[Path]:
    """A copy of docker-compose.yml without the top-level name (Compose 1.29 refuses it; the
    project name is given by -p), and an override naming the locally built images."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    compose.pop("name", None)
    main = workdir / "compose.test.yml"
    main.write_text(yaml.safe_dump(compose, sort_keys=False), encoding="utf-8")
    override: dict[str, Any] = {"services": {
        "web": {"build": {"context": ".", "target": "runtime", "args": {"PYTHON_IMAGE": base}}},
        "jupyter": {"build": {"context": ".", "target": "lab", "args": {"PYTHON_IMAGE": base}}},
        **{service: {"image": tag} for service, tag in standins.items()},
    }}
    extra = workdir / "compose.standins.yml"
    extra.write_text(yaml.safe_dump(override, sort_keys=False), encoding="utf-8")
    return [main, extra]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """Images built, the stack's directory and .env written; torn down with its volumes."""
    started = time.monotonic()
    base = images.base_image()
    print(f"\nbase ready after {time.monotonic() - started:.0f} s", flush=True)
    # The stand-ins build while the project's images do: both wait mostly on downloads.
    pool = ThreadPoolExecutor(max_workers=2)
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    pending = {service: pool.submit(images.standin, name, BASE=base)
               for service, name in STANDIN_OF.items() if service in services}
    with tempfile.TemporaryDirectory(prefix="todo-lab-compose-") as tmp:
        workdir = Path(tmp) / "lab"
        shutil.copytree(ROOT, workdir, ignore=IGNORED, symlinks=True)
        for item in (workdir / "workshop").iterdir():  # a fresh clone's: no working copies yet
            if item.name != ".gitignore":
                shutil.rmtree(item) if item.is_dir() else item.unlink()
        uid = HOST_UID if os.geteuid() == 0 else os.getuid()
        gid = HOST_UID if os.geteuid() == 0 else os.getgid()
        if os.geteuid() == 0:
            # A host user's clone: ./workshop (the working copies) is theirs.
            shutil.chown(workdir / "workshop", uid, gid)
            for item in (workdir / "workshop").iterdir():
                shutil.chown(item, uid, gid)
        env = {**read_env_file(), "POSTGRES_PASSWORD": PASSWORD, "SECRET_KEY": "compose-test-secret",
               "JUPYTER_TOKEN": "compose-test-token", "LAB_UID": str(uid), "LAB_GID": str(gid),
               "FAULTS_TOKEN": FAULTS_TOKEN}
        for variable in ("CADDY_PORT", "PROMETHEUS_PORT", "ALERTMANAGER_PORT", "JAEGER_UI_PORT",
                         "LOCUST_PORT", "JUPYTER_PORT"):
            env[variable] = str(free_port())
        env_file = workdir / ".env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()), encoding="utf-8")
        result = Stack(workdir, write_stack_files(workdir, base, {}), env_file, env,
                       compose_command())
        try:
            result.compose("build", "web", "jupyter", timeout=3600)
            print(f"project images built after {time.monotonic() - started:.0f} s", flush=True)
            standins = {service: job.result(timeout=3600) for service, job in pending.items()}
            print(f"stand-ins ready after {time.monotonic() - started:.0f} s", flush=True)
            files = result.files = write_stack_files(workdir, base, standins)
            # The Jaeger stand-in runs the project's fake in the lab image, so it comes last.
            jaeger = images.standin("jaeger", TOOLS_IMAGE="todo-observability-lab-tools:local")
            files.append(workdir / "compose.jaeger.yml")
            files[-1].write_text(yaml.safe_dump({"services": {"jaeger": {"image": jaeger}}}),
                                 encoding="utf-8")
            yield result
        finally:
            pool.shutdown(cancel_futures=True)
            if result.compose("ps", "-q", check=False).stdout.strip():
                print(result.compose("logs", "--no-color", "--tail", "30", check=False).stdout[-8000:])
            result.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False)
            leftovers = images.docker("volume", "ls", "-q", "--filter", f"name={PROJECT}_",
                                      check=False).stdout.decode().split()
            assert not leftovers, f"volumes left behind: {leftovers}"


def test_jupyter_refuses_a_workshop_directory_it_cannot_write(stack: Stack) -> None:
    """Failure case 3: the image's uid over working copies a host user owns: one line, at start."""
    result = stack.compose("run", "--rm", "--no-deps", "-T", "--user", "10001:10001", "jupyter",
                           check=False, timeout=300)
    assert result.returncode == 78, result.stdout + result.stderr
    assert "./workshop is not writable by uid 10001" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def running(stack: Stack) -> Iterator[Stack]:
    """`up -d`, then every service healthy (tried once: later tests see the same failure)."""
    if getattr(stack, "failed", ""):
        pytest.fail(f"the stack did not come up: {stack.failed}")
    try:
        yield wait_healthy(stack)
    except AssertionError as exc:
        stack.failed = str(exc).splitlines()[0]
        raise


def wait_healthy(stack: Stack) -> Stack:
    """Start the stack, web and worker scaled out, and wait until every replica is healthy."""
    scale = [arg for service, count in REPLICAS.items() for arg in ("--scale", f"{service}={count}")]
    stack.compose("up", "-d", *scale, timeout=1200)
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while True:
        statuses = stack.health()
        if all(status == "healthy" for status in statuses.values()):
            return stack
        if time.monotonic() > deadline:
            raise AssertionError(f"not healthy after {HEALTH_TIMEOUT_S:g} s: {statuses}")
        time.sleep(3)


def http() -> requests.Session:
    """A session that talks to 127.0.0.1 directly (no proxy from the environment)."""
    session = requests.Session()
    session.trust_env = False
    return session


def test_the_app_answers_through_caddys_published_port(running: Stack) -> None:
    """Add, export, download: the CSV holds the todo; the password with "@" did its job."""
    with http() as client:
        added = client.post(running.url("CADDY_PORT", "/add"), data={"task": "Buy oat milk"},
                            allow_redirects=False, timeout=30)
        assert added.status_code == 303, added.text
        listed = client.get(running.url("CADDY_PORT", "/api/todos"), timeout=30).json()
        assert "Buy oat milk" in json.dumps(listed)
        started = client.post(running.url("CADDY_PORT", "/export"), timeout=30)
        assert started.status_code == 202, started.text
        task_id = started.json()["task_id"]
        deadline = time.monotonic() + 120
        state = ""
        while time.monotonic() < deadline:
            state = client.get(running.url("CADDY_PORT", f"/tasks/{task_id}"), timeout=30).json()["state"]
            if state in ("succeeded", "failed"):
                break
            time.sleep(0.5)
        assert state == "succeeded"
        csv = client.get(running.url("CADDY_PORT", f"/download/{task_id}"), timeout=30)
        assert csv.status_code == 200 and "Buy oat milk" in csv.text
        assert "text/csv" in csv.headers["Content-Type"]
        trace_id = started.headers["traceparent"].split("-")[1]
        # A span reached the receiver (the Jaeger stand-in), from web and from the worker.
        deadline = time.monotonic() + 60
        found: set[str] = set()
        while time.monotonic() < deadline and found != {"todo-web", "todo-worker"}:
            answer = client.get(running.url("JAEGER_UI_PORT", f"/api/traces/{trace_id}"), timeout=30)
            if answer.status_code == 200:
                data = answer.json()["data"][0]
                found = {p["serviceName"] for p in data["processes"].values()}
            time.sleep(1)
        assert found == {"todo-web", "todo-worker"}


def test_the_host_switches_the_containers_faults_through_the_one_switchboard_client(
        running: Stack) -> None:
    """`lab fault` on the host and FaultSwitch (every command's client) reach the containers'
    switchboard through the admin route (the host cannot reach their volume); the jupyter
    container's client, which uses the shared file, sees the same faults."""
    host_env = {**os.environ, "LAB_APP_URL": running.url("CADDY_PORT", "").rstrip("/"),
                "FAULTS_TOKEN": FAULTS_TOKEN, "VAR_DIR": str(running.workdir / "host-var")}
    switch = FaultSwitch.for_env(host_env)
    assert switch.faults_file is None
    try:
        lab = subprocess.run([sys.executable, "-m", "lab.cli", "fault", "set", "error_rate.api.list_todos=1"],
                             env=host_env, capture_output=True, text=True, timeout=60, check=False)
        assert lab.returncode == 0, lab.stderr
        with http() as client:
            answers = [client.get(running.url("CADDY_PORT", "/api/todos"), timeout=30) for _ in range(10)]
        assert {a.status_code for a in answers} == {500}
        inside = running.compose("exec", "-T", "jupyter", "python", "-c",
                                 "from stack.switchboard import FaultSwitch; s = FaultSwitch.for_env(); "
                                 "print(s.faults_file, s.current())", timeout=120)
        assert "/var/lib/todo/faults/faults.json {'error_rate.api.list_todos': 1.0}" in inside.stdout
    finally:
        assert switch.clear() == {}
    with http() as client:
        assert client.get(running.url("CADDY_PORT", "/api/todos"), timeout=30).status_code == 200


def test_prometheus_sees_every_target_up(running: Stack) -> None:
    """web, worker, caddy and Prometheus itself, each scraped and up."""
    with http() as client:
        deadline = time.monotonic() + 120
        while True:
            targets = client.get(running.url("PROMETHEUS_PORT", "/api/v1/targets"),
                                 timeout=30).json()["data"]["activeTargets"]
            health = {t["labels"]["job"]: t["health"] for t in targets}
            if set(health) >= {"web", "worker", "caddy", "prometheus"} and \
                    set(health.values()) == {"up"}:
                break
            assert time.monotonic() < deadline, health
            time.sleep(2)


def replica_targets(prometheus: str, timeout: float = 120) -> dict[str, set[str]]:
    """The instances of the web and worker targets, once each job has its REPLICAS, all up."""
    deadline = time.monotonic() + timeout
    with http() as client:
        while True:
            targets = client.get(f"{prometheus}/api/v1/targets", timeout=30).json()["data"]["activeTargets"]
            found = {job: {t["labels"]["instance"]: t["health"] for t in targets
                           if t["labels"]["job"] == job} for job in REPLICAS}
            if all(len(found[job]) == count and set(found[job].values()) == {"up"}
                   for job, count in REPLICAS.items()):
                return {job: set(instances) for job, instances in found.items()}
            assert time.monotonic() < deadline, found
            time.sleep(2)


def log_file(service: str) -> str:
    """Where a service's replicas append their JSON lines on the logs volume (its LOG_FILE)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    return str(compose["services"][service]["environment"]["LOG_FILE"])


def logged(run_in_container: Callable[..., str], service: str, text: str) -> list[dict[str, Any]]:
    """The JSON lines of a service's log file that hold text, read inside a container."""
    out = run_in_container("grep", "-h", "-F", "--", text, log_file(service))
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def marked_requests(base_url: str, count: int) -> str:
    """count GETs of the todo list through Caddy, each with a request id of one fresh marker."""
    marker = f"fleet-{uuid.uuid4().hex[:12]}"
    with http() as client:
        for i in range(count):
            answer = client.get(f"{base_url}/api/todos", headers={"X-Request-ID": f"{marker}-{i:03d}"},
                                timeout=30)
            assert answer.status_code == 200, answer.text
    return marker


def served_by(run_in_container: Callable[..., str], marker: str, count: int) -> Counter[str]:
    """How many of the marked requests each web replica logged, by the `instance` of its access
    lines on the logs volume (once all count lines are there)."""
    deadline = time.monotonic() + 30
    while True:
        access = [line for line in logged(run_in_container, "web", marker)
                  if line.get(names.F_LOGGER) == names.ACCESS_LOGGER
                  and str(line.get(names.F_REQUEST_ID, "")).startswith(marker)]
        if len(access) >= count or time.monotonic() > deadline:
            return Counter(str(line.get(names.F_INSTANCE)) for line in access)
        time.sleep(1)


def counted_per_target(prometheus: str) -> dict[str, float]:
    """The todo-list requests each web target has counted so far (instance -> count)."""
    query = (f'sum by (instance) ({names.HTTP_REQUEST_DURATION}_count'
             f'{{job="web", endpoint="api.list_todos"}})')
    with http() as client:
        result = client.get(f"{prometheus}/api/v1/query", params={"query": query},
                            timeout=30).json()["data"]["result"]
    return {r["metric"]["instance"]: float(r["value"][1]) for r in result}


def assert_load_reaches_every_web_replica(caddy: str, prometheus: str,
                                          run_in_container: Callable[..., str], count: int) -> None:
    """count requests through Caddy: Prometheus counts some on every web target (and all of
    them in total), and the access lines on the logs volume come from as many replicas."""
    targets = replica_targets(prometheus)["web"]
    before = counted_per_target(prometheus)
    marker = marked_requests(caddy, count)
    deadline = time.monotonic() + 30
    while True:  # until every target has been scraped since
        after = counted_per_target(prometheus)
        counted = {instance: after.get(instance, 0) - before.get(instance, 0) for instance in targets}
        if sum(counted.values()) >= count or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert sum(counted.values()) == count and min(counted.values()) > 0, counted
    served = served_by(run_in_container, marker, count)
    assert sum(served.values()) == count, served
    assert len(served) == REPLICAS["web"] and min(served.values()) > 0, served
    # Each replica's lines name it as Prometheus names its target (web is on two networks).
    assert set(served) == targets, (served, targets)


def test_every_replica_is_a_prometheus_target_and_each_worker_a_node_of_its_own(
        running: Stack) -> None:
    """`--scale web=2 --scale worker=2`: Prometheus finds each replica by Docker's DNS, a target
    of its own and up; a worker's target is named (instance) as the worker names itself in its
    log lines, and each worker answers Celery's ping under a node name of its own
    (worker@<its hostname>)."""
    targets = replica_targets(running.url("PROMETHEUS_PORT", "").rstrip("/"))
    started = {str(line.get(names.F_INSTANCE))
               for line in logged(partial(running.output, "jupyter"), "worker", "starting todo-worker")}
    assert targets["worker"] <= started, (targets, started)
    ping = running.compose("exec", "-T", "worker", "celery", "-A", "worker.make_celery", "inspect",
                           "ping", "--timeout", "10", timeout=120)
    nodes = set(re.findall(r"->\s+(\S+): OK", ping.stdout))
    assert nodes == {f"worker@{cid[:12]}" for cid in running.containers("worker")}, ping.stdout


def test_load_through_caddy_reaches_every_web_replica(running: Stack) -> None:
    """40 requests through Caddy's published port: every web replica served some of them, as
    Prometheus counts them per target and as the replicas' own access lines say."""
    assert_load_reaches_every_web_replica(running.url("CADDY_PORT", "").rstrip("/"),
                                          running.url("PROMETHEUS_PORT", "").rstrip("/"),
                                          partial(running.output, "jupyter"), 40)


def test_a_recorded_load_run_and_every_notebook_run_in_the_jupyter_container(running: Stack) -> None:
    """`lab load` against the stack (with a fault window), its profile from the LOAD_* settings of
    the container's environment, then every notebook, unchanged."""
    settings = ["-e", "LOAD_WAIT=0.2,0.8", "-e", "LOAD_USERS=8", "-e", "LOAD_DURATION=60", "-e",
                "LOAD_SPAWN_RATE=4", "-e", "LOAD_SHAPE=steady"]
    load = running.compose("exec", "-T", *settings, "jupyter", "python", "-m", "lab.cli", "load",
                           "--fault", "error_rate.api.list_todos=0.2", timeout=600, check=False)
    assert load.returncode == 0, load.stdout + load.stderr
    assert "load run: shape=steady users=8 duration=60s" in load.stdout, load.stdout
    assert "run recorded: /var/lib/todo/reports/last-run.json" in load.stdout
    notebooks = running.compose("exec", "-T", "jupyter", "python", "-m", "lab.cli", "notebook", "--run",
                                timeout=1800, check=False)
    assert notebooks.returncode == 0, notebooks.stdout[-6000:] + notebooks.stderr[-6000:]
    expected = sorted(p.name for p in (running.workdir / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    assert expected and [f"notebook {name}: ok" for name in expected] == \
        [line for line in notebooks.stdout.splitlines() if line.startswith("notebook ")]


def test_a_notebook_saved_in_jupyterlab_belongs_to_the_host_user(running: Stack) -> None:
    """Failure case 3 fixed: with LAB_UID/LAB_GID, saving works and the file stays the user's;
    JupyterLab serves the working copies in ./workshop, made at start from ./notebooks, whose
    tracked files stay as they were."""
    tracked = sorted(p.name for p in (running.workdir / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    copies = running.workdir / "workshop"
    assert tracked and [(copies / name).read_bytes() for name in tracked] == \
        [(running.workdir / "notebooks" / name).read_bytes() for name in tracked]
    assert all((copies / name).stat().st_uid == int(running.env["LAB_UID"]) for name in tracked)
    body = {"type": "notebook", "format": "json",
            "content": {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}}
    with http() as client:
        saved = client.put(running.url("JUPYTER_PORT", "/api/contents/saved-by-test.ipynb"),
                           json=body, timeout=30,
                           headers={"Authorization": f"token {running.env['JUPYTER_TOKEN']}"})
    assert saved.status_code in (200, 201), saved.text
    path = copies / "saved-by-test.ipynb"
    assert path.is_file() and path.stat().st_uid == int(running.env["LAB_UID"])


def test_a_changed_password_stops_web_with_one_line(running: Stack) -> None:
    """Failure case 4's other half: the database keeps its first password; web says so, once."""
    result = running.compose("run", "--rm", "--no-deps", "-T", "-e", "PGPASSWORD=not-the-first-one",
                             "web", "python", "-m", "app.migrate", check=False, timeout=300)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 1, output
    said = [line for line in output.splitlines() if line.startswith("app.migrate:")]
    assert len(said) == 1 and said[0].startswith("app.migrate: cannot use the database:"), output
    assert 'password authentication failed for user "todo"' in said[0]
    assert "Traceback" not in output


# --- the same compose file on a one-node swarm -------------------------------------------


def swarm_stack_file(stack: Stack, env: Mapping[str, str]) -> Path:
    """docker-compose.yml as `docker stack deploy` takes it: `compose config` renders it (the
    .env and env interpolated, paths absolute, the stand-ins merged), then what the swarm's
    (v3) schema refuses or ignores is made explicit:

    - refused: `depends_on` conditions (the swarm restarts a task until what it needs is up),
      ipam `ip_range`, `group_add`; ignored: `build` (the images are the ones compose built),
      `restart`, a fixed address, `tmpfs` as a service key (a tmpfs mount instead);
    - every service answers by DNS round robin (endpoint_mode dnsrr): one A record per task,
      which is what Caddy's and Prometheus's discovery ask for, and no virtual IP (the routing
      mesh's IPVS, which some kernels lack, this one's included);
    - ports are published in host mode (no routing mesh), on every interface;
    - web and worker run REPLICAS replicas.
    """
    rendered = yaml.safe_load(stack.compose("config", extra_env=dict(env)).stdout)
    # Compose v2 names the project and each network and volume after it; the stack's name
    # prefixes them in the swarm.
    rendered.pop("name", None)
    for section in ("networks", "volumes"):
        for spec in rendered.get(section, {}).values():
            if spec:
                spec.pop("name", None)
    for cfg in rendered["networks"]["front-net"]["ipam"]["config"]:
        cfg.pop("ip_range", None)
    services = rendered["services"]
    for name in SWARM_LEFT_OUT:
        services.pop(name)
    for name, service in services.items():
        for key in ("build", "depends_on", "restart", "group_add"):
            service.pop(key, None)
        networks = service.get("networks")
        if isinstance(networks, dict):
            service["networks"] = {net: {k: v for k, v in (spec or {}).items()
                                         if k != "ipv4_address"} or None
                                   for net, spec in networks.items()}
        for target in service.pop("tmpfs", None) or []:
            service.setdefault("volumes", []).append({"type": "tmpfs", "target": target})
        ports = service.pop("ports", None) or []
        if name in SWARM_PUBLISHED:
            service["ports"] = [{**published_port(port), "mode": "host"} for port in ports]
        service["deploy"] = {"endpoint_mode": "dnsrr"}
        if name in REPLICAS:
            service["deploy"]["replicas"] = REPLICAS[name]
    path = stack.workdir / "swarm.stack.yml"
    path.write_text(yaml.safe_dump(rendered, sort_keys=False), encoding="utf-8")
    return path


def published_port(port: str | dict[str, Any]) -> dict[str, int]:
    """target and published of a port as `compose config` writes it: "ip:published:target/tcp"
    (docker-compose 1.29) or a mapping (Compose v2)."""
    if isinstance(port, dict):
        return {"target": int(port["target"]), "published": int(port["published"])}
    _, published, target = port.split("/")[0].rsplit(":", 2)
    return {"target": int(target), "published": int(published)}


@pytest.fixture
def swarm() -> Iterator[None]:
    """A one-node swarm on this engine (`docker swarm init`), left afterwards; an engine already
    in a swarm is used as it is and stays in it."""
    state = images.docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.decode().strip()
    if state == "active":
        print("\nthe engine is in a swarm already: deploying there, not leaving it", flush=True)
        yield
        return
    bridge = images.docker("network", "inspect", "docker_gwbridge", check=False).returncode == 0
    init = images.docker("swarm", "init", "--advertise-addr", "127.0.0.1", check=False)
    if init.returncode != 0:
        pytest.skip("docker swarm init failed on this engine, so the swarm part cannot run: "
                    + init.stderr.decode(errors="replace").strip())
    try:
        yield
    finally:
        images.docker("swarm", "leave", "--force", check=False)
        if not bridge:  # the swarm's bridge to the host, which leaving keeps
            images.docker("network", "rm", "docker_gwbridge", check=False)


def swarm_containers(label: str, value: str) -> list[str]:
    """The ids of the running containers of the swarm with this label's value."""
    return images.docker("ps", "-q", "--filter", f"label={label}={value}").stdout.decode().split()


def container_output(container: str, *argv: str) -> str:
    """What a command prints in a running container (`docker exec`)."""
    return images.docker("exec", container, *argv, check=False).stdout.decode()


def wait_swarm_gone(label: str, value: str, timeout: float = 120) -> None:
    """Until no container of the swarm with this label's value is left."""
    deadline = time.monotonic() + timeout
    while swarm_containers(label, value):
        assert time.monotonic() < deadline, f"containers with {label}={value} still there"
        time.sleep(1)


def remove_swarm_stack() -> None:
    """`docker stack rm` and the stack's volumes (which it keeps). web and worker go first,
    while Redis still answers: a Celery worker whose broker is gone retries for about 40 s
    before it stops."""
    images.docker("service", "rm", f"{SWARM_STACK}_worker", f"{SWARM_STACK}_web", check=False)
    for service in ("worker", "web"):
        wait_swarm_gone("com.docker.swarm.service.name", f"{SWARM_STACK}_{service}")
    images.docker("stack", "rm", SWARM_STACK, check=False)
    wait_swarm_gone("com.docker.stack.namespace", SWARM_STACK)
    deadline = time.monotonic() + 60
    while True:  # a volume is released a moment after its container has gone
        volumes = images.docker("volume", "ls", "-q", "--filter",
                                f"name={SWARM_STACK}_").stdout.decode().split()
        if volumes:
            images.docker("volume", "rm", *volumes, check=False)
        if not volumes or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not volumes, f"volumes left behind: {volumes}"


def test_the_same_compose_file_deploys_to_a_one_node_swarm(stack: Stack, swarm: None) -> None:
    """`docker stack deploy` with the compose file (rendered for the swarm's schema, the images
    compose built): web runs 2/2 replicas, worker 2/2, the app answers through Caddy's published
    port, Prometheus finds every replica by Docker's DNS, and every web replica serves some."""
    started = time.monotonic()
    # Beside the compose stack: ports of its own, and a front subnet of its own.
    env = {"CADDY_PORT": str(free_port()), "PROMETHEUS_PORT": str(free_port()),
           "FRONT_SUBNET": "172.16.81.0/24", "FRONT_IP_RANGE": "172.16.81.0/25",
           "CADDY_IP": "172.16.81.250"}
    path = swarm_stack_file(stack, env)
    caddy, prometheus = (f"http://127.0.0.1:{env[v]}" for v in ("CADDY_PORT", "PROMETHEUS_PORT"))
    try:
        # --resolve-image never: the images are this engine's own; no registry to ask.
        images.docker("stack", "deploy", "--resolve-image", "never", "-c", str(path), SWARM_STACK)
        deadline = time.monotonic() + 240
        replicas: dict[str, str] = {}
        while True:
            out = images.docker("stack", "services", "--format", "{{.Name}} {{.Replicas}}",
                                SWARM_STACK).stdout.decode()
            replicas = {line.split()[0].removeprefix(f"{SWARM_STACK}_"): line.split()[1]
                        for line in out.splitlines() if line.strip()}
            counts = {name: tuple(value.split("/")) for name, value in replicas.items()}
            if replicas and all(running == wanted != "0" for running, wanted in counts.values()):
                break
            assert time.monotonic() < deadline, f"swarm services not all running: {replicas}"
            time.sleep(2)
        assert {name: replicas[name] for name in REPLICAS} == \
            {name: f"{count}/{count}" for name, count in REPLICAS.items()}
        print(f"swarm: every service running after {time.monotonic() - started:.0f} s", flush=True)
        deadline = time.monotonic() + 60
        with http() as client:
            while True:  # Caddy's first DNS answer may come before the replicas'
                try:
                    if client.get(f"{caddy}/api/todos", timeout=10).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                assert time.monotonic() < deadline, "the app does not answer through the swarm's Caddy"
                time.sleep(1)
        web = swarm_containers("com.docker.swarm.service.name", f"{SWARM_STACK}_web")[0]
        assert_load_reaches_every_web_replica(caddy, prometheus, partial(container_output, web), 20)
        print(f"swarm: checked after {time.monotonic() - started:.0f} s", flush=True)
    finally:
        remove_swarm_stack()
        print(f"swarm: removed after {time.monotonic() - started:.0f} s", flush=True)
