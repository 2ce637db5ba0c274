"""Traces from Jaeger's query API or the local span file, as span trees with a critical path.

Both sources are normalised into one ``Span`` model (times in ns since the epoch, ids as
lowercase hex, the same strings the logs carry in trace_id/span_id).

Critical path, computed as Jaeger's UI does (jaeger-ui's `computeCriticalPath`): the
stretches of the root span's time during which some span was the one the root was waiting
on. First each child is bounded by its parent: a child that ends after its parent is cut at
the parent's end, one that starts after its parent ended is dropped, and follows-from
children (a message consumer under its producer: the Celery task's `run/` span under
`apply_async/`) are dropped, because nobody waits for them. Then, walking back from the
root's end: the child that finished last is on the path from its end; descend into it; when a
span has no child finishing before the point reached, its own time back to its start is on
the path, and the walk returns to its parent at that start. The sections tile the root's
duration exactly, so "what to make faster to answer sooner" is read off the path; work that
outlives the request (the worker's export) is not on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import requests

if TYPE_CHECKING:
    from matplotlib.axes import Axes


@dataclass(frozen=True)
class Span:
    """One span, whatever its source."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    start_ns: int
    end_ns: int
    kind: str = "INTERNAL"
    status: str = "UNSET"
    attributes: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def duration_ms(self) -> float:
        """Wall time of the span in milliseconds."""
        return (self.end_ns - self.start_ns) / 1e6


@dataclass
class SpanNode:
    """A span and its children, ordered by start time."""

    span: Span
    children: list[SpanNode] = field(default_factory=list)

    def walk(self, depth: int = 0) -> Iterator[tuple[int, SpanNode]]:
        """Depth-first (depth, node) pairs, this node first."""
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)


@dataclass
class SpanLoad:
    """Spans read from a file, and how many lines could not be read."""

    spans: list[Span]
    malformed: int = 0


# --- the local span file (app.observability.tracing.JsonLinesSpanExporter) -----------------

def span_from_record(record: dict[str, Any]) -> Span:
    """A Span from one span-file record (see app.observability.tracing.span_to_dict)."""
    return Span(
        trace_id=str(record["trace_id"]), span_id=str(record["span_id"]),
        parent_id=record.get("parent_id") or None, name=str(record["name"]),
        service=str(record.get("service") or ""), start_ns=int(record["start_ns"]),
        end_ns=int(record["end_ns"]), kind=str(record.get("kind") or "INTERNAL"),
        status=str(record.get("status") or "UNSET"),
        attributes=dict(record.get("attributes") or {}),
    )


def read_span_file(path: str | Path, trace_id: str | None = None) -> SpanLoad:
    """Spans from a JSON-lines span file (all of them, or one trace's); bad lines are counted."""
    spans: list[Span] = []
    malformed = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                span = span_from_record(json.loads(line))
            except (ValueError, KeyError, TypeError, AttributeError):
                malformed += 1
                continue
            if trace_id is None or span.trace_id == trace_id.lower():
                spans.append(span)
    return SpanLoad(spans, malformed)


# --- Jaeger's HTTP query API ---------------------------------------------------------------

def parse_jaeger(payload: dict[str, Any]) -> list[Span]:
    """Spans of the first trace in a Jaeger /api/traces answer."""
    data = payload.get("data") or []
    if not data:
        return []
    trace = data[0]
    processes = trace.get("processes") or {}
    spans = []
    for raw in trace.get("spans") or []:
        tags = {t["key"]: t.get("value") for t in raw.get("tags") or []}
        parent = next((r["spanID"] for r in raw.get("references") or []
                       if r.get("refType") == "CHILD_OF"), None)
        service = (processes.get(raw.get("processID")) or {}).get("serviceName", "")
        start_ns = int(raw["startTime"]) * 1000
        fallback = "ERROR" if tags.get("error") is True else "UNSET"
        status = str(tags.pop("otel.status_code", fallback))
        spans.append(Span(
            trace_id=str(raw["traceID"]).lower().rjust(32, "0"),
            span_id=str(raw["spanID"]).lower().rjust(16, "0"),
            parent_id=str(parent).lower().rjust(16, "0") if parent else None,
            name=str(raw["operationName"]), service=str(service), start_ns=start_ns,
            end_ns=start_ns + int(raw["duration"]) * 1000,
            kind=str(tags.pop("span.kind", "internal")).upper(), status=status, attributes=tags,
        ))
    return spans


