"""Fakes of an OpenTelemetry collector for the tests: a real OTLP/HTTP receiver, a mute one.

FakeOtlpReceiver is a real HTTP server on a free loopback port that accepts
POST /v1/traces (application/x-protobuf), decodes the payload with opentelemetry-proto as
a collector would, and keeps the spans. SilentCollector accepts connections and never
reads or answers: the "slow collector" case.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from stack.small_http import Answer, Request, SmallServer


@dataclass(frozen=True)
class ReceivedSpan:  # kind: 2 server, 3 client, 4 producer, 5 consumer (OTLP's enum)
    """One span as the collector received it (ids as lowercase hex, like Jaeger shows)."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    scope: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)


def _value(any_value: Any) -> Any:
    """The Python value of an OTLP AnyValue."""
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class FakeOtlpReceiver:
    """A fake OTLP/HTTP trace collector that decodes and stores every exported span."""

    def __init__(self) -> None:
        """Bind to a free loopback port; call start() to serve."""
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self.bad_requests: list[str] = []
        self._lock = threading.Lock()
        self._server = SmallServer(self._route)
        self.port = self._server.port
        self.endpoint = self._server.url

    def _route(self, request: Request) -> Answer:
        """Decode an export: 200 with an empty response, 400 for what is not one."""
        if self._accept(request.path, request.headers.get("Content-Type", ""), request.body):
            return Answer(400, b"", "text/plain")
        return Answer(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    def _accept(self, path: str, content_type: str, body: bytes) -> str:
        """Decode one export request; returns a problem description or ''."""
        if path != "/v1/traces" or content_type != "application/x-protobuf":
            problem = f"unexpected {path} {content_type}"
            with self._lock:
                self.bad_requests.append(problem)
            return problem
        request = ExportTraceServiceRequest.FromString(body)
        spans: list[ReceivedSpan] = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(ReceivedSpan(
                        service=str(resource.get("service.name", "")),
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        kind=span.kind,
                        scope=scope_spans.scope.name,
                        attributes={a.key: _value(a.value) for a in span.attributes},
                    ))
        with self._lock:
            self.requests += 1
            self.spans.extend(spans)
        return ""

    def start(self) -> FakeOtlpReceiver:
        """Serve in a background thread."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port."""
        self._server.stop()

    def snapshot(self) -> list[ReceivedSpan]:
        """The spans received so far."""
        with self._lock:
            return list(self.spans)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        """The received spans of one trace."""
        return [s for s in self.snapshot() if s.trace_id == trace_id]

    def wait_for(self, predicate: Any, timeout: float = 15.0) -> list[ReceivedSpan]:
        """Wait until predicate(spans) is true; returns the spans (or fails)."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.snapshot()
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted({(s.service, s.name) for s in spans})
                raise AssertionError(f"the collector did not receive the expected spans: {names}")
            time.sleep(0.1)


class SilentCollector:
    """A TCP port that accepts connections and never reads nor answers (a hung collector)."""

    def __init__(self) -> None:
        """Listen on a free loopback port with a generous backlog."""
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(512)
        self.port = int(self._sock.getsockname()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Close the listening socket."""
        self._sock.close()


def closed_port_endpoint() -> str:
    """An endpoint where nothing listens (a collector that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return f"http://127.0.0.1:{port}"
