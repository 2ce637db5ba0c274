"""The local Alertmanager: its config rendered from stack/alertmanager/alertmanager.yml.

Everything but the receiver's address is the shared file (the one compose mounts): routing,
timers and inhibition are written once. The webhook goes to the lab's receiver on
127.0.0.1:ALERT_RECEIVER_PORT instead of compose's alert-receiver:9095.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from stack.alert_receiver import WEBHOOK_PATH
from stack.config import LabConfig

SHARED_CONFIG = Path("stack") / "alertmanager" / "alertmanager.yml"
# Debian's package names the binary prometheus-alertmanager; Homebrew and upstream, alertmanager.
BINARIES = ("prometheus-alertmanager", "alertmanager")


def binary(config: LabConfig) -> str:
    """The Alertmanager program on PATH (Debian's name when neither is found, for the message)."""
    path = config.env.get("PATH")
    return next((name for name in BINARIES if shutil.which(name, path=path)), BINARIES[0])


def receiver_url(config: LabConfig) -> str:
    """Where the local Alertmanager posts its notifications."""
    return config.url("ALERT_RECEIVER_PORT", WEBHOOK_PATH)


def render(config: LabConfig) -> str:
    """The shared config with the webhook pointed at the local receiver."""
    shared = yaml.safe_load((config.root / SHARED_CONFIG).read_text(encoding="utf-8"))
    for receiver in shared["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = receiver_url(config)
    header = "# Written by the stack library for this VAR_DIR from stack/alertmanager/; edit that.\n"
    return header + yaml.safe_dump(shared, sort_keys=False)


def config_path(config: LabConfig) -> Path:
    """var/alertmanager/alertmanager.yml."""
    return config.layout.state_dir("alertmanager") / "alertmanager.yml"


def data_dir(config: LabConfig) -> Path:
    """Silences and notification log: var/alertmanager/data."""
    return config.layout.state_dir("alertmanager") / "data"


def write_config(config: LabConfig) -> Path:
    """Render the config into VAR_DIR and return its path."""
    path = config_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(config), encoding="utf-8")
    return path


def url(config: LabConfig) -> str:
    """The lab's Alertmanager base URL (UI and API): ALERTMANAGER_URL, else the local one."""
    return config.environment.alertmanager_url
