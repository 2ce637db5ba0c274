"""The lab's Alertmanager webhook receiver: every notification, one JSON line per alert.

Alertmanager keeps only the alerts active now; to see *when* an alert fired and resolved
the lab records each notification as it arrives, in $VAR_DIR/log/alerts.jsonl (fields in
app/observability/names.py). `lab up` runs it next to Alertmanager (stack/topology.py);
compose runs it as the `alert-receiver` service.

    lab alert-receiver [--bind 127.0.0.1] [--port 9095] [--file PATH]

POST /alerts takes Alertmanager's webhook payload (version 4); GET /healthz answers 200.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

from app.observability import names
from app.settings import PORT_DEFAULTS
from stack.small_http import Answer, Request, Route, SmallServer

DEFAULT_PORT = PORT_DEFAULTS["ALERT_RECEIVER_PORT"]
WEBHOOK_PATH = "/alerts"
MAX_BODY = 1024 * 1024  # Alertmanager's payloads are a few kB per alert

log = logging.getLogger("stack.alert_receiver")


def default_file(env: Mapping[str, str]) -> Path:
    """$VAR_DIR/log/alerts.jsonl (VAR_DIR defaults to ./var of the checkout)."""
    from app.layout import Layout

    return Layout.from_env(env).log_dir / names.ALERTS_LOG


def records(payload: Any, received: datetime) -> list[dict[str, Any]]:
    """One record per alert of a webhook payload; ValueError when it is not one."""
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
        raise ValueError("expected Alertmanager's webhook JSON: an object with an 'alerts' list")
    found = []
    for alert in payload["alerts"]:
        if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict):
            raise ValueError("every alert needs a 'labels' object")
        labels = {str(k): str(v) for k, v in alert["labels"].items()}
        found.append({
            names.A_RECEIVED: received.isoformat(timespec="milliseconds"),
            names.A_STATUS: str(alert.get("status", payload.get("status", ""))),
            names.A_ALERTNAME: labels.get("alertname", ""),
            names.A_LABELS: labels,
            names.A_ANNOTATIONS: alert.get("annotations") or {},
            names.A_STARTS_AT: alert.get("startsAt"),
            names.A_ENDS_AT: alert.get("endsAt"),
            names.A_FINGERPRINT: alert.get("fingerprint"),
            names.A_GROUP_KEY: payload.get("groupKey"),
        })
    return found


class AlertLog:
    """Appends records to one file; one lock, so lines of concurrent posts never interleave."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, lines: Sequence[dict[str, Any]]) -> None:
        """Write the records and sync, so a reader (or a crash) never sees half of them."""
        text = "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines)
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())


def route_for(alert_log: AlertLog) -> Route:
    """What the receiver answers, recording into alert_log."""

    def route(request: Request) -> Answer:
        received = datetime.now(UTC)
        if request.method == "GET":
            if request.path == "/healthz":
                return Answer.json(HTTPStatus.OK, {"status": "ok", "file": str(alert_log.path)})
            return Answer.json(HTTPStatus.NOT_FOUND, {"error": f"no route {request.path}"})
        if request.method != "POST" or request.path != WEBHOOK_PATH:
            return Answer.json(HTTPStatus.NOT_FOUND, {"error": f"POST to {WEBHOOK_PATH}"})
        if not request.body:
            return Answer.json(HTTPStatus.BAD_REQUEST,
                               {"error": f"a body of 1 to {MAX_BODY} bytes is needed"})
        try:
            lines = records(request.json(), received)
        except (ValueError, UnicodeDecodeError) as exc:
            return Answer.json(HTTPStatus.BAD_REQUEST, {"error": f"not a webhook payload: {exc}"})
        alert_log.append(lines)
        for line in lines:
            log.info("%s %s %s", line[names.A_STATUS], line[names.A_ALERTNAME],
                     json.dumps(line[names.A_LABELS], sort_keys=True))
        return Answer.json(HTTPStatus.OK, {"recorded": len(lines)})

    return route


def serve(bind: str, port: int, path: Path) -> SmallServer:
    """A server recording into path (bound, not yet serving: start() or serve_forever())."""
    return SmallServer(route_for(AlertLog(path)), bind, (port,), max_body=MAX_BODY,
                       name="todo-lab-alert-receiver")


def run(bind: str, port: int, path: Path | None = None) -> int:
    """Record into path (default $VAR_DIR/log/alerts.jsonl) until terminated: `lab alert-receiver`."""
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    path = path or default_file(os.environ)
    server = serve(bind, port, path)
    log.info("recording Alertmanager notifications on http://%s:%d%s into %s",
             bind, server.port, WEBHOOK_PATH, path)
    server.serve_forever()
    return 0
