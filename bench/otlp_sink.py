"""A minimal live OTLP/HTTP trace receiver: accepts every export, counts requests and bytes.

It does not decode the payload (a real collector would, on another machine); what the
benchmark measures is the app's cost of exporting, not the receiver's.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class OtlpSink:
    """POST /v1/traces answered 200 with an empty ExportTraceServiceResponse."""

    def __init__(self) -> None:
        """Bind a free loopback port; start() serves it."""
        self.requests = 0
        self.bytes = 0
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                size = len(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                with sink._lock:
                    sink.requests += 1
                    sink.bytes += size
                # An empty protobuf message serialises to zero bytes.
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> OtlpSink:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
