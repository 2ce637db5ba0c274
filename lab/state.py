"""What runs right now: each service's pid file checked against the live process."""

from __future__ import annotations

from dataclasses import dataclass

import requests

from lab import procs
from lab.config import LabConfig
from lab.services import Service


@dataclass(frozen=True)
class ServiceState:
    """A service as `lab status` reports it."""

    service: Service
    record: procs.PidRecord | None
    running: bool

    @property
    def stale(self) -> bool:
        """A pid file whose process is gone (or whose pid now belongs to another program)."""
        return self.record is not None and not self.running


def inspect(config: LabConfig, service: Service) -> ServiceState:
    """Read service's pid file and check that the very process it names still runs."""
    record = procs.read_pid(config.run_dir, service.name)
    running = record is not None and record.matches()
    return ServiceState(service, record, running)


def health(service: Service, session: requests.Session) -> str | None:
    """None when service passes its check; else the problem, in a few words."""
    try:
        return service.check(session)
    except requests.RequestException as exc:
        return f"not answering ({type(exc).__name__})"
    except (ValueError, KeyError) as exc:
        return f"unexpected answer ({exc})"
