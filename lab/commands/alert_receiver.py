"""`lab alert-receiver [--bind ADDRESS] [--port N] [--file PATH]`: Alertmanager's webhook target.

Records every notification, one JSON line per alert, in $VAR_DIR/log/alerts.jsonl
(stack/alert_receiver.py). `lab up` starts it beside Alertmanager and compose runs it as the
alert-receiver service; run by hand it serves in the foreground until interrupted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from app.observability import names
from app.settings import PORT_DEFAULTS


def configure(parser: argparse.ArgumentParser) -> None:
    """Where to listen and where to record."""
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (compose: 0.0.0.0)")
    parser.add_argument("--port", type=int, default=PORT_DEFAULTS["ALERT_RECEIVER_PORT"],
                        help="default %(default)s")
    parser.add_argument("--file", type=Path, default=None,
                        help=f"where to append (default $VAR_DIR/log/{names.ALERTS_LOG})")


def run(args: argparse.Namespace) -> int:
    """Serve until terminated."""
    from stack.alert_receiver import run as receive

    return receive(args.bind, args.port, args.file)
