"""What the compose path needs of the lab's commands, checked without Docker.

`lab load` against a stack it did not start (LAB_APP_URL, PROMETHEUS_URL: the jupyter
container), and `python -m app.migrate` refusing an unusable database with one line (a
changed POSTGRES_PASSWORD used to restart web forever, behind a traceback).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.processes import ROOT, free_port


def run(argv: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A module of the project run as a command, in a fresh VAR_DIR."""
    full = {**os.environ, "VAR_DIR": str(tmp_path / "var"), **env}
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, env=full, capture_output=True,
                          text=True, timeout=120, check=False)


def test_lab_load_against_a_url_says_when_nothing_answers_there(tmp_path: Path) -> None:
    """No pid files are consulted: the app at LAB_APP_URL must answer ready, else one line."""
    url = f"http://127.0.0.1:{free_port()}"
    result = run(["lab.cli", "load", "--duration", "5"], tmp_path, LAB_APP_URL=url,
                 PROMETHEUS_URL=f"http://127.0.0.1:{free_port()}",
                 LAB_REPORTS_DIR=str(tmp_path / "reports"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip() == (f"lab load: the app at LAB_APP_URL does not answer ready "
                                     f"({url}/readyz): is the stack up?")
    assert not (tmp_path / "reports" / "last-run.json").exists()


@pytest.mark.postgres
@pytest.mark.parametrize("argv, said", [(["app.migrate"], "app.migrate"),  # web's start step
                                        (["lab", "migrate"], "lab migrate")])  # a person's
def test_migrate_refuses_an_unusable_database_with_one_line(argv: list[str], said: str,
                                                            tmp_path: Path) -> None:
    """A database that refuses us: exit 1 and libpq's reason on one line, no traceback, in the
    same words from the web container's start step and from `lab migrate`."""
    admin = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    missing = f"todo_missing_{uuid.uuid4().hex[:8]}"
    url = admin.rsplit("/", 1)[0] + f"/{missing}"
    result = run(argv, tmp_path, DATABASE_URL=url)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{said}: cannot use the database: ")
    assert f'database "{missing}" does not exist' in lines[0]
