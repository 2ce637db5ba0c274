"""Fixtures over real services: the backends (PostgreSQL + Redis, or the embedded SQLite
defaults), the in-process app and its client; the stacks come from tests/support/plugin.py.

Every test run creates its own PostgreSQL database and takes a Redis database number of
its own; both are dropped/flushed at the end. The contract tests run twice: on
PostgreSQL + Redis and on the embedded SQLite defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import close_app, create_app
from app.migrate import upgrade
from app.settings import Settings
from stack.databases import reserved_redis_db, temporary_pg_database
from tests.support import sqlite_guard
from tests.support.backends import Backend
from tests.support.promdata import FLEET_RULES, RecordedPrometheus, fleet_openmetrics, synthetic_prometheus

# The stack fixtures (stack_settings, stack_factory, live_stack, live_web, live_worker).
pytest_plugins = ["tests.support.plugin"]

# Fixtures whose use puts a test on PostgreSQL (the `postgres` marker is set from them).
POSTGRES_FIXTURES = frozenset({"pg_database_url", "postgres_backend"})
# Fixtures that start processes of the stack (the `stack` marker is set from them).
STACK_FIXTURES = frozenset({"live_stacks", "live_stack", "live_web", "live_worker", "stack_factory"})
BACKEND_MARKS = ("postgres", "embedded")


def _mark_backend(item: pytest.Item) -> None:
    """Mark a test `postgres` or `embedded` after the data store it runs on, and `stack` when
    it takes a stack from the plugin's fixtures."""
    params = getattr(item, "callspec", None)
    chosen = {v for v in params.params.values() if isinstance(v, str)} if params else set()
    fixtures = set(getattr(item, "fixturenames", ()))
    if fixtures & POSTGRES_FIXTURES:
        chosen.add("postgres")
    if "embedded_backend" in fixtures:
        chosen.add("embedded")
    for name in BACKEND_MARKS:
        if name in chosen:
            item.add_marker(name)
    if fixtures & STACK_FIXTURES:
        item.add_marker("stack")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config,
                                  items: list[pytest.Item]) -> Generator[None, None, None]:
    """Mark each test with its data store, then order the slow tests: last in a run of one
    process (as pytest's own suite: quick feedback first), first when xdist shares the run out
    (its files are handed out in this order, and the longest started first ends the run soonest).

    The marks are set before `-m` selects; the order after every other plugin (and
    pytest's fixture grouping) has had its say; the sort is stable, the rest keeps its order.
    """
    for item in items:
        _mark_backend(item)
    yield
    slow_first = hasattr(config, "workerinput")  # an xdist worker: every worker sorts alike
    items.sort(key=lambda item: (item.get_closest_marker("slow") is not None) != slow_first)


def pytest_configure(config: pytest.Config) -> None:
    """Track the SQLite connections of the test process (see tests/support/sqlite_guard.py)."""
    sqlite_guard.install()


@pytest.fixture(autouse=True)
def no_sqlite_connection_left_open() -> Iterator[None]:
    """Every SQLite connection a test opens is closed by the end of its teardown: a pool
    that keeps one is an app, engine or worker that nobody closed (Python 3.13 warns when
    the collector finds it; sqlite_guard makes 3.11 and 3.12 warn as well)."""
    start = sqlite_guard.mark()
    yield
    left = sqlite_guard.open_since(start)
    assert not left, f"{len(left)} SQLite connection(s) left open:\n{sqlite_guard.describe(left)}"


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, migrated to head; dropped afterwards."""
    with temporary_pg_database() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The Redis database of this test run."""
    with reserved_redis_db() as url:
        yield url


def _backend(name: str, tmp: Path, database_url: str | None, broker: str | None) -> Backend:
    env = {"VAR_DIR": str(tmp), "APP_ENV": "test", "LOG_LEVEL": "INFO", "BROKER_TIMEOUT": "2"}
    if database_url:
        env["DATABASE_URL"] = database_url
    if broker:
        env["CELERY_BROKER_URL"] = broker
        env["CELERY_VISIBILITY_TIMEOUT"] = "30"
    backend = Backend(name, env, tmp)
    env["DATABASE_URL"] = backend.settings().database_url
    if database_url is None:
        upgrade(database_url=env["DATABASE_URL"])
    return backend


@pytest.fixture(scope="session")
def postgres_backend(
    pg_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Backend:
    """PostgreSQL for data, Redis for the broker and results."""
    return _backend("postgres", tmp_path_factory.mktemp("pg-var"), pg_database_url, redis_url)


@pytest.fixture(scope="session")
def embedded_backend(tmp_path_factory: pytest.TempPathFactory) -> Backend:
    """The zero-services defaults: SQLite data file, SQLite-backed broker and results."""
    return _backend("embedded", tmp_path_factory.mktemp("embedded-var"), None, None)


@pytest.fixture(scope="session", params=["postgres", "embedded"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each contract test runs on both backends."""
    return request.getfixturevalue(f"{request.param}_backend")


@pytest.fixture
def make_app() -> Iterator[Callable[..., Flask]]:
    """make_app(settings, **config): create_app as the tests use it; every app made is closed
    at the end of the test (its pools would otherwise keep connections open)."""
    made: list[Flask] = []

    def make(settings: Settings, **config: Any) -> Flask:
        application = create_app(config or None, settings=settings)
        made.append(application)
        return application

    yield make
    for application in made:
        close_app(application)


@pytest.fixture
def app(backend: Backend, make_app: Callable[..., Flask]) -> Flask:
    """A fresh app per test over empty tables."""
    backend.clean()
    return make_app(backend.settings(), TESTING=True)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the app."""
    return app.test_client()


@pytest.fixture
def add_todo(client: FlaskClient):  # type: ignore[no-untyped-def]
    """Add a todo through the JSON API and return its JSON."""

    def _add(text: str = "buy milk") -> dict:  # type: ignore[type-arg]
        response = client.post("/api/todos", json={"text": text})
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    return _add


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordedPrometheus]:
    """A real Prometheus serving known synthetic traffic (tests/support/promdata.py)."""
    with synthetic_prometheus(tmp_path_factory.mktemp("prometheus-synthetic")) as recorded:
        yield recorded


@pytest.fixture(scope="session")
def fleet_synthetic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordedPrometheus]:
    """A real Prometheus serving a known synthetic fleet, with the lab's fleet recording rules
    (tests/support/promdata.py: fleet_openmetrics)."""
    with synthetic_prometheus(tmp_path_factory.mktemp("prometheus-fleet"), fleet_openmetrics,
                              rules=FLEET_RULES) as recorded:
        yield recorded
