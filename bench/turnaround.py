"""Lab turnaround: `lab demo` (what `make lab` runs after installation) from a cold start to
the finished report, then `lab down`."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from bench.footprint import lab, lab_env
from bench.stats import table
from stack.config import BIN_DIR

FULL_ARGS: list[str] = []  # the demo's own defaults, as `make lab` runs it
QUICK_ARGS = ["--duration", "10"]


def measure(tmp: Path, quick: bool) -> dict[str, Any]:
    """Time one cold `lab demo` in a fresh VAR_DIR, and the `lab down` after it."""
    env = lab_env(tmp / "demo")
    args = ["demo", *(QUICK_ARGS if quick else FULL_ARGS)]
    started = time.perf_counter()
    try:
        out = subprocess.run([str(BIN_DIR / "lab"), *args], env=env, capture_output=True,
                             text=True, timeout=900, check=False)
        code, output = out.returncode, out.stdout + out.stderr
    except subprocess.TimeoutExpired:
        code, output = -1, "timed out after 900 s"
    demo_s = time.perf_counter() - started
    down_s, _ = lab(["down"], env)
    report = next((line.split(":", 1)[1].strip() for line in output.splitlines()
                   if line.startswith("report:")), "")
    return {"args": args, "exit_code": code, "demo_s": demo_s, "down_s": down_s,
            "report_written": bool(report), "tail": output[-1500:] if code else ""}


def render(raw: dict[str, Any]) -> str:
    """One row: the demo's duration and outcome."""
    outcome = "report written" if raw["report_written"] else "no report"
    if raw["exit_code"]:
        outcome += f", exit code {raw['exit_code']}"
    rows = [[f"`lab {' '.join(raw['args'])}` (cold, fresh VAR_DIR)", f"{raw['demo_s']:.0f}", outcome],
            ["`lab down` afterwards", f"{raw['down_s']:.1f}", ""]]
    text = [
        "One run (it takes minutes; its length is mostly the demo's fixed load phase). It covers "
        "`lab up`, the Locust run with its fault window, every notebook executed headless and "
        "the HTML report: the whole of `make lab` after installation.",
        "",
        table(["step", "seconds", "outcome"], rows),
    ]
    if raw["exit_code"]:
        text += ["", "Last output of the failed demo:", "", "```", raw["tail"].strip(), "```"]
    return "\n".join(text)
