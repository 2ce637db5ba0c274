"""What the notebooks (and JupyterLab) need to find this lab; see analysis.lab_context."""

from __future__ import annotations

from stack import prometheus_config
from stack.config import LOCAL, LabConfig, app_url, reports_dir


def notebook_env(config: LabConfig) -> dict[str, str]:
    """What the notebooks need to find this lab (see analysis.lab_context)."""
    interval = prometheus_config.SCRAPE_INTERVAL.removesuffix("s")
    return {
        "PROMETHEUS_URL": f"http://{LOCAL}:{config.port('PROMETHEUS_PORT')}",
        "LAB_VAR_DIR": str(config.var_dir),
        "LAB_APP_URL": app_url(config),
        "LAB_REPORTS_DIR": str(reports_dir(config)),
        "LAB_SCRAPE_INTERVAL_S": interval,
        # Spans go to the local span file in the launcher's mode: no Jaeger to ask.
        "JAEGER_URL": "",
    }
