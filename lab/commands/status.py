"""`lab status`: each service's pid, port and health (every replica of a fleet, with its
Prometheus instance), and what runs on demand (JupyterLab, the
day's background traffic)."""

from __future__ import annotations

import argparse

from stack import launch, processes, topology
from stack.config import LabConfig


def run(args: argparse.Namespace) -> int:
    """Print one line per service; exit 0 only when all run and are healthy."""
    config = LabConfig.from_env()
    session = processes.http_session()
    all_well = True
    fleet = config.web_replicas > 1 or config.worker_replicas > 1
    print(f"{'service':<15} {'state':<9} {'pid':>7}  {'port':>5}  health")
    for service in topology.build(config):
        current = launch.inspect(config, service)
        port = service.port(config)
        if current.running:
            assert current.record is not None
            problem = launch.health(service, session)
            health = "ok" if problem is None else f"failing: {problem}"
            pid = str(current.record.pid)
            label = "running"
        else:
            problem, health, pid = "stopped", "-", "-"
            label = "stale" if current.stale else "stopped"
        all_well = all_well and problem is None
        replica = f"  (replica {service.replica} of {service.job}: instance {service.instance(config)})" \
            if fleet and service.family else ""
        print(f"{service.name:<15} {label:<9} {pid:>7}  {port:>5}  {health}{replica}")
    # Started on demand (`lab notebook`, `lab day`'s traffic): shown when recorded, never a fault.
    for name in launch.ON_DEMAND:
        record = processes.read_pid(config.run_dir, name)
        if record is not None:
            state = "running" if record.matches() else "stale"
            shown_port = str(record.port) if record.port else "-"
            print(f"{name:<15} {state:<9} {record.pid:>7}  {shown_port:>5}  -")
    return 0 if all_well else 3
