"""The stack library: the lab's topology described once, and two ways to run it.

- config.py: the typed settings of one stack (ports, VAR_DIR layout, environment)
- topology.py: every service (web, worker, Caddy, the alert receiver, Alertmanager,
  Prometheus): how it starts, where it logs, how it proves healthy. A new service is added
  in `topology.build()` and nowhere else.
- processes.py: one process started, recorded (pid + start time) and stopped by its session
- prometheus.py: the local Prometheus's configuration, rendered from the topology
- alertmanager_config.py: the local Alertmanager's configuration, rendered from the shared one
- alert_receiver.py: the webhook receiver that records every notification (alerts.jsonl)
- launch.py: detached mode (what `lab up` and `lab down` do) and attached mode (a context
  manager that yields running services and always stops them)

Used by the launcher (lab/), the benchmarks (bench/) and the tests (tests/support/). It
sits above the app and below both: it imports nothing from lab, bench or tests.

This folder also holds the stack's configuration files (gunicorn.conf.py, caddy/,
prometheus/, alertmanager/) and its install scripts.
"""
