"""Record real Prometheus HTTP API answers through a proxy, and serve them back in tests.

Answers are keyed by (path, query): the PromQL text already pins the moments it needs (the
@ modifier), and each recorded query is asked once, so this key is unique and stable.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from stack.small_http import Answer, Request, SmallServer


def key(path: str, query: str) -> str:
    """The manifest key of one API call."""
    return f"{path} {query}"


class _Recorder:
    """Answers from the recorded files, or from upstream while recording them."""

    def __init__(self, manifest: dict[str, str], directory: Path, upstream: str | None) -> None:
        self.manifest = manifest
        self.directory = directory
        self.upstream = upstream
        self.lock = threading.Lock()

    def route(self, request: Request) -> Answer:
        """GET of the Prometheus API: the recorded answer (404 when none), or upstream's."""
        status, body = self.answer(request.path, dict(request.query))
        return Answer(status, body)

    def answer(self, path: str, params: dict[str, str]) -> tuple[int, bytes]:
        k = key(path, params.get("query", ""))
        if self.upstream is None:
            name = self.manifest.get(k)
            if name is None:
                return 404, json.dumps({"status": "error", "error": f"not recorded: {k}"}).encode()
            return 200, (self.directory / name).read_bytes()
        response = requests.get(self.upstream + path, params=params, timeout=10)
        body = response.content
        if response.status_code == 200:
            with self.lock:
                name = self.manifest.get(k) or f"prom-{len(self.manifest) + 1:03d}.json"
                self.manifest[k] = name
                # Pretty-printed so a reviewer can read what Prometheus answered.
                (self.directory / name).write_text(
                    json.dumps(response.json(), indent=1) + "\n", encoding="utf-8")
        return response.status_code, body


@contextmanager
def serve(directory: Path, upstream: str | None = None) -> Iterator[str]:
    """Replay the answers in directory (or record them from upstream); yields the base URL."""
    manifest_path = directory / "manifest.json"
    manifest: dict[str, str] = (
        json.loads(manifest_path.read_text(encoding="utf-8")) if upstream is None else {})
    if upstream is not None:
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("prom-*.json"):
            old.unlink()
    server = SmallServer(_Recorder(manifest, directory, upstream).route).start()
    try:
        yield server.url
    finally:
        server.stop()
        if upstream is not None:
            manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n",
                                     encoding="utf-8")
