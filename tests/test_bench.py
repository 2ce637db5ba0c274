"""The benchmarks run end to end and print well-formed tables (the figures are not checked)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bench import loadgen, runner
from bench.__main__ import main as bench_main
from bench.stats import spread, table
from lab.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_server() -> Iterator[int]:
    """A keep-alive HTTP server answering 200 (chunked for /chunked, 404 elsewhere).

    Not written on stack.small_http as the lab's other servers are: it must put raw chunked
    bytes on the wire to test the load generator's parser, which that helper never does."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path == "/chunked":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"5\r\nhello\r\n0\r\n\r\n")
                return
            body = b"ok" if self.path == "/" else b"missing"
            self.send_response(200 if self.path == "/" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_load_generator_counts_requests_and_errors(tiny_server: int) -> None:
    result = asyncio.run(loadgen.run(tiny_server, ["/", "/missing", "/chunked"], 0, 2, total=300))
    assert result.requests == 300
    assert result.errors == 100  # every third request is the 404
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms


def test_load_generator_posts_bodies(tiny_server: int) -> None:
    result = asyncio.run(loadgen.run(tiny_server, ["/"], 0.3, 2, method="POST", body=b'{"a": 1}'))
    assert result.requests > 0 and result.errors == 0


def test_the_load_generator_runs_as_a_command_of_python_m_bench(tiny_server: int) -> None:
    """The sections start `python -m bench loadgen` in a process of its own and read its JSON."""
    result = runner.load(tiny_server, ["/", "/missing"], duration=0, concurrency=2, total=40)
    assert (result["requests"], result["errors"]) == (40, 20)


def test_the_soak_is_a_command_of_python_m_bench(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m bench soak` takes the soak's options and refuses a run it cannot make, before
    it starts anything."""
    assert bench_main(["soak", "--minutes", "0.1"]) == 2
    assert "--minutes must be 0.5..120" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench_main(["soak", "--minutes", "soon"])


def test_spread_and_table_are_markdown() -> None:
    assert spread([1.0, 3.0, 2.0]) == "2.0 (1.0..3.0)"
    assert spread([5.0], 0) == "5"
    assert table(["a", "b"], [[1, 2]]).splitlines() == ["| a | b |", "|---|---|", "| 1 | 2 |"]


def test_lab_bench_is_a_subcommand() -> None:
    args = build_parser().parse_args(["bench", "overhead", "--quick"])
    assert args.what == "overhead" and args.quick


def markdown_tables(text: str) -> list[list[str]]:
    """Each markdown table of text, as its lines."""
    tables: list[list[str]] = []
    current: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


@pytest.mark.slow
def test_quick_run_of_every_benchmark_writes_a_well_formed_page(tmp_path: Path) -> None:
    out, raw = tmp_path / "benchmarks.md", tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "all", "--quick", "--out", str(out), "--json", str(raw)],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    page = out.read_text(encoding="utf-8")
    for heading in ("## Machine", "## Targets", "## Instrumentation overhead", "## Proxy overhead",
                    "## Scrape cost", "## Footprint", "## Scale", "## The page",
                    "## Load generator: one Locust process and several",
                    "## The room service: thirty learners", "## A fleet: 3 web and 2 worker replicas"):
        assert heading in page
    tables = markdown_tables(page)
    assert len(tables) >= 8
    for lines in tables:
        columns = lines[0].count("|")
        assert re.fullmatch(r"\|(---\|)+", lines[1])
        assert all(line.count("|") == columns for line in lines), lines
    results = json.loads(raw.read_text(encoding="utf-8"))
    # The room: every push Locust saw acknowledged is in the room's database, none failed.
    room = results["room"]
    assert room["acknowledged"] == room["stored"] > 0, room
    assert all(s["failures"] == 0 for s in room["stats"].values()), room["stats"]
    # The fleet: both fleets measured, both replica counts served, nothing failed.
    fleet = results["fleet"]
    assert fleet["errors"] == 0 and all(fleet["rps"][n] and min(fleet["rps"][n]) > 0 for n in ("1", "3"))
    assert fleet["fleet"]["web"]["replicas"] == 3 and fleet["fleet"]["worker"]["replicas"] == 2
    memory = {size: sum(r["pss_mib"] for r in fleet[size].values()) for size in ("single", "fleet")}
    assert memory["fleet"] > memory["single"]
    # Every configuration of the overhead benchmark answered without errors.
    for per_config in results["overhead"]["results"].values():
        assert set(per_config) == {"a", "b", "c", "d", "e"}
        assert all(r["errors"] == 0 and r["requests"] > 0 for runs in per_config.values() for r in runs)