def fetch_jaeger_trace(jaeger_url: str, trace_id: str, timeout_s: float = 10) -> list[Span]:
    """GET {jaeger_url}/api/traces/{trace_id} and parse it; LookupError if Jaeger lacks it."""
    response = requests.get(f"{jaeger_url.rstrip('/')}/api/traces/{trace_id}", timeout=timeout_s)
    if response.status_code == 404:
        raise LookupError(f"Jaeger has no trace {trace_id}")
    response.raise_for_status()
    spans = parse_jaeger(response.json())
    if not spans:
        raise LookupError(f"Jaeger has no trace {trace_id}")
    return spans


def _jaeger_tag(key: str, value: Any) -> dict[str, Any]:
    kinds = {bool: "bool", int: "int64", float: "float64"}
    return {"key": key, "type": kinds.get(type(value), "string"),
            "value": value if type(value) in kinds else str(value)}


def to_jaeger(spans: Iterable[Span]) -> dict[str, Any]:
    """Spans of one trace as Jaeger's /api/traces/{id} answer (for recording test data)."""
    spans = list(spans)
    process_ids: dict[str, str] = {}
    for span in spans:
        process_ids.setdefault(span.service, f"p{len(process_ids) + 1}")
    jaeger_spans = []
    for span in spans:
        tags = [_jaeger_tag(k, v) for k, v in sorted(span.attributes.items())]
        tags.append(_jaeger_tag("span.kind", span.kind.lower()))
        if span.status != "UNSET":
            tags.append(_jaeger_tag("otel.status_code", span.status))
        if span.status == "ERROR":
            tags.append(_jaeger_tag("error", True))
        jaeger_spans.append({
            "traceID": span.trace_id, "spanID": span.span_id, "flags": 1,
            "operationName": span.name,
            "references": [{"refType": "CHILD_OF", "traceID": span.trace_id,
                            "spanID": span.parent_id}] if span.parent_id else [],
            "startTime": span.start_ns // 1000, "duration": (span.end_ns - span.start_ns) // 1000,
            "tags": tags, "logs": [], "processID": process_ids[span.service], "warnings": None,
        })
    trace_id = spans[0].trace_id if spans else ""
    return {
        "data": [{"traceID": trace_id, "spans": jaeger_spans, "warnings": None,
                  "processes": {pid: {"serviceName": svc, "tags": []}
                                for svc, pid in process_ids.items()}}],
        "total": 0, "limit": 0, "offset": 0, "errors": None,
    }


# --- trees, critical path, rendering -------------------------------------------------------

def build_tree(spans: Iterable[Span]) -> list[SpanNode]:
    """Span trees, roots first by start time; a span whose parent is missing becomes a root."""
    nodes = {s.span_id: SpanNode(s) for s in spans}
    roots = []
    for node in nodes.values():
        parent = nodes.get(node.span.parent_id or "")
        if parent is None or parent is node:
            roots.append(node)
        else:
            parent.children.append(node)
    for node in nodes.values():
        node.children.sort(key=lambda n: (n.span.start_ns, n.span.span_id))
    return sorted(roots, key=lambda n: (n.span.start_ns, n.span.span_id))


def root_of(spans: Iterable[Span]) -> SpanNode:
    """The tree of the trace's root span (the earliest root when parents are missing)."""
    roots = build_tree(spans)
    if not roots:
        raise ValueError("no spans")
    return roots[0]


def subtree_end_ns(node: SpanNode) -> int:
    """When a span or the last of its descendants ends."""
    return max([node.span.end_ns, *(subtree_end_ns(c) for c in node.children)])


def follows_from(parent: Span, child: Span) -> bool:
    """True when the parent does not wait for the child: a message consumed after being produced."""
    return parent.kind == "PRODUCER" and child.kind == "CONSUMER"


@dataclass(frozen=True)
class Section:
    """A stretch of time during which span was on the critical path."""

    span: Span
    start_ns: int
    end_ns: int

    @property
    def duration_ms(self) -> float:
        """Length of the section in milliseconds."""
        return (self.end_ns - self.start_ns) / 1e6


@dataclass
class _Bounded:
    """A span bounded by its parent, with its kept children sorted by end, latest first."""

    span: Span
    start_ns: int
    end_ns: int
    parent: _Bounded | None
    children: list[_Bounded] = field(default_factory=list)


