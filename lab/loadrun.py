"""A recorded load run: Locust between two quiet edges, with faults switched on and off
during it; shared by `lab load` and `lab demo`."""


from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from analysis import prom
from analysis.lab_context import FaultWindow, LabContext, RunRecord, quiet_edge, write_run
from app.faults import FaultError, parse_assignment
from lab.console import say
from lab.errors import LabError
from loadtests.run import LOCUSTFILE, LoadRunError, run_headless
from loadtests.shapes import Profile, profile_from
from stack import launch, processes, topology
from stack.config import LabConfig
from stack.switchboard import FaultSwitch
from stack.topology import Service

# The workshop's faults, as `lab demo` and `lab load --faults workshop` (the day's run) inject
# them, with their windows in seconds into the load. The list page (todos.index) and the API's
# list (api.list_todos) take about half of the scenario's requests: half of their answers
# failing makes about a quarter of all answers 5xx, well over the fast burn's 14.4% (one
# endpoint alone sat near 17%, and an alert that close to its threshold fires late and
# erratically) and over HighErrorRate's 5% for a minute. Then 0.4 s on the list page puts
# about a third of all requests over 0.25 s: p95 misses the latency objective. Each window is
# 100 s, longer than the slowest predicted firing (for: 1m after the window fills), and the
# 60 s after the last one let the alerts resolve within the run.
WORKSHOP_FAULTS = (("error_rate.todos.index=0.5", "20-120"), ("error_rate.api.list_todos=0.5", "20-120"),
                   ("latency.todos.index=0.4", "140-240"))
WORKSHOP_DURATION = 300
WORKSHOP_USERS = 8
# Short think times so a few users give the fault windows enough requests.
WORKSHOP_WAIT = "0.2,0.8"


@dataclass(frozen=True)
class PlannedFault:
    """A fault to switch on `on_s` seconds after the load starts and off at `off_s`."""

    name: str
    value: float
    on_s: float
    off_s: float


def prometheus_client(config: LabConfig) -> prom.Prometheus:
    """The lab's Prometheus (PROMETHEUS_URL, else this lab's), with the lab's scrape interval."""
    return prom.Prometheus(config.environment.prometheus_url,
                           scrape_interval_s=prom.duration_seconds(config.scrape_interval))


def require_running(config: LabConfig) -> None:
    """A clear message when the stack is not up."""
    if config.environment.app_elsewhere:
        # A stack this launcher did not start (compose): up when its app answers ready.
        url = f"{config.environment.app_url}/readyz"
        try:
            ready = processes.http_session().get(url, timeout=5).status_code == 200
        except OSError:
            ready = False
        if not ready:
            raise LabError(f"the app at LAB_APP_URL does not answer ready ({url}): is the stack up?")
        return
    down = [s.name for s in topology.build(config) if not launch.inspect(config, s).running]
    if down:
        raise LabError(f"not running: {', '.join(down)}; start the lab with `lab up` first")


def workshop_faults(duration: float) -> list[PlannedFault]:
    """The workshop's faults in a run of duration seconds (at least WORKSHOP_DURATION)."""
    if duration < WORKSHOP_DURATION:
        raise LabError(f"the workshop's faults need a run of at least {WORKSHOP_DURATION} s "
                       f"(their windows end at 240 s and the alerts resolve by {WORKSHOP_DURATION} s)", 2)
    return [parse_fault(fault, window, duration) for fault, window in WORKSHOP_FAULTS]


