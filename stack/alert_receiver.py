"""The lab's Alertmanager webhook receiver: every notification, one JSON line per alert.

Alertmanager keeps only the alerts active now; to see *when* an alert fired and resolved
the lab records each notification as it arrives, in $VAR_DIR/log/alerts.jsonl (fields in
app/observability/names.py). `lab up` runs it next to Alertmanager (stack/topology.py);
compose runs it as the `alert-receiver` service.

    python -m stack.alert_receiver [--bind 127.0.0.1] [--port 9095] [--file PATH]

POST /alerts takes Alertmanager's webhook payload (version 4); GET /healthz answers 200.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from app.observability import names
from app.settings import PORT_DEFAULTS

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


def handler_for(alert_log: AlertLog) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to alert_log."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "todo-lab-alert-receiver"

        def _answer(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._answer(HTTPStatus.OK, {"status": "ok", "file": str(alert_log.path)})
            else:
                self._answer(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:
            received = datetime.now(UTC)
            if self.path != WEBHOOK_PATH:
                self._answer(HTTPStatus.NOT_FOUND, {"error": f"POST to {WEBHOOK_PATH}"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY:
                status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length > MAX_BODY else HTTPStatus.BAD_REQUEST
                self._answer(status, {"error": f"a body of 1 to {MAX_BODY} bytes is needed"})
                return
            try:
                lines = records(json.loads(self.rfile.read(length)), received)
            except (ValueError, UnicodeDecodeError) as exc:
                self._answer(HTTPStatus.BAD_REQUEST, {"error": f"not a webhook payload: {exc}"})
                return
            alert_log.append(lines)
            for line in lines:
                log.info("%s %s %s", line[names.A_STATUS], line[names.A_ALERTNAME],
                         json.dumps(line[names.A_LABELS], sort_keys=True))
            self._answer(HTTPStatus.OK, {"recorded": len(lines)})

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the notifications themselves are logged, not every HTTP exchange."""

    return Handler


def serve(bind: str, port: int, path: Path) -> ThreadingHTTPServer:
    """A server recording into path (not yet serving: call serve_forever)."""
    return ThreadingHTTPServer((bind, port), handler_for(AlertLog(path)))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options and serve until terminated."""
    parser = argparse.ArgumentParser(prog="python -m stack.alert_receiver",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (compose: 0.0.0.0)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    parser.add_argument("--file", type=Path, default=None,
                        help=f"where to append (default $VAR_DIR/log/{names.ALERTS_LOG})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    path = args.file or default_file(os.environ)
    server = serve(args.bind, args.port, path)
    log.info("recording Alertmanager notifications on http://%s:%d%s into %s",
             args.bind, args.port, WEBHOOK_PATH, path)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
