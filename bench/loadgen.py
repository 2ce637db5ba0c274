"""A small closed-loop HTTP/1.1 load generator (asyncio, keep-alive), run as its own process.

`python -m bench.loadgen --port P --path / --duration 5 --concurrency 16` prints one JSON
object: request count, errors, throughput and latency percentiles. It is far cheaper per
request than the Flask app it loads, so most of the two cores go to the server under test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass

# Reconnect after this many requests: gunicorn's workers share one listening socket, and a
# connection stays with the worker that accepted it; reconnecting keeps the load spread.
REQUESTS_PER_CONNECTION = 200


@dataclass
class Result:
    """What one load run measured (latencies in milliseconds)."""

    requests: int
    sent: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-quantile (0..1) of already sorted values, nearest-rank."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def build_request(method: str, host: str, path: str, body: bytes) -> bytes:
    """The bytes of one request."""
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}", "User-Agent: bench-loadgen"]
    if body:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; returns (status, server wants the connection closed)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip().lower()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, headers.get("connection") == "close"


async def _client(
    host: str, port: int, requests: list[bytes], stop: float, record_from: float,
    budget: list[int], latencies: list[float], errors: list[int], sent: list[int],
) -> None:
    """One connection's loop: send, wait for the answer, record, repeat until stop."""
    index = 0
    while time.perf_counter() < stop and budget[0] != 0:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for _ in range(REQUESTS_PER_CONNECTION):
                if time.perf_counter() >= stop or budget[0] == 0:
                    break
                budget[0] -= 1
                started = time.perf_counter()
                writer.write(requests[index % len(requests)])
                index += 1
                status, close = await read_response(reader)
                sent[0] += 1
                if started >= record_from:
                    latencies.append(time.perf_counter() - started)
                    if status >= 400:
                        errors[0] += 1
                if close:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            errors[0] += 1
        finally:
            writer.close()


async def run(
    port: int, paths: list[str], duration: float, concurrency: int, warmup: float = 0.0,
    method: str = "GET", body: bytes = b"", total: int = -1, host: str = "127.0.0.1",
) -> Result:
    """Load host:port for warmup + duration seconds (or until total requests are sent)."""
    authority = f"{host}:{port}"
    requests = [build_request(method, authority, path, body) for path in paths]
    latencies: list[float] = []
    errors = [0]
    sent = [0]
    budget = [total]
    began = time.perf_counter()
    record_from = began + warmup
    stop = record_from + duration if total < 0 else float("inf")
    await asyncio.gather(*(
        _client(host, port, requests, stop, record_from, budget, latencies, errors, sent)
        for _ in range(concurrency)
    ))
    seconds = time.perf_counter() - max(began, record_from) if total >= 0 else duration
    latencies.sort()
    ms = [v * 1000 for v in latencies]
    return Result(
        requests=len(ms), sent=sent[0], errors=errors[0], seconds=round(seconds, 3),
        rps=round(len(ms) / seconds, 1) if seconds > 0 else 0.0,
        p50_ms=round(percentile(ms, 0.50), 2), p90_ms=round(percentile(ms, 0.90), 2),
        p99_ms=round(percentile(ms, 0.99), 2), max_ms=round(ms[-1], 2) if ms else float("nan"),
    )


def configure(parser: argparse.ArgumentParser) -> None:
    """`python -m bench loadgen`'s options (bench/runner.py starts it in a process of its own)."""
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", action="append", dest="paths", required=True,
                        help="request path; repeat to rotate over several")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=0.0, help="seconds sent but not recorded")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", default="", help="JSON body (for POST)")
    parser.add_argument("--total", type=int, default=-1, help="send this many requests instead")


def main(args: argparse.Namespace) -> int:
    """Run the load args describe, print the result as JSON."""
    result = asyncio.run(run(
        args.port, args.paths, args.duration, args.concurrency, args.warmup,
        args.method, args.body.encode(), args.total,
    ))
    json.dump(asdict(result), sys.stdout)
    print()
    return 0

