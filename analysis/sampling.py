"""Head sampling, replayed in a sandbox: the lab's app at a sampling ratio, and what it leaves.

`run_sampled(ratio, requests, directory)` starts a separate Python process that builds the
real app (app.wsgi, gunicorn's entry point) with OpenTelemetry's standard head sampler
(``OTEL_TRACES_SAMPLER=parentbased_traceidratio``, ``OTEL_TRACES_SAMPLER_ARG=ratio``), its
own SQLite database, JSON log file and span file under `directory`, sends `requests`
requests through Flask's test client and flushes the spans. The running lab is not touched
(its processes keep sampling everything); a separate process because a TracerProvider can be
installed only once per process.

What a learner then sees: every request still has a trace id (in its access line and its
`traceparent` header, whose last field, the flags, says 00 = not sampled), but only the
sampled ones have spans, so looking up an unsampled request's trace finds nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis import logs, traces, verify
from app.observability import names

SAMPLER = "parentbased_traceidratio"
# The paths the sandbox's requests cycle through: pages and API reads, all traced routes.
PATHS = ("/", "/api/todos", "/api/todos?page=1&per_page=5")


@dataclass(frozen=True)
class SampledRun:
    """What a sandbox run left: its access lines, spans and response headers."""

    ratio: float
    access: pd.DataFrame
    spans: list[traces.Span]
    headers: pd.DataFrame  # request_id, traceparent as the client saw them

    def lookups(self) -> pd.DataFrame:
        """One row per request: its trace id, the traceparent flags, and whether spans exist."""
        joined = verify.correlate(self.access, self.spans, self.headers)
        flags = self.headers.set_index(names.F_REQUEST_ID)["traceparent"].str.rsplit("-", n=1).str[-1]
        joined["trace_flags"] = joined[names.F_REQUEST_ID].map(flags)
        joined["sampled_flag"] = joined["trace_flags"].map(sampled_flag)
        return joined[[names.F_REQUEST_ID, names.F_ENDPOINT, names.F_TRACE_ID, "trace_flags",
                       "sampled_flag", "in_trace"]]


def sampled_flag(flags: str | None) -> bool:
    """The W3C trace-flags' sampled bit (0x01): '01' or '03' sampled, '00' or '02' not.

    Bit 0x02 is the 'random trace id' flag of W3C Trace Context level 2; it says nothing
    about sampling, so the flags must be read bit by bit, not compared with '01'.
    """
    return bool(int(flags or "0", 16) & 0x01)


def _sandbox_env(ratio: float, directory: Path) -> dict[str, str]:
    """The environment of the sandbox process: everything under directory, no collector."""
    scrubbed = ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "EXPORT_DIR",
                "LOG_FILE", "TRACE_FILE", "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "PROMETHEUS_MULTIPROC_DIR", "FAULTS_FILE")
    env = {k: v for k, v in os.environ.items() if k not in scrubbed}
    env.update({
        "VAR_DIR": str(directory), "APP_ENV": "test", "TRACING_ENABLED": "true",
        "LOG_FILE": str(directory / "web.jsonl"), "TRACE_FILE": str(directory / "spans.jsonl"),
        "OTEL_TRACES_SAMPLER": SAMPLER, "OTEL_TRACES_SAMPLER_ARG": f"{ratio:g}",
        "OTEL_SERVICE_NAME": "todo-web-sandbox",
    })
    return env


def run_sampled(ratio: float, requests: int, directory: Path, timeout_s: float = 120) -> SampledRun:
    """Run the app at a sampling ratio in a fresh process and read what it left (see above)."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"sampling ratio {ratio} must be between 0 and 1")
    directory.mkdir(parents=True, exist_ok=True)
    answers = directory / "headers.jsonl"
    done = subprocess.run([sys.executable, "-m", "analysis.sampling", str(requests), str(answers)],
                          env=_sandbox_env(ratio, directory), cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the sampling sandbox failed:\n{done.stderr[-2000:]}")
    lines = answers.read_text(encoding="utf-8").splitlines()
    headers = pd.DataFrame([json.loads(line) for line in lines if line.strip()],
                           columns=[names.F_REQUEST_ID, "traceparent"])
    access = logs.access_lines(logs.load_logs(directory / "web.jsonl").frame)
    span_file = directory / "spans.jsonl"
    spans = traces.read_span_file(span_file).spans if span_file.is_file() else []
    return SampledRun(ratio, access, spans, headers)


def _serve(requests: int, answers: Path) -> None:
    """The sandbox process: migrate, build the app, send the requests, flush the spans."""
    from app.migrate import upgrade
    from app.observability.tracing import flush_tracing

    upgrade()
    # The web process's own entry point: its logging (LOG_FILE), settings and tracing.
    from app.wsgi import app

    client = app.test_client()
    with answers.open("w", encoding="utf-8") as out:
        for index in range(requests):
            # Closing the response ends the request's context: an open one would make the
            # next request a child of this one (and, parent-based, share its sampling).
            with client.get(PATHS[index % len(PATHS)]) as answer:
                out.write(json.dumps({names.F_REQUEST_ID: answer.headers.get(names.REQUEST_ID_HEADER),
                                      "traceparent": answer.headers.get("traceparent")}) + "\n")
    flush_tracing(10_000)


if __name__ == "__main__":
    _serve(int(sys.argv[1]), Path(sys.argv[2]))