def parse_fault(assignment: str, window: str | None, duration: float) -> PlannedFault:
    """NAME=VALUE with a window A-B in seconds (default: the middle third of the run)."""
    try:
        name, value = parse_assignment(assignment)
    except FaultError as exc:
        raise LabError(str(exc), 2) from None
    if not isinstance(value, float):
        raise LabError(f"{name}: a fault window takes a single value, not a range", 2)
    if window is None:
        on_s, off_s = duration / 3, 2 * duration / 3
    else:
        try:
            on_s, off_s = (float(part) for part in window.split("-", 1))
        except ValueError:
            raise LabError(f"--fault-window {window!r}: expected A-B in seconds, e.g. 20-40", 2) from None
    if not 0 <= on_s < off_s <= duration:
        raise LabError(f"--fault-window must satisfy 0 <= A < B <= duration ({duration:g})", 2)
    return PlannedFault(name, value, on_s, off_s)


def _switch(switch: FaultSwitch, planned: PlannedFault, began: float, done: threading.Event,
            record: list[FaultWindow]) -> None:
    """Switch the fault on and off at its times (off early if the run ends first)."""
    if done.wait(max(0.0, began + planned.on_s - time.monotonic())):
        return
    switch.set({planned.name: planned.value})
    on = datetime.now(UTC)
    print(f"fault on:  {planned.name}={planned.value:g}", flush=True)
    try:
        done.wait(max(0.0, began + planned.off_s - time.monotonic()))
    finally:
        switch.clear(planned.name)
        off = datetime.now(UTC)
        print(f"fault off: {planned.name}", flush=True)
        record.append(FaultWindow(planned.name, planned.value, on, off))


def recorded_load(config: LabConfig, profile: Profile,
                  fault: PlannedFault | Sequence[PlannedFault] | None = None,
                  extra_env: dict[str, str] | None = None, workers: int = 0,
                  crash: Service | None = None) -> RunRecord:
    """Run Locust between two quiet edges, with the fault(s) switched during it; record the run.
    `lab day`'s background traffic is paused meanwhile (the edges must be quiet, and every
    request of the run Locust's), and resumed after."""
    require_running(config)
    paused = stop_traffic(config)
    if paused:
        say("background traffic paused for the recorded run")
    try:
        return _recorded_load(config, profile, fault, extra_env, workers, crash)
    finally:
        if paused:
            start_traffic(config)
            say("background traffic resumed")


def _recorded_load(config: LabConfig, profile: Profile,
                   fault: PlannedFault | Sequence[PlannedFault] | None,
                   extra_env: dict[str, str] | None, workers: int, crash: Service | None = None) -> RunRecord:
    client = prometheus_client(config)
    out = config.environment.reports_dir
    print("waiting for a quiet edge (a scrape before and after) ...", flush=True)
    start = quiet_edge(client)
    done = threading.Event()
    windows: list[FaultWindow] = []
    planned = [] if fault is None else [fault] if isinstance(fault, PlannedFault) else list(fault)
    began = time.monotonic()
    switch = FaultSwitch.for_config(config)
    switchers = [threading.Thread(target=_switch, args=(switch, one, began, done, windows), daemon=True)
                 for one in planned]
    if crash is not None:
        switchers.append(threading.Thread(target=_crash_and_restart,
                                          args=(config, crash, began, done, windows), daemon=True))
    for switcher in switchers:
        switcher.start()
    try:
        result = run_headless(config.environment.app_url, profile, out, extra_env, workers=workers,
                              progress=say)
    except (ValueError, LoadRunError) as exc:
        raise LabError(f"load run failed: {exc}") from None
    finally:
        done.set()
        for switcher in switchers:
            switcher.join(10)
    end = quiet_edge(client)
    record = RunRecord(start, end, result.host, result.shape, result.users, result.duration,
                       result.stats_csv, result.stats_json, result.html,
                       sorted(windows, key=lambda w: w.on))
    print(result.summary())
    print(f"run recorded: {write_run(out, record)}")
    return record


def unrecorded_load(config: LabConfig, host: str, profile: Profile, workers: int = 0) -> None:
    """Locust alone against the app at host (not the lab's: nothing to record); reports as usual."""
    try:
        result = run_headless(host, profile, config.environment.reports_dir, workers=workers,
                              progress=say)
    except (ValueError, LoadRunError) as exc:
        raise LabError(f"load run failed: {exc}") from None
    print(result.summary())


