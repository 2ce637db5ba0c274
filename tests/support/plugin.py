"""Stack fixtures for the tests, in the manner of celery.contrib.pytest.

Every stack a test runs against is started by the stack library (stack.launch.attached) and
always stopped, also when one of its services fails to start. Variations come from
overriding a fixture, never from copying setup:

- `stack_settings` (module scope): the settings every stack of a module starts with: the
  test defaults on the run's PostgreSQL database and Redis database number. A module
  overrides it by defining a fixture of the same name (test_browser.py: the embedded
  defaults).
- `stack_factory` (module scope): `with stack_factory(settings, services, ...) as running`
  starts a private stack (its own VAR_DIR and free ports) with `stack_settings` plus
  settings, and yields its `stack.launch.Running` (`running.web.url`,
  `running.worker.metrics_url`, `running.web.output()`, ...). For the modules that need a
  stack of their own: tracing on, a password in the database URL, a faults token, a dead
  collector, a service stopped on purpose.
- `live_stacks` / `live_stack` (session scope): the one shared web + worker per backend
  (PostgreSQL and Redis, or the embedded defaults), started on first use; `live_web` and
  `live_worker` are its parts.

Every process these fixtures start is stopped by its pid (its session), never by name, and
none outlives the run: a run stopped by SIGTERM or SIGHUP (`timeout`, a CI limit, a closed
terminal) tears its stacks down as Ctrl-C does, an xdist worker stops with the run that
started it, and every service a stack starts is sent SIGTERM by the kernel when the process
that started it dies, however it dies (stack.processes.spawn).
"""

from __future__ import annotations

import itertools
import signal
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path

import pytest

from stack import launch
from stack.config import LabConfig
from stack.databases import reserved_redis_db
from stack.processes import Proc, follow_parent
from tests.support.backends import Backend

# What every test stack runs with unless a test says otherwise: short broker timeouts so an
# outage answers quickly, a short visibility timeout so a lost message comes back in a test.
TEST_SETTINGS: dict[str, str] = {
    "APP_ENV": "test", "LOG_LEVEL": "INFO", "BROKER_TIMEOUT": "2", "CELERY_VISIBILITY_TIMEOUT": "30",
}
# Each worker gets a node name of its own (several run on this host), and logs at INFO.
_worker_numbers = itertools.count(1)

StackFactory = Callable[..., AbstractContextManager[launch.Running]]
# The signals that stop a run from outside; each tears the run down as Ctrl-C would.
STOPPING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _stop_like_ctrl_c(signum: int, frame: object) -> None:
    """Turn a stopping signal into KeyboardInterrupt: pytest then runs every fixture's teardown
    (the stacks' `finally`) before it exits, where the signal's default would end the process
    at once and leave its stacks running."""
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Stopping signals end a run cleanly; an xdist worker stops when its controller dies."""
    for sig in STOPPING_SIGNALS:
        signal.signal(sig, _stop_like_ctrl_c)
    if hasattr(config, "workerinput"):
        follow_parent()


def worker_args(name: str = "worker") -> tuple[str, ...]:
    """The arguments that make a test's worker distinct on this host and verbose enough."""
    return ("--loglevel=INFO", f"--hostname={name}-{next(_worker_numbers)}@%h")


@contextmanager
def private_stack(root: Path, settings: Mapping[str, str], services: tuple[str, ...] = ("web", "worker"),
                  workers: int = 2, threads: int = 4, concurrency: int = 2,
                  extra_worker_args: tuple[str, ...] = (), migrate: bool = True,
                  timeout: float = 90) -> Iterator[launch.Running]:
    """A stack of its own under root (its VAR_DIR, unless settings name another), stopped
    on the way out whatever happens."""
    config = LabConfig.private(
        root / "var",
        {**TEST_SETTINGS, "GUNICORN_WORKERS": str(workers), "GUNICORN_THREADS": str(threads), **settings},
        worker_concurrency=concurrency, worker_args=(*worker_args(), *extra_worker_args),
    )
    with launch.attached(config, services, timeout=timeout, migrate_first=migrate) as running:
        yield running


@pytest.fixture(scope="module")
def stack_settings(postgres_backend: Backend) -> dict[str, str]:
    """The settings of this module's stacks: PostgreSQL and Redis of the run (override in a
    module to change them)."""
    return {k: v for k, v in postgres_backend.env.items() if k != "VAR_DIR"}


@pytest.fixture(scope="module")
def stack_factory(stack_settings: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> StackFactory:
    """Start a private stack: `with stack_factory(settings, services, ...) as running`, with
    stack_settings plus settings; options as private_stack's."""

    @contextmanager
    def make(settings: Mapping[str, str] | None = None, services: tuple[str, ...] = ("web", "worker"),
             **options: object) -> Iterator[launch.Running]:
        root = tmp_path_factory.mktemp("stack")
        merged = {**stack_settings, **(settings or {})}
        with ExitStack() as own:
            if "CELERY_BROKER_URL" not in (settings or {}) and \
                    merged.get("CELERY_BROKER_URL", "").startswith("redis://"):
                # A Redis database of its own: on the run's shared one, the shared stack's
                # worker would take this stack's tasks (with other faults, another export dir).
                merged["CELERY_BROKER_URL"] = own.enter_context(reserved_redis_db())
            yield own.enter_context(private_stack(root, merged, services, **options))  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="session")
def live_stacks(postgres_backend: Backend, embedded_backend: Backend,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], launch.Running]]:
    """The one shared stack of the run on a backend ("postgres" or "embedded"): real gunicorn
    (2 workers x 4 threads) and a real prefork worker (concurrency 2), started on first use
    and stopped at the end of the run."""
    backends = {b.name: b for b in (postgres_backend, embedded_backend)}
    running: dict[str, launch.Running] = {}
    with ExitStack() as stacks:

        def on(name: str) -> launch.Running:
            if name not in running:
                # The backend's own VAR_DIR: the in-process app of a test downloads the
                # exports this worker writes there.
                root = tmp_path_factory.mktemp(f"live-{name}")
                running[name] = stacks.enter_context(
                    private_stack(root, backends[name].env, migrate=False))
            return running[name]

        yield on


@pytest.fixture(scope="session")
def live_stack(backend: Backend, live_stacks: Callable[[str], launch.Running]) -> launch.Running:
    """The shared stack on each backend in turn."""
    return live_stacks(backend.name)


@pytest.fixture(scope="session")
def live_worker(live_stack: launch.Running) -> Proc:
    """The Celery worker of the shared stack."""
    return live_stack.worker


@pytest.fixture(scope="session")
def live_web(live_stack: launch.Running) -> str:
    """The base URL of the shared stack's gunicorn."""
    return live_stack.web.url
