"""A load run with a known injected error rate: Locust sees that fault, and only that fault.

The fault answers a fraction p = 0.2 of GET / (endpoint todos.index) with 500. Locust counts
each 500 as a failure, so its failure ratio over the requests named "/", "/?page=[n]" and
"/ [after add]" is a binomial proportion with mean p and standard deviation
sqrt(p(1-p)/n). The test accepts 4.5 standard deviations: a correct system fails it with
probability below 1e-5, while a fault that were not applied (0) or applied twice (0.36)
falls outside it as soon as n is above ~60. Independently of chance, the number of
failures Locust reports must equal the number of 500s the app's access log shows for that
endpoint, and every other request name must have no failure at all.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.faults import write_faults
from loadtests.run import LoadRunResult, run_headless
from loadtests.shapes import make_profile
from stack.processes import Proc
from tests.support.backends import Backend
from tests.support.plugin import StackFactory

pytestmark = pytest.mark.stack

RATE = 0.2
INDEX_NAMES = {"/", "/?page=[n]", "/ [after add]"}
# Short think times so a 25-second run sends enough requests for a tight binomial bound.
FAST_USERS = {"LOAD_WAIT": "0.05,0.2", "LOAD_WEIGHTS": "reader=4,writer=2,exporter=1,api=1"}


@pytest.fixture(scope="module")
def faulty_run(postgres_backend: Backend, stack_factory: StackFactory,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LoadRunResult, Proc]]:
    """gunicorn + worker with error_rate.todos.index=0.2 under a 25-second steady load."""
    postgres_backend.clean()
    faults = tmp_path_factory.mktemp("load-fault") / "faults.json"
    write_faults(faults, {"error_rate.todos.index": RATE})
    with stack_factory({"FAULTS_FILE": str(faults)}) as running:
        result = run_headless(running.web.url, make_profile("steady", users=8, duration=25),
                              reports_dir=tmp_path_factory.mktemp("reports"), extra_env=FAST_USERS)
        print(result.summary())
        yield result, running.web


def test_locust_failure_ratio_matches_the_injected_rate(faulty_run: tuple[LoadRunResult, Proc]) -> None:
    result, _ = faulty_run
    index = [e for e in result.endpoints if e.name in INDEX_NAMES]
    sent = sum(e.requests for e in index)
    failed = sum(e.failures for e in index)
    assert sent >= 60, f"too few requests to judge: {sent}"
    ratio = failed / sent
    tolerance = 4.5 * math.sqrt(RATE * (1 - RATE) / sent)
    print(f"GET / failure ratio {ratio:.3f} over {sent} requests; expected {RATE} ± {tolerance:.3f}")
    assert abs(ratio - RATE) <= tolerance


def test_only_the_faulty_endpoint_fails(faulty_run: tuple[LoadRunResult, Proc]) -> None:
    result, _ = faulty_run
    others = {e.name: e.failures for e in result.endpoints if e.name not in INDEX_NAMES}
    assert others and all(count == 0 for count in others.values()), others


def test_locust_failures_equal_the_500s_in_the_access_log(faulty_run: tuple[LoadRunResult, Proc]) -> None:
    result, web = faulty_run
    lines = [r for r in web.json_records() if r.get("logger") == "app.access"]
    injected = [line for line in lines if line["status_code"] == 500]
    assert {line["endpoint"] for line in injected} == {"todos.index"}
    failed = sum(e.failures for e in result.endpoints if e.name in INDEX_NAMES)
    assert len(injected) == failed
    assert Path(result.html).exists()