def run_load(config: LabConfig, options: argparse.Namespace) -> None:
    """`lab load`: its options become one profile (loadtests.shapes.profile_from: option, then
    LOAD_* variable, then the shape's default), and the profile goes down to Locust once,
    recorded against the lab (with its faults) or, --host, unrecorded against another app."""
    workshop = options.faults == "workshop"
    if options.faults and options.fault:
        raise LabError(f"--faults {options.faults} or --fault, not both", 2)
    if options.faults == "fleet":
        if options.host:
            raise LabError("--host loads another app: its replicas are not the lab's to fault", 2)
        fleet_run(config, workers=options.workers)
        return
    # The workshop's run: its users and length unless the command line says otherwise.
    env = workshop_settings(config) if workshop else config.env
    try:
        profile = profile_from(env, options.shape, options.users, options.spawn_rate, options.duration)
    except ValueError as exc:
        raise LabError(str(exc), 2) from None
    if options.workers < 0:
        raise LabError("--workers: 0 (one process) or more", 2)
    host = (options.host or config.env.get("LOAD_HOST", "")).strip().rstrip("/")
    if host:
        if workshop or options.fault:
            raise LabError("--host loads another app: its faults are not the lab's to switch", 2)
        unrecorded_load(config, host, profile, workers=options.workers)
        return
    if workshop:
        recorded_load(config, profile, workshop_faults(profile.duration), extra_env=workshop_wait(config),
                      workers=options.workers)
        return
    faults = [parse_fault(options.fault, options.fault_window, profile.duration)] if options.fault else []
    recorded_load(config, profile, faults, workers=options.workers)


# The fleet's run (`lab up --web 3 --workers 2`, then `lab load --faults fleet`, 4 minutes):
# web-3 answers 30% of its requests with 500 for 90 s (the fleet's share stays near 10%, under
# the average's radar); worker-2 waits 1.5 s before each task for 3 minutes (the queue drains
# unevenly); web-2 crashes at 130 s (SIGKILL, no goodbye) and comes back at 170 s.
FLEET_DURATION = 240
FLEET_USERS = 8
FLEET_BAD_REPLICA = ("error_rate", 0.3, 20, 110)
FLEET_SLOW_WORKER = ("worker_delay", 1.5, 20, 200)
FLEET_CRASH = (130, 170)
# The name a crash window carries in the run record: killed@<instance>.
KILLED = "killed"


def fleet_plan(config: LabConfig) -> tuple[list[PlannedFault], Service]:
    """The fleet run's faults (each on one replica) and the web replica it crashes."""
    web = [s for s in topology.build(config) if s.family == "web"]
    workers = [s for s in topology.build(config) if s.family == "worker"]
    if len(web) < 3 or len(workers) < 2:
        raise LabError("the fleet's run needs 3 web and 2 worker replicas: `lab up --web 3 --workers 2` "
                       f"(this lab runs {len(web)} web and {len(workers)} worker)", 2)
    kind, value, on, off = FLEET_BAD_REPLICA
    slow_kind, slow_value, slow_on, slow_off = FLEET_SLOW_WORKER
    return [PlannedFault(f"{kind}@{web[2].instance(config)}", value, on, off),
            PlannedFault(f"{slow_kind}@{workers[1].instance(config)}", slow_value, slow_on, slow_off)], web[1]


