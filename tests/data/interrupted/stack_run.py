"""A test run to be stopped from outside (tests/test_interrupted_run.py runs it by path).

It takes a stack of its own from the plugin (gunicorn, a prefork Celery worker, on a reserved
Redis database), writes what it started to $INTERRUPTED_RUN_REPORT, and then waits to be
stopped; with INTERRUPTED_RUN_QUICK=1 it checks the stack answers and ends instead.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psutil
import requests

from stack import launch


def test_a_stack_waits_to_be_stopped(stack_factory, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    with stack_factory() as running:
        running: launch.Running
        assert requests.get(running.web.url + "/healthz", timeout=5).status_code == 200
        started = []
        for handle in running.services.values():
            service = psutil.Process(handle.pid)
            started += [p.pid for p in (service, *service.children(recursive=True))]
        report = {"pids": started, "broker": running.config.env["CELERY_BROKER_URL"], "run_db": redis_url}
        Path(os.environ["INTERRUPTED_RUN_REPORT"]).write_text(json.dumps(report), encoding="utf-8")
        if os.environ.get("INTERRUPTED_RUN_QUICK") != "1":
            time.sleep(600)
