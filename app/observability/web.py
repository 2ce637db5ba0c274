"""Per-request observability for the Flask app: request id, access log, metrics, traceparent."""

from __future__ import annotations

import functools
import ipaddress
import logging
import time
from collections.abc import Iterable

from flask import Flask, Response, g, request

from app.observability import names
from app.observability.context import is_well_formed_request_id, new_request_id, request_id_var
from app.observability.metrics import HTTP_REQUEST_DURATION
from app.observability.tracing import traceparent_header

access_log = logging.getLogger(names.ACCESS_LOGGER)

# Requests for the metrics endpoint are not application traffic.
_UNMEASURED_ENDPOINTS = frozenset({"health.metrics"})
# Set on flask.g by a request that must leave no access line and no request metric: a switch
# of quiet faults (a blind incident), which would otherwise show when its fault went on.
UNOBSERVED = "unobserved"


@functools.lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Parsed trusted networks; parsing them for every request cost more than the lookup."""
    return [ipaddress.ip_network(t, strict=False) for t in trusted]


def client_ip(remote_addr: str | None, forwarded_for: str | None, trusted: Iterable[str]) -> str:
    """The real client address: X-Forwarded-For is believed only from a trusted proxy.

    Walks the X-Forwarded-For chain from the right, skipping trusted proxies, and returns
    the first address that is not one of ours.
    """
    remote = remote_addr or ""
    if not forwarded_for:
        return remote
    networks = _networks(tuple(trusted))

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in networks)

    if not is_trusted(remote):
        return remote
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return remote  # a malformed chain is not trusted at all
        if not is_trusted(hop):
            return hop
    return hops[0] if hops else remote


def current_request_id() -> str:
    """The id of the request being handled (created on first use)."""
    rid = getattr(g, "request_id", None)
    if rid is None:
        incoming = request.headers.get(names.REQUEST_ID_HEADER)
        rid = incoming if is_well_formed_request_id(incoming) else new_request_id()
        g.request_id = rid
    return str(rid)


def init_app(
    app: Flask, environment: str, trusted_proxies: tuple[str, ...], observe: bool = True
) -> None:
    """Register the hooks that observe every request (observe=False: request id only)."""

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        g.request_id_token = request_id_var.set(current_request_id())

    @app.after_request
    def _finish(response: Response) -> Response:
        rid = current_request_id()
        response.headers[names.REQUEST_ID_HEADER] = rid
        traceparent = traceparent_header()
        if traceparent:
            response.headers["traceparent"] = traceparent
        if not observe:
            # OBSERVABILITY=off: the baseline the benchmarks compare the access log and
            # request metrics against; the request id stays, users see it on error pages.
            return response
        endpoint = request.url_rule.endpoint if request.url_rule else names.UNMATCHED_ENDPOINT
        if endpoint in _UNMEASURED_ENDPOINTS or g.get(UNOBSERVED, False):
            return response
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        HTTP_REQUEST_DURATION.labels(
            request.method, endpoint, str(response.status_code), environment
        ).observe(elapsed)
        status = response.status_code
        level = (
            logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
        )
        access_log.log(
            level,
            "%s %s %s",
            request.method,
            request.path,
            status,
            extra={
                names.F_REQUEST_ID: rid,
                names.F_METHOD: request.method,
                names.F_PATH: request.path,
                names.F_ENDPOINT: endpoint,
                names.F_STATUS: status,
                names.F_DURATION_MS: round(elapsed * 1000, 3),
                names.F_CLIENT_IP: client_ip(
                    request.remote_addr, request.headers.get("X-Forwarded-For"), trusted_proxies
                ),
                names.F_USER_AGENT: request.headers.get("User-Agent", ""),
            },
        )
        return response

    @app.teardown_request
    def _reset(_exc: BaseException | None) -> None:
        # gthread reuses threads: never let this request's id leak into the next one.
        token = g.pop("request_id_token", None)
        if token is not None:
            request_id_var.reset(token)
