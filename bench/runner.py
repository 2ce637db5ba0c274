"""Run the load generator as a separate process and read its result."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from app.layout import PROJECT_ROOT


def load(port: int, paths: list[str] | str, duration: float = 5.0, concurrency: int = 16,
         warmup: float = 0.0, method: str = "GET", body: str = "", total: int = -1) -> dict[str, Any]:
    """Load 127.0.0.1:port from a child process; returns the loadgen's JSON result."""
    argv = [sys.executable, "-m", "bench", "loadgen", "--port", str(port), "--duration", str(duration),
            "--warmup", str(warmup), "--concurrency", str(concurrency), "--method", method,
            "--total", str(total)]
    for path in [paths] if isinstance(paths, str) else paths:
        argv += ["--path", path]
    if body:
        argv += ["--body", body]
    limit = (duration + warmup) * 3 + 60 if total < 0 else 1800
    out = subprocess.run(argv, capture_output=True, text=True, timeout=limit, check=False,
                         cwd=PROJECT_ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout)
    return result
