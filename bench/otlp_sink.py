"""A minimal live OTLP/HTTP trace receiver: accepts every export, counts requests and bytes.

It does not decode the payload (a real collector would, on another machine); what the
benchmark measures is the app's cost of exporting, not the receiver's. Written as every small
server of the lab is (stack/small_http.py).
"""

from __future__ import annotations

import threading

from stack.small_http import Answer, Request, SmallServer


class OtlpSink:
    """POST /v1/traces answered 200 with an empty ExportTraceServiceResponse."""

    def __init__(self) -> None:
        """Bind a free loopback port; start() serves it."""
        self.requests = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._server = SmallServer(self._receive)
        self.endpoint = self._server.url

    def _receive(self, request: Request) -> Answer:
        with self._lock:
            self.requests += 1
            self.bytes += len(request.body)
        # An empty protobuf message serialises to zero bytes.
        return Answer(200, b"", "application/x-protobuf")

    def start(self) -> OtlpSink:
        """Serve in a background thread."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()
