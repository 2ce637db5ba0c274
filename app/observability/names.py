"""Metric, label, log-field and span-attribute names: defined once, imported everywhere."""

from __future__ import annotations

from typing import Final

# Metrics
HTTP_REQUEST_DURATION: Final = "http_request_duration_seconds"
BACKGROUND_JOBS: Final = "background_jobs_total"
BACKGROUND_JOB_DURATION: Final = "background_job_duration_seconds"

# The latency objective the lab teaches: 95% of requests faster than this.
LATENCY_OBJECTIVE_SECONDS: Final = 0.25
# Buckets bracket web latency, with a boundary exactly at the objective so that
# "share of requests under the objective" needs no interpolation.
HTTP_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

UNMATCHED_ENDPOINT: Final = "unmatched"

# Job types (the job_type label); every task that is counted declares one of these.
JOB_EXPORT: Final = "export"
JOB_TYPES: Final = (JOB_EXPORT,)

# Job statuses counted in background_jobs_total.
JOB_ENQUEUED: Final = "enqueued"
JOB_STARTED: Final = "started"
JOB_SUCCEEDED: Final = "succeeded"
JOB_FAILED: Final = "failed"
JOB_RETRIED: Final = "retried"

# Log fields
F_TIMESTAMP: Final = "timestamp"
F_LEVEL: Final = "level"
F_LOGGER: Final = "logger"
F_MESSAGE: Final = "message"
F_REQUEST_ID: Final = "request_id"
F_METHOD: Final = "http.method"
F_PATH: Final = "http.path"
F_STATUS: Final = "status_code"
F_DURATION_MS: Final = "duration_ms"
F_CLIENT_IP: Final = "client_ip"
F_USER_AGENT: Final = "user_agent"
F_TRACE_ID: Final = "trace_id"
F_SPAN_ID: Final = "span_id"
F_TASK_ID: Final = "task_id"
F_JOB_TYPE: Final = "job_type"
F_SERVICE: Final = "service"
# The replica that wrote the line, named as Prometheus names its target (Settings.instance_id).
F_INSTANCE: Final = "instance"
F_PID: Final = "pid"
F_ENDPOINT: Final = "endpoint"

ACCESS_LOGGER: Final = "app.access"

# Service names (the `service` log field, the spans' service.name, the config-error line).
WEB_SERVICE: Final = "todo-web"
WORKER_SERVICE: Final = "todo-worker"
REQUEST_ID_HEADER: Final = "X-Request-ID"
# Celery message header that carries the web request id into the worker's log lines.
TASK_REQUEST_ID_HEADER: Final = "lab_request_id"
# The logger of the export task: the name its lines have always carried in the worker's log.
TASK_LOGGER: Final = "worker.tasks"

# Alert notifications, recorded by the lab's webhook receiver (stack/alert_receiver.py) in
# $VAR_DIR/log/ALERTS_LOG: one JSON object per alert per notification, firing or resolved.
ALERTS_LOG: Final = "alerts.jsonl"
A_RECEIVED: Final = "received"      # when the receiver got the notification (UTC, ISO 8601)
A_STATUS: Final = "status"          # firing or resolved
A_ALERTNAME: Final = "alertname"
A_LABELS: Final = "labels"
A_ANNOTATIONS: Final = "annotations"
A_STARTS_AT: Final = "startsAt"     # when Prometheus saw the alert fire
A_ENDS_AT: Final = "endsAt"         # when it resolved (a resolved alert), else a future expiry
A_FINGERPRINT: Final = "fingerprint"
A_GROUP_KEY: Final = "groupKey"
