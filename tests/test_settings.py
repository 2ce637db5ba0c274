"""Settings: defaults that need no service, and a clear one-line error for each bad value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.settings import Settings, SettingsError
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
        ({"BROKER_TIMEOUT": "-1"}, "BROKER_TIMEOUT=-1.0 is out of range"),
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