def _bounded(node: SpanNode, start_ns: int, end_ns: int, parent: _Bounded | None) -> _Bounded:
    """node cut to [start_ns, end_ns]; children outside it or follows-from are dropped."""
    here = _Bounded(node.span, start_ns, end_ns, parent)
    for child in node.children:
        span = child.span
        if follows_from(node.span, span) or span.start_ns > end_ns or span.end_ns < start_ns:
            continue
        here.children.append(_bounded(child, max(span.start_ns, start_ns),
                                      min(span.end_ns, end_ns), here))
    here.children.sort(key=lambda c: (c.end_ns, c.start_ns), reverse=True)
    return here


def critical_path_sections(root: SpanNode) -> list[Section]:
    """The critical path as Jaeger computes it (see the module docstring), in time order."""
    sections: list[Section] = []
    node: _Bounded | None = _bounded(root, root.span.start_ns, root.span.end_ns, None)
    returning: int | None = None  # the start of the child the walk came back from
    while node is not None:
        limit = node.end_ns if returning is None else returning
        candidates = node.children if returning is None else \
            [c for c in node.children if c.end_ns < returning]
        if candidates:
            child = candidates[0]
            if child.end_ns < limit:
                sections.append(Section(node.span, child.end_ns, limit))
            node, returning = child, None
        else:
            if node.start_ns < limit:
                sections.append(Section(node.span, node.start_ns, limit))
            returning = node.start_ns
            node = node.parent
    return sections[::-1]


def critical_path(root: SpanNode) -> list[Span]:
    """The spans on the critical path: the root, then the others in the order the path reaches them."""
    seen: dict[str, Span] = {root.span.span_id: root.span}
    for section in critical_path_sections(root):
        seen.setdefault(section.span.span_id, section.span)
    return list(seen.values())


def trace_duration_ms(spans: Iterable[Span]) -> float:
    """From the first span's start to the last span's end, in milliseconds."""
    spans = list(spans)
    return (max(s.end_ns for s in spans) - min(s.start_ns for s in spans)) / 1e6


def waterfall_frame(spans: Iterable[Span]) -> pd.DataFrame:
    """One row per span in tree order: depth, offsets (ms from trace start), critical path share.

critical: the span is on the critical path; critical_ms: how long it was (Jaeger's sections).
"""
    spans = list(spans)
    columns = ["span_id", "parent_id", "name", "service", "depth", "start_ms", "duration_ms",
               "end_ms", "status", "critical", "critical_ms"]
    if not spans:
        return pd.DataFrame(columns=columns)
    t0 = min(s.start_ns for s in spans)
    rows = []
    for root in build_tree(spans):
        on_path: dict[str, float] = {}
        for section in critical_path_sections(root):
            on_path[section.span.span_id] = on_path.get(section.span.span_id, 0.0) + section.duration_ms
        for depth, node in root.walk():
            s = node.span
            rows.append({"span_id": s.span_id, "parent_id": s.parent_id, "name": s.name,
                         "service": s.service, "depth": depth, "start_ms": (s.start_ns - t0) / 1e6,
                         "duration_ms": s.duration_ms, "end_ms": (s.end_ns - t0) / 1e6,
                         "status": s.status, "critical": s.span_id in on_path,
                         "critical_ms": on_path.get(s.span_id, 0.0)})
    return pd.DataFrame(rows, columns=columns)


def render_tree(spans: Iterable[Span]) -> str:
    """The trace as indented text: offset, duration, service, name; * marks the critical path."""
    frame = waterfall_frame(spans)
    lines = []
    for row in frame.itertuples(index=False):
        mark = "*" if row.critical else " "
        error = "  ERROR" if row.status == "ERROR" else ""
        lines.append(f"{mark} {row.start_ms:9.2f} ms {row.duration_ms:9.2f} ms  "
                     f"{'  ' * int(row.depth)}{row.name} [{row.service}]{error}")
    return "\n".join(lines)


def plot_waterfall(spans: Iterable[Span], ax: Axes | None = None, title: str = "") -> Axes:
    """A span waterfall: one bar per span, critical path highlighted."""
    import matplotlib.pyplot as plt

    spans = list(spans)
    frame = waterfall_frame(spans)
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 0.4 * len(frame) + 1.5))
    colours = ["tab:red" if c else "tab:blue" for c in frame["critical"]]
    y = range(len(frame))
    ax.barh(list(y), frame["duration_ms"], left=frame["start_ms"], color=colours)
    labels = ["  " * d + n for d, n in zip(frame["depth"], frame["name"], strict=True)]
    ax.set_yticks(list(y), labels)
    ax.invert_yaxis()
    ax.set_xlabel("ms since trace start (red: critical path)")
    ax.set_title(title or (f"trace {spans[0].trace_id}" if spans else "empty trace"))
    return ax
