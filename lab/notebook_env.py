"""What the notebooks (and JupyterLab) need to find this lab; see analysis.lab_context."""

from __future__ import annotations

from stack.config import LabConfig


def notebook_env(config: LabConfig) -> dict[str, str]:
    """The variables a notebook kernel resolves its LabEnvironment from (app/environment.py):
    this lab's, so that the notebooks find it whatever the shell that started Jupyter held."""
    environment = config.environment
    return {
        "PROMETHEUS_URL": environment.prometheus_url,
        "ALERTMANAGER_URL": environment.alertmanager_url,
        "LAB_VAR_DIR": str(environment.var_dir),
        "LAB_APP_URL": environment.app_url,
        "LAB_REPORTS_DIR": str(environment.reports_dir),
        "LAB_SCRAPE_INTERVAL_S": config.scrape_interval.removesuffix("s"),
        # Spans go to the local span file in the launcher's mode: no Jaeger to ask.
        "JAEGER_URL": "",
    }
