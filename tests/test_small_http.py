"""The lab's small HTTP servers are written one way (stack/small_http.py): what each answers is
a function of the request; sizes, status lines and ports are the helper's, checked here."""

from __future__ import annotations

import socket

import requests

from stack.small_http import Answer, Request, SmallServer


def echo(request: Request) -> Answer:
    """Says what it was asked, so the test sees the request as a route does."""
    return Answer.json(200, {"method": request.method, "path": request.path, "query": dict(request.query),
                             "type": request.headers.get("content-type"), "body": request.body.decode(),
                             "port": request.port})


def test_a_route_sees_the_request_and_its_answer_is_sent() -> None:
    with SmallServer(echo) as server:
        answer = requests.post(f"{server.url}/v1/x?a=1&a=2&b=", data=b"hello", timeout=5,
                               headers={"Content-Type": "text/plain"})
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {"method": "POST", "path": "/v1/x", "query": {"a": "1"}, "type": "text/plain",
                             "body": "hello", "port": server.port}


def test_one_server_on_several_ports_tells_the_route_which_one() -> None:
    with SmallServer(echo, ports=(0, 0)) as server:
        first, second = server.ports
        assert first != second
        assert requests.get(f"http://127.0.0.1:{second}/", timeout=5).json()["port"] == second


def test_a_body_too_large_or_a_bad_length_is_refused_before_the_route() -> None:
    seen: list[Request] = []

    def route(request: Request) -> Answer:
        seen.append(request)
        return Answer()

    with SmallServer(route, max_body=10) as server:
        big = requests.post(server.url, data=b"x" * 11, timeout=5)
        assert big.status_code == 413 and "at most 10 bytes" in big.json()["error"]
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: nine\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 400 ")
        assert requests.post(server.url, data=b"small", timeout=5).status_code == 200
    assert [r.body for r in seen] == [b"small"]
