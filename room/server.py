"""Run the room service under gunicorn (one process, threads), as the todo app runs under it.

One process because the state is one SQLite file (WAL): threads read the page while a push
writes; a room of thirty sends a few verdicts a second at its busiest (docs/benchmarks.md).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

THREADS = 8


class _Gunicorn(BaseApplication):
    """gunicorn with its settings given here, not read from the command line."""

    def __init__(self, application: Flask, options: dict[str, Any]) -> None:
        self.application = application
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


def serve(application: Flask, host: str, port: int) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM)."""
    _Gunicorn(application, {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": 1, "threads": THREADS, "worker_class": "gthread",
        "accesslog": None, "errorlog": "-", "loglevel": "warning",
        "timeout": 30, "graceful_timeout": 5, "proc_name": "lab-room",
    }).run()


def lan_addresses() -> Sequence[str]:
    """This machine's address on the network its default route leaves by (no packet is sent)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: connect() on UDP only picks a route
        address = probe.getsockname()[0]
    except OSError:
        return ()
    finally:
        probe.close()
    return () if address.startswith("127.") else (address,)
