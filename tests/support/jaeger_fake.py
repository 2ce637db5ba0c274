"""FakeJaeger: the stand-in for Jaeger all-in-one in the compose test (no image can be pulled here).

A fake, not Jaeger: it speaks the three interfaces the lab uses, for real, over HTTP:
OTLP/HTTP on 4318 (POST /v1/traces, protobuf, decoded with opentelemetry-proto as a
collector does), the query API on 16686 (GET /api/traces/{id} in Jaeger's JSON, written by
analysis.traces.to_jaeger, the format the notebooks parse; GET /api/services), and the admin
port 14269 (GET / answers 200 once serving, what compose's healthcheck asks). Spans stay in
memory, as with Jaeger's memory storage. Run: `python -m tests.support.jaeger_fake`.
"""

from __future__ import annotations

import json
import re
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from analysis.traces import Span, to_jaeger
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
        otlp_port, query_port, admin_port = ports
        self.traces: dict[str, list[Span]] = defaultdict(list)
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if (self.server.server_address[1] != otlp_port or self.path != "/v1/traces"
                        or self.headers.get("Content-Type") != "application/x-protobuf"):
                    self._answer(404, b"", "text/plain")
                    return
                fake.receive(ExportTraceServiceRequest.FromString(body))
                self._answer(200, ExportTraceServiceResponse().SerializeToString(),
                             "application/x-protobuf")

            def do_GET(self) -> None:
                port = self.server.server_address[1]
                if port == admin_port and self.path == "/":
                    self._answer(200, b'{"status":"Server available"}', "application/json")
                    return
                match = TRACE_PATH.match(self.path)
                if port == query_port and match:
                    spans = fake.trace(match[1])
                    if not spans:
                        self._json(404, {"data": None, "errors": [{"code": 404, "msg": "trace not found"}]})
                    else:
                        self._json(200, to_jaeger(spans))
                    return
                if port == query_port and self.path == "/api/services":
                    self._json(200, {"data": fake.services(), "errors": None})
                    return
                self._answer(404, b"", "text/plain")

            def _json(self, status: int, data: Any) -> None:
                self._answer(status, json.dumps(data).encode(), "application/json")

            def _answer(self, status: int, payload: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: every export would be a line."""

        self._servers = [ThreadingHTTPServer((host, port), Handler) for port in ports]
        self.ports = ports

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

    def serve_forever(self) -> None:
        """Serve the three ports until the process stops."""
        threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in self._servers]
        for thread in threads:
            thread.start()
        print("fake jaeger: OTLP :{}, query :{}, admin :{}".format(*self.ports), flush=True)
        for thread in threads:
            thread.join()

    def stop(self) -> None:
        """Stop serving and close the ports."""
        for server in self._servers:
            server.shutdown()
            server.server_close()


if __name__ == "__main__":
    FakeJaeger().serve_forever()
