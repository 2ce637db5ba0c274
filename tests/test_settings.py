"""Settings: defaults that need no service, and a clear one-line error for each bad value."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from analysis.lab_context import LabContext
from app.environment import LabEnvironment
from app.settings import Settings, SettingsError
from loadtests.config import LoadConfig
from loadtests.shapes import profile_from
from stack.config import LabConfig
from stack.errors import StackError
from stack.switchboard import FaultSwitch
from tests.support.processes import ROOT


def test_defaults_need_no_external_service(tmp_path: Path) -> None:
    settings = Settings.from_env({"VAR_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path}/todo.db"
    assert settings.celery_broker_url == f"sqla+sqlite:///{tmp_path}/broker.db"
    assert settings.celery_result_backend == f"db+sqlite:///{tmp_path}/results.db"
    assert settings.export_dir == tmp_path / "exports"
    assert (settings.app_env, settings.log_level, settings.tracing_enabled) == ("development", "INFO", False)


def test_redis_broker_doubles_as_result_store() -> None:
    settings = Settings.from_env({"CELERY_BROKER_URL": "redis://h:6379/0"})
    assert settings.celery_result_backend == "redis://h:6379/0"


def test_bare_postgresql_url_uses_psycopg2() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://u:p@h/db"})
    assert settings.database_url == "postgresql+psycopg2://u:p@h/db"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"APP_ENV": "staging"}, "APP_ENV='staging' is invalid"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL='LOUD' is invalid"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL has unsupported scheme 'mysql'"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL has unsupported scheme '(none)'"),
        ({"CELERY_BROKER_URL": "amqp://x"}, "CELERY_BROKER_URL has unsupported scheme 'amqp'"),
        ({"PAGE_SIZE": "ten"}, "PAGE_SIZE='ten' is invalid: expected an integer"),
        ({"PAGE_SIZE": "0"}, "PAGE_SIZE=0 is out of range"),
        ({"GUNICORN_WORKERS": "500"}, "GUNICORN_WORKERS=500 is out of range"),
        ({"TRACING_ENABLED": "maybe"}, "TRACING_ENABLED='maybe' is invalid"),
        ({"BROKER_TIMEOUT": "-1"}, "BROKER_TIMEOUT=-1 is out of range: expected 0.1..60"),
        ({"TRUSTED_PROXIES": "10.0.0.0/8,caddy"}, "TRUSTED_PROXIES holds 'caddy'"),
        ({"APP_ENV": "production"}, "SECRET_KEY must be set when APP_ENV=production"),
    ],
)
def test_bad_values_fail_with_a_message_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env(env)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "argv",
    [
        [sys.executable, "-c", "import app.wsgi"],
        [str(Path(sys.executable).parent / "celery"), "-A", "worker.make_celery", "inspect", "ping"],
        [str(Path(sys.executable).parent / "gunicorn"), "-c", "stack/gunicorn.conf.py", "--check-config"],
    ],
    ids=["wsgi", "worker", "gunicorn"],
)
def test_processes_refuse_to_start_with_one_clear_line(argv: list[str], tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "VAR_DIR": str(tmp_path), "LOG_LEVEL": "verbose"}
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    assert any("configuration error: LOG_LEVEL='verbose' is invalid" in line for line in lines), lines
    assert not any("Traceback" in line for line in lines), lines


def _refusal(read: Callable[[dict[str, str]], object], env: dict[str, str]) -> str:
    """The message a reader of the lab's settings refuses env with."""
    with pytest.raises((ValueError, StackError)) as error:  # the launcher's is a StackError
        read(env)
    return str(error.value)


@pytest.mark.parametrize("read, name", [
    (Settings.from_env, "PAGE_SIZE"),  # the app's
    (LabEnvironment.from_env, "WEB_PORT"),  # the lab's environment: a port
    (LabEnvironment.from_env, "LAB_SCRAPE_INTERVAL_S"),
    (lambda env: LabConfig.from_env(env), "CADDY_PORT"),  # the launcher's, through the same
    (LoadConfig.from_env, "LOAD_EXPORT_MAX_POLLS"),  # the load's
    (lambda env: profile_from(env), "LOAD_USERS"),  # the load profile's
])
def test_every_reader_says_a_bad_number_in_the_same_words(read: Callable[[dict[str, str]], object],
                                                          name: str) -> None:
    """One parser of a setting's number: the same mistake reads the same wherever it is made."""
    said = _refusal(read, {name: "ten"})
    assert re.fullmatch(rf"{name}='ten' is invalid: expected (an integer|a number)", said), said
    said = _refusal(read, {name: "-3"})
    bounds = r"(above \d+( and at most \d+)?|at least \d+|\d+\.\.\d+)"
    assert re.fullmatch(rf"{name}=-3 is out of range: expected {bounds}", said), said


def test_the_lab_environment_is_resolved_once_for_every_reader(tmp_path: Path) -> None:
    """The launcher, the switchboard client and a notebook's context find the same lab from the
    same variables: VAR_DIR made absolute, the app's URL, Prometheus's, the faults file."""
    env = {"VAR_DIR": "relative/var", "CADDY_PORT": "18080", "PROMETHEUS_PORT": "19090",
           "LAB_REPORTS_DIR": str(tmp_path / "reports")}
    launcher = LabConfig.from_env(env)
    context = LabContext.from_env(env)
    switch = FaultSwitch.for_env(env)
    settings = Settings.from_env(env)
    var = (Path.cwd() / "relative/var").resolve()
    assert launcher.var_dir == context.var_dir == settings.var_dir == var
    assert launcher.environment.app_url == context.app_url == switch.app_url == "http://127.0.0.1:18080"
    assert context.prometheus_url == "http://127.0.0.1:19090"
    assert switch.faults_file == settings.faults_file == var / "faults.json"
    assert context.reports_dir == launcher.environment.reports_dir == tmp_path / "reports"
    # A stack started elsewhere (compose) is named by its URLs, which win over the ports.
    elsewhere = LabEnvironment.from_env({**env, "LAB_APP_URL": "http://127.0.0.1:80/",
                                         "PROMETHEUS_URL": "http://prometheus:9090",
                                         "FAULTS_TOKEN": "t" * 16})
    assert (elsewhere.app_url, elsewhere.app_elsewhere) == ("http://127.0.0.1:80", True)
    assert elsewhere.prometheus_url == "http://prometheus:9090"
    assert FaultSwitch.for_environment(elsewhere).faults_file is None  # the admin route, by token
