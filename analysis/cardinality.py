"""Cardinality: how many time series a metric makes, counted in Prometheus and in a sandbox.

Every distinct combination of label values is one time series, and a histogram multiplies
it by its buckets (+Inf, `_count` and `_sum` included). `labelled_histogram` replays the
lab's own access lines into a fresh prometheus_client registry (a sandbox: the app's real
metrics are untouched) with the labels a learner chooses, so the cost of a label such as the
raw path or the request id is counted, not guessed.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from prometheus_client import CollectorRegistry, Histogram

from analysis import prom
from app.observability import names


def series_in_registry(registry: CollectorRegistry) -> int:
    """Time series (samples of one scrape) a registry would expose, `_created` left out.

    A plain registry adds a `_created` timestamp per label set; the app's multiprocess
    /metrics has none, so counting it would overstate what the app exposes.
    """
    return sum(1 for metric in registry.collect() for sample in metric.samples
               if not sample.name.endswith("_created"))


def labelled_histogram(access: pd.DataFrame, labels: Sequence[str],
                       buckets: Sequence[float] = names.HTTP_BUCKETS) -> CollectorRegistry:
    """A sandbox registry holding the request histogram labelled by the given access-line fields.

    Label names are the fields with dots made underscores (``http.path`` -> ``http_path``),
    as Prometheus label names allow no dots.
    """
    registry = CollectorRegistry()
    label_names = [label.replace(".", "_") for label in labels]
    histogram = Histogram(names.HTTP_REQUEST_DURATION, "request duration (sandbox)",
                          label_names, registry=registry, buckets=tuple(buckets))
    values = access[list(labels)].astype("string").fillna("").itertuples(index=False, name=None)
    for label_values, duration_ms in zip(values, access[names.F_DURATION_MS], strict=True):
        child = histogram.labels(*label_values) if label_names else histogram
        child.observe(float(duration_ms) / 1000)
    return registry


def explosion_table(access: pd.DataFrame, label_sets: Sequence[Sequence[str]],
                    buckets: Sequence[float] = names.HTTP_BUCKETS) -> pd.DataFrame:
    """One row per label set: distinct label combinations, and series in a sandbox registry."""
    rows = []
    for labels in label_sets:
        combinations = len(access[list(labels)].drop_duplicates()) if labels else 1
        registry = labelled_histogram(access, labels, buckets)
        rows.append({"labels": ", ".join(labels) or "(none)", "combinations": combinations,
                     "series": series_in_registry(registry),
                     "series per combination": len(buckets) + 3})
    return pd.DataFrame(rows)


def series_per_metric(prometheus: prom.Prometheus, top: int = 15) -> pd.DataFrame:
    """The metrics with the most series in Prometheus right now (name, series), largest first."""
    frame = prometheus.instant('count by (__name__) ({__name__=~".+"})')
    if frame.empty:
        return pd.DataFrame(columns=["__name__", "series"])
    table = frame.rename(columns={"value": "series"})[["__name__", "series"]]
    table["series"] = table["series"].astype("int64")
    return table.sort_values("series", ascending=False, ignore_index=True).head(top)
