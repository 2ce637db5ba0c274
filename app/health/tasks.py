"""The worker's liveness probe, for brokers that cannot broadcast a ping."""

from __future__ import annotations

import socket

from celery import shared_task


@shared_task(name="health.ping")
def ping() -> str:
    """Answer a liveness probe from a worker (for brokers without broadcast)."""
    return socket.gethostname()
