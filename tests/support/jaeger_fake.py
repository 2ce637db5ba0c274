"""FakeJaeger: the stand-in for Jaeger all-in-one in the compose test (no image can be pulled here).

A fake, not Jaeger: it speaks the three interfaces the lab uses, for real, over HTTP:
OTLP/HTTP on 4318 (POST /v1/traces, protobuf, decoded with opentelemetry-proto as a
collector does), the query API on 16686 (GET /api/traces/{id} in Jaeger's JSON, written by
analysis.traces.to_jaeger, the format the notebooks parse; GET /api/services), and the admin
port 14269 (GET / answers 200 once serving, what compose's healthcheck asks). Spans stay in
memory, as with Jaeger's memory storage. Run: `python -m tests.support.jaeger_fake`.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from analysis.traces import Span, to_jaeger
from stack.small_http import Answer, Request, SmallServer
from tests.support.otlp import _value

OTLP_PORT, QUERY_PORT, ADMIN_PORT = 4318, 16686, 14269
# OTLP's Span.SpanKind and Status.StatusCode numbers, as the names Jaeger shows.
KINDS = {0: "INTERNAL", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
STATUSES = {0: "UNSET", 1: "OK", 2: "ERROR"}
TRACE_PATH = re.compile(r"^/api/traces/([0-9a-f]{32})$")


class FakeJaeger:
    """The three servers and the spans they share."""

    def __init__(self, host: str = "0.0.0.0",  # inside its container only
                 ports: tuple[int, int, int] = (OTLP_PORT, QUERY_PORT, ADMIN_PORT)) -> None:
        """Bind the OTLP, query and admin ports on host; call serve_forever() to serve."""
        self.traces: dict[str, list[Span]] = defaultdict(list)
        self._lock = threading.Lock()
        self._otlp_port, self._query_port, self._admin_port = ports
        self._server = SmallServer(self._route, host, ports, name="fake-jaeger")
        self.ports = ports

    def _route(self, request: Request) -> Answer:
        """OTLP exports on the OTLP port, the query API on the query port, health on admin."""
        if request.method == "POST":
            if (request.port != self._otlp_port or request.path != "/v1/traces"
                    or request.headers.get("Content-Type") != "application/x-protobuf"):
                return Answer(404, b"", "text/plain")
            self.receive(ExportTraceServiceRequest.FromString(request.body))
            return Answer(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")
        if request.port == self._admin_port and request.path == "/":
            return Answer.json(200, {"status": "Server available"})
        match = TRACE_PATH.match(request.path)
        if request.port == self._query_port and match:
            spans = self.trace(match[1])
            if not spans:
                return Answer.json(404, {"data": None, "errors": [{"code": 404, "msg": "trace not found"}]})
            return Answer.json(200, to_jaeger(spans))
        if request.port == self._query_port and request.path == "/api/services":
            return Answer.json(200, {"data": self.services(), "errors": None})
        return Answer(404, b"", "text/plain")

    def receive(self, request: ExportTraceServiceRequest) -> None:
        """Store the spans of one export request."""
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(Span(
                        trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex() or None, name=span.name,
                        service=str(resource.get("service.name", "")),
                        start_ns=span.start_time_unix_nano, end_ns=span.end_time_unix_nano,
                        kind=KINDS.get(span.kind, "INTERNAL"),
                        status=STATUSES.get(span.status.code, "UNSET"),
                        attributes={a.key: _value(a.value) for a in span.attributes},
                    ))
        with self._lock:
            for span in received:
                self.traces[span.trace_id].append(span)

    def trace(self, trace_id: str) -> list[Span]:
        """The spans of one trace received so far."""
        with self._lock:
            return list(self.traces.get(trace_id, []))

    def services(self) -> list[str]:
        """The service names seen."""
        with self._lock:
            return sorted({s.service for spans in self.traces.values() for s in spans})

    def start(self) -> FakeJaeger:
        """Serve the three ports in background threads."""
        self._server.start()
        return self

    def serve_forever(self) -> None:
        """Serve the three ports until the process stops."""
        print("fake jaeger: OTLP :{}, query :{}, admin :{}".format(*self.ports), flush=True)
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the ports."""
        self._server.stop()


if __name__ == "__main__":
    FakeJaeger().serve_forever()
