"""Caddy's upstreams: the web replicas it balances over, and how it finds out one is gone.

The shared Caddyfile imports one snippet inside its `reverse_proxy` block (CADDY_UPSTREAMS).
Locally the launcher writes it with one address per web replica; in compose the image's
snippet (stack/caddy/upstreams-dns.caddy) asks Docker's DNS for the replicas instead.

Why these directives:

- `health_uri /metrics` every second (`health_interval`, `health_timeout`): an active check
  takes a stopped replica out of the rotation within about a second, without a user's request
  having to fail first, and puts it back at the first check it passes. /metrics, not /healthz:
  the app leaves no access line, request metric or span for /metrics (Prometheus's scrape is
  not application traffic), so a probe every second does not show up in the numbers the
  notebooks check against Locust. A 200 there means gunicorn serves and the app is loaded.
- `lb_try_duration` / `lb_try_interval`: a request Caddy could not deliver (the replica's port
  refused the connection, so nothing was sent) is tried on another replica for up to this
  long. That covers the second before the health check notices. A request already *sent* to a
  replica that dies mid-way is not retried (it may have written data): its client gets 502.
- `lb_policy round_robin`: each replica gets an even share, which the fleet lessons count on
  (an even split makes one bad replica's share of errors 1/N of the whole).
"""

from __future__ import annotations

from pathlib import Path

from stack import topology
from stack.config import LabConfig

HEALTH_INTERVAL = "1s"
TRY_DURATION = "5s"


def render_upstreams(config: LabConfig) -> str:
    """The snippet for this lab's web replicas."""
    return "\n".join([
        "# Written by the stack library for this VAR_DIR (stack/caddy_config.py).",
        f"to {' '.join(topology.web_upstreams(config))}",
        "lb_policy round_robin",
        f"lb_try_duration {TRY_DURATION}",
        "lb_try_interval 250ms",
        "health_uri /metrics",
        f"health_interval {HEALTH_INTERVAL}",
        "health_timeout 1s",
    ]) + "\n"


def write_upstreams(config: LabConfig) -> Path:
    """Write the snippet into VAR_DIR and return its path."""
    path = config.layout.caddy_upstreams
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_upstreams(config), encoding="utf-8")
    return path
