"""JupyterLab on the learner's working copies, started detached like the lab's services: what
`lab notebook` and `lab day` share.

The working copies live in VAR_DIR/workshop (lab.workshop). JupyterLab listens on
127.0.0.1:JUPYTER_PORT with a token (JUPYTER_TOKEN, or one chosen once and kept in
var/run/jupyter.token), recorded in var/run/jupyter.pid so that `lab down` stops it.
"""

from __future__ import annotations

import os
import secrets
import time

from lab import workshop
from lab.errors import LabError
from lab.notebook_env import notebook_env
from stack import processes, topology
from stack.config import LOCAL, LabConfig
from stack.heartbeat import heartbeat
from stack.logfiles import tail
from stack.ports import port_in_use

NAME = "jupyter"
START_TIMEOUT_S = 60.0


def prepare_copies(config: LabConfig, reset: list[str] | None) -> None:
    """Make (or reset) the working copies and say what happened."""
    report = workshop.working_copies(config, reset is not None, reset or ())
    where = config.workshop_dir
    if report.copied:
        print(f"working copies: {len(report.copied)} notebook(s) copied into {where}")
    if report.reset:
        print(f"working copies: {', '.join(p.name for p in report.reset)} restored from the "
              f"tracked notebooks; your versions are in {report.set_aside}")
    if not report.copied and not report.reset:
        print(f"working copies: {where} (yours, kept as you saved them)")


def token(config: LabConfig) -> str:
    """JUPYTER_TOKEN, else the one this lab chose before, else a new one (kept private)."""
    given = config.env.get("JUPYTER_TOKEN", "").strip()
    if given:
        return given
    path = config.run_dir / "jupyter.token"
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    config.run_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    path.touch(mode=0o600)
    path.write_text(token + "\n", encoding="utf-8")
    return token


def ready(base: str) -> bool:
    """True when JupyterLab's server answers its unauthenticated /api endpoint."""
    try:
        return processes.http_session().get(f"{base}/api", timeout=2).status_code == 200
    except OSError:
        return False


def start(config: LabConfig, timeout: float = START_TIMEOUT_S) -> str:
    """JupyterLab on the working copies unless it already runs; its URL (with the token).
    A line says what happened; LabError when it cannot start."""
    port = config.port("JUPYTER_PORT")
    base = f"http://{LOCAL}:{port}"
    url = f"{base}/lab?token={token(config)}"
    record = processes.read_pid(config.run_dir, NAME)
    if record is not None and record.matches():
        if f"--ServerApp.root_dir={config.workshop_dir}" not in record.argv:
            # Started by an older lab on the tracked notebooks: edits would land in git.
            raise LabError(f"{NAME}: running (pid {record.pid}) on another folder than your working "
                           f"copies in {config.workshop_dir}: `lab down` and `lab notebook` again")
        print(f"{NAME}: already running (pid {record.pid})")
        return url
    processes.remove_pid(config.run_dir, NAME)
    if port_in_use(port):
        raise LabError(f"port {port} (JUPYTER_PORT) is already in use: set JUPYTER_PORT to a free port")
    env = {**topology.child_env(config), **notebook_env(config), "JUPYTER_TOKEN": token(config),
           "JUPYTER_RUNTIME_DIR": str(config.var_dir / "jupyter" / "runtime")}
    argv = [str(config.bin_dir / "jupyter"), "lab", "--no-browser", f"--ip={LOCAL}",
            f"--port={port}", "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={config.workshop_dir}",
            # Loopback only: no extension catalogue or update check on PyPI.
            "--LabApp.extension_manager=readonly",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        argv.append("--allow-root")  # CI containers run as root; Jupyter refuses it otherwise
    log = config.log_dir / "jupyter.log"
    popen, started = processes.start_detached(NAME, argv, env, config.workshop_dir, log,
                                              config.run_dir, port)
    deadline = time.monotonic() + timeout
    with heartbeat(f"waiting for JupyterLab ({log})", total_s=timeout):
        while not ready(base):
            if popen.poll() is not None or time.monotonic() > deadline:
                processes.stop([started], 10)
                processes.remove_pid(config.run_dir, NAME)
                shown = "\n".join(f"  {line}" for line in tail(log, 20))
                raise LabError(f"JupyterLab did not start; last lines of {log}:\n{shown}")
            time.sleep(0.5)
    print(f"{NAME}: started (pid {popen.pid})")
    return url
