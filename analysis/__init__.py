"""Analysis of a lab run: Prometheus queries, JSON logs, traces, and their cross-checks.

The notebooks import these modules; the tests exercise the same functions on recorded
answers and against a live gunicorn and Prometheus.
"""