def _crash_and_restart(config: LabConfig, replica: Service, began: float, done: threading.Event,
                       record: list[FaultWindow]) -> None:
    """Kill the replica at its time and start it again at the end of the crash window."""
    on_s, off_s = FLEET_CRASH
    if done.wait(max(0.0, began + on_s - time.monotonic())):
        return
    if not launch.crash(config, replica.name):
        say(f"{replica.name} was not running: nothing to crash")
        return
    on = datetime.now(UTC)
    print(f"crashed:   {replica.name} ({replica.instance(config)}), SIGKILL", flush=True)
    try:
        done.wait(max(0.0, began + off_s - time.monotonic()))
    finally:
        launch.up(config, say=lambda _: None)
        print(f"restarted: {replica.name}", flush=True)
        record.append(FaultWindow(f"{KILLED}@{replica.instance(config)}", 1.0, on, datetime.now(UTC)))


def fleet_run(config: LabConfig, workers: int = 0) -> RunRecord:
    """The fleet's run, as `lab load --faults fleet` records it."""
    faults, crashed = fleet_plan(config)
    profile = profile_from({**config.env, "LOAD_USERS": str(FLEET_USERS),
                            "LOAD_DURATION": str(FLEET_DURATION)})
    return recorded_load(config, profile, faults, extra_env=workshop_wait(config), workers=workers,
                         crash=crashed)


def workshop_settings(config: LabConfig) -> dict[str, str]:
    """The environment a workshop run's profile is made from: its users and length."""
    return {**config.env, "LOAD_USERS": str(WORKSHOP_USERS), "LOAD_DURATION": str(WORKSHOP_DURATION)}


def workshop_wait(config: LabConfig) -> dict[str, str]:
    """The workshop run's think time (LOAD_WAIT wins), for `lab load`, `lab day` and `lab demo`."""
    return {"LOAD_WAIT": config.env.get("LOAD_WAIT") or WORKSHOP_WAIT}


def workshop_run(config: LabConfig) -> RunRecord:
    """The run every module needs, as `lab load --faults workshop` records it."""
    profile = profile_from(workshop_settings(config))
    return recorded_load(config, profile, workshop_faults(profile.duration), extra_env=workshop_wait(config))


def has_workshop_run(config: LabConfig) -> RunRecord | None:
    """The recorded run, when it is the workshop's (its error and latency windows) against this
    lab's app; None otherwise (no run, a plain one, or one of another stack)."""
    try:
        record = LabContext(config.environment).last_run()
    except (FileNotFoundError, ValueError, KeyError):
        return None
    kinds = {window.name.split(".")[0] for window in record.faults}
    workshop = {"error_rate", "latency"} <= kinds
    return record if workshop and record.host == config.environment.app_url else None


# Gentle traffic between the exercises: two users thinking 2 to 6 s, all day (stopped by `lab down`).
TRAFFIC = "traffic"
TRAFFIC_USERS = 2
TRAFFIC_WAIT = "2,6"


def stop_traffic(config: LabConfig) -> bool:
    """Stop the background traffic if it runs (a recorded run needs quiet edges); True if it ran."""
    record = processes.read_pid(config.run_dir, TRAFFIC)
    if record is None:
        return False
    processes.stop([record], 10)
    processes.remove_pid(config.run_dir, TRAFFIC)
    return True


def start_traffic(config: LabConfig) -> int:
    """Locust in the background against the lab's app, recorded in var/run/traffic.pid like the
    services (so `lab down` and `lab status` know it); its pid (the running one's if any)."""
    record = processes.read_pid(config.run_dir, TRAFFIC)
    if record is not None and record.matches():
        return record.pid
    processes.remove_pid(config.run_dir, TRAFFIC)
    argv = [str(config.bin_dir / "python"), "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "--host", config.environment.app_url, "--shape", "steady",
            "--shape-users", str(TRAFFIC_USERS), "--shape-spawn-rate", "1",
            "--shape-duration", str(24 * 3600), "--only-summary"]
    env = {**config.env, "LOAD_WAIT": TRAFFIC_WAIT,
           "PYTHONPATH": str(config.root)}
    popen, _ = processes.start_detached(TRAFFIC, argv, env, config.root, config.log_dir / "traffic.log",
                                        config.run_dir, 0)
    return popen.pid
