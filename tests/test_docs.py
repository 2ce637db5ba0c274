"""The front door stays true: every setting the code reads has a README row and a line in
.env.example, and the README's two commands are the ones the Makefile and CI run."""

from __future__ import annotations

import re

from tests.support.processes import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def settings_read_by_the_code() -> set[str]:
    """Variable names app/settings.py reads from the environment."""
    source = (ROOT / "app" / "settings.py").read_text(encoding="utf-8")
    return set(re.findall(r'(?:env\.get\(|_\w+\(\s*env, )"([A-Z][A-Z0-9_]+)"', source))


def test_the_settings_module_reads_what_we_expect() -> None:
    names = settings_read_by_the_code()
    assert {"APP_ENV", "LOG_LEVEL", "DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND",
            "EXPORT_DIR"} <= names


def test_every_setting_has_a_readme_row() -> None:
    missing = [n for n in sorted(settings_read_by_the_code()) if f"| `{n}` |" not in README]
    assert missing == []


def test_every_setting_is_in_env_example() -> None:
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    missing = [n for n in sorted(settings_read_by_the_code())
               if not re.search(rf"^{n}=", example, re.MULTILINE)]
    assert missing == []


def test_readme_opens_with_the_two_commands_ci_runs() -> None:
    head = README.split("\n## ", 1)[0]
    assert "make lab" in head and "make test" in head
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make test$", ci, re.MULTILINE)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^lab:", makefile, re.MULTILINE) and re.search(r"^test:", makefile, re.MULTILINE)
