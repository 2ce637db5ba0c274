"""The one way the lab writes a small HTTP server: a function from a Request to an Answer,
served on one or more ports, in background threads or in the foreground.

Five servers are written this way: the alert receiver (stack/alert_receiver.py, Alertmanager's
webhook target), the benchmark's OTLP sink (bench/otlp_sink.py), and the tests' fake OTLP
collector, fake Jaeger and recorded Prometheus (tests/support/, tests/data/analysis/). Each
says only what it answers; reading the body (its size checked), the status line, the headers
and the threads are here.

Why the standard library's http.server and not Flask under gunicorn, as the app: these are a
webhook receiver and test doubles of a few routes each, started inside a test process or a
container without a WSGI server, and the fakes must run in the stand-in images that hold no
more than Python. ThreadingHTTPServer answers concurrent exporters; HTTP/1.1 keeps an
exporter's connection open between posts, as a real collector does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from requests.structures import CaseInsensitiveDict

# A body larger than this is refused with 413 unless the server says otherwise.
DEFAULT_MAX_BODY = 16 * 1024 * 1024


@dataclass(frozen=True)
class Request:
    """One request as a route sees it."""

    method: str
    path: str  # without the query string
    query: Mapping[str, str]  # the first value of each parameter
    headers: Mapping[str, str]  # names in any case: headers["content-type"] is Content-Type
    body: bytes
    port: int  # the port it came in on (a server of several ports routes by it)

    def json(self) -> Any:
        """The body as JSON (ValueError when it is not)."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Answer:
    """What a route answers."""

    status: int = HTTPStatus.OK
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, data: Any) -> Answer:
        """A JSON answer."""
        return cls(status, json.dumps(data).encode())


Route = Callable[[Request], Answer]


def _handler(route: Route, max_body: int, server_name: str) -> type[BaseHTTPRequestHandler]:
    """The request handler class that reads a request, asks route, and writes its answer."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = server_name

        def _body(self) -> bytes | None:
            """The request body, or None after answering 400/413 for a bad or large one."""
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0:
                self._write(Answer.json(HTTPStatus.BAD_REQUEST, {"error": "bad Content-Length"}))
                return None
            if length > max_body:
                self._write(Answer.json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                        {"error": f"a body of at most {max_body} bytes"}))
                self.close_connection = True  # the unread body must not be taken for a request
                return None
            return self.rfile.read(length) if length else b""

        def _serve(self) -> None:
            body = self._body()
            if body is None:
                return
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            headers = CaseInsensitiveDict(self.headers.items())
            port = self.connection.getsockname()[1]  # the port this request came in on
            request = Request(self.command, parts.path, query, headers, body, int(port))
            self._write(route(request))

        def _write(self, answer: Answer) -> None:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: a server that wants a line per request logs it in its route."""

    return Handler


class SmallServer:
    """route served on each of ports (0: a free one) of host, until stop()."""

    def __init__(self, route: Route, host: str = "127.0.0.1", ports: Iterable[int] = (0,),
                 max_body: int = DEFAULT_MAX_BODY, name: str = "todo-lab") -> None:
        """Bind every port now (so a busy one fails here); start() or serve_forever() serves."""
        handler = _handler(route, max_body, name)
        self._servers = [ThreadingHTTPServer((host, port), handler) for port in ports]
        for server in self._servers:
            server.daemon_threads = True
        self._threads: list[threading.Thread] = []

    @property
    def ports(self) -> tuple[int, ...]:
        """The bound ports, in the order given."""
        return tuple(int(s.server_address[1]) for s in self._servers)

    @property
    def port(self) -> int:
        """The first bound port."""
        return self.ports[0]

    @property
    def url(self) -> str:
        """http://127.0.0.1:<first port>."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SmallServer:
        """Serve every port in background threads."""
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in self._servers]
        for thread in self._threads:
            thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the foreground until interrupted (a process whose job is this server)."""
        self.start()
        try:
            for thread in self._threads:
                thread.join()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving and close the ports."""
        for server in self._servers:
            if self._threads:
                server.shutdown()
            server.server_close()
        self._threads = []

    def __enter__(self) -> SmallServer:
        """Started."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stopped."""
        self.stop()
