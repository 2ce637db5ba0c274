"""The notebooks as CI runs them: `lab demo` on a live stack with a known injected error rate,
every notebook executed headless with its checks, and the verdicts matching the injected truth.
Also: a notebook that raises fails the run, and the exercise checks compare results."""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import requests

from analysis import locust_json, logs
from analysis.lab_context import LabContext
from app.faults import QUIET_KEY
from curriculum import exercises, notebook_run
from tests.support.launcher import lab_env, lab_stack, run_lab

FAULT, RATE = "error_rate.api.list_todos", 0.3
LIST_NAME = "/api/todos?page=[n]"
NOTEBOOKS = ["00-setup", "01-metrics", "02-logs", "03-traces", "04-verification", "05-alerting",
             "06-cardinality-sampling-cost", "07-incident", "08-fleet"]

needs_stack = pytest.mark.skipif(
    not (shutil.which("caddy") and shutil.which("prometheus")),
    reason="the Debian packages caddy and prometheus are needed (stack/install-system-deps.sh)",
)


@pytest.mark.slow
@pytest.mark.stack
# Eight notebooks on a loaded 2-core machine (a blind incident and a sampling sandbox among
# them): a deadline for a hang, not a speed test.
@pytest.mark.timeout(1500)
@needs_stack
def test_lab_demo_runs_every_notebook_and_its_verdicts_match_the_injected_fault(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reports = tmp_path / "reports"
    env = lab_env(tmp_path / "var", {"LAB_REPORTS_DIR": str(reports), "LOAD_WAIT": "0.1,0.5"})
    with lab_stack(env) as up:
        assert up.code == 0, up.stderr
        demo = run_lab(env, "demo", "--users", "6", "--duration", "30",
                       "--fault", f"{FAULT}={RATE}", "--fault-window", "8-22", timeout=900)
        context = LabContext.from_env({"PROMETHEUS_URL": f"http://127.0.0.1:{env['PROMETHEUS_PORT']}",
                                       "LAB_VAR_DIR": env["VAR_DIR"], "LAB_REPORTS_DIR": str(reports)})
        run = context.last_run()
        # The notebooks' live window sees the traffic of the last minutes (the demo's load).
        live = context.window(minutes=10)
        assert live.source == "live" and live.requests > 0 and run.start > live.start
        web_log = logs.load_logs(context.web_log).frame
        # The exercise checks compare results: an equivalent query is right, another is not.
        prometheus = context.prometheus()
        equivalent = "sum(rate(http_request_duration_seconds_count[1m])) by (endpoint)"
        assert exercises.check_promql(prometheus, equivalent, "1.1", at=run.end).right
        by_method = "sum by (method) (rate(http_request_duration_seconds_count[1m]))"
        wrong = exercises.check_promql(prometheus, by_method, "1.1", at=run.end)
        assert wrong.status == "wrong"
        monkeypatch.setenv(exercises.FILL_VARIABLE, "1")
        with pytest.raises(exercises.ExerciseFailed):
            exercises.check_promql(prometheus, "sum(rate(http_request_duration_seconds_count[5m]))",
                                   "1.1", at=run.end)
        # JupyterLab on the same notebooks, stopped by `lab down` with the rest.
        notebook = run_lab(env, "notebook", timeout=120)
        assert notebook.code == 0, notebook.stderr
        url = re.search(r"(http://127\.0\.0\.1:\d+)/lab\?token=(\w+)", notebook.stdout)
        assert url, notebook.stdout
        listed = requests.get(f"{url[1]}/api/contents", params={"token": url[2]}, timeout=10)
        assert {f"{n}.ipynb" for n in NOTEBOOKS} <= {item["name"] for item in listed.json()["content"]}
        # ... the learner's working copies, not the tracked notebooks `lab demo` ran.
        assert "working copies" in notebook.stdout
        copies = {p.name for p in (Path(env["VAR_DIR"]) / "workshop").iterdir()}
        assert {f"{n}.ipynb" for n in NOTEBOOKS} <= copies
    jupyter_pid = json.loads((Path(env["VAR_DIR"]) / "run" / "jupyter.pid").read_text())["pid"] \
        if (Path(env["VAR_DIR"]) / "run" / "jupyter.pid").exists() else None
    assert jupyter_pid is None, "lab down left JupyterLab's pid file behind"

    assert demo.code == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    for name in NOTEBOOKS:
        assert f"notebook {name}.ipynb: ok" in demo.stdout
    report = Path(re.search(r"^report: (.+\.html)$", demo.stdout, re.M)[1])  # type: ignore[index]
    assert report.parent == reports and report.is_file()
    page = report.read_text(encoding="utf-8")
    assert "FAILED" not in page
    assert page.count("data:image/png") >= 7  # request rate, latency, error rate, jobs, waterfalls, alerts
    # The alert timeline against the fault, with predicted and measured detection delays.
    assert "Alerts against the faults" in page and "predicted firing (s)" in page
    for url_part in (f"127.0.0.1:{env['CADDY_PORT']}", f"127.0.0.1:{env['PROMETHEUS_PORT']}",
                     f"--web-port {env['LOCUST_PORT']}", f"127.0.0.1:{env['JUPYTER_PORT']}/lab"):
        assert url_part in demo.stdout

    # The run record holds the fault window the demo switched on and off.
    [window] = run.faults
    assert (window.name, window.value) == (FAULT, RATE)
    assert run.start < window.on < window.off < run.end

    # The verification table: every row passed, and it carries the injected truth.
    table = pd.read_csv(report.with_suffix("") / "verdicts.csv")
    assert (table["verdict"] == "pass").all(), table.to_string()
    rows = table.set_index("query")
    locust = locust_json.read_stats_json(run.stats_json)
    locust_list_failures = int(locust_json.endpoint_row(locust, "GET", LIST_NAME)["Failure Count"])
    access = logs.between(logs.access_lines(web_log), pd.Timestamp(run.start), pd.Timestamp(run.end))
    list_lines = access[access["endpoint"] == "api.list_todos"]
    log_list_500 = int((list_lines["status_code"] >= 500).sum())
    assert locust_list_failures == log_list_500 > 0
    assert rows.loc[f"locust GET '{LIST_NAME}' 'Failure Count'", "observed"] == locust_list_failures
    # Only the faulty endpoint failed, only inside the window, at about the injected rate.
    assert int((access["status_code"] >= 500).sum()) == log_list_500
    in_window = rows.loc["share of api.list_todos answered 5xx inside the window (access log)"]
    assert in_window["expected"] == RATE and abs(in_window["observed"] - RATE) <= in_window["tolerance"]
    assert rows.loc["5xx of api.list_todos outside the fault window (access log)", "observed"] == 0
    assert int(rows.loc["locust Aggregated 'Failure Count'", "observed"]) == log_list_500

    # Notebook 5 injected its own fault, found it in metric, logs and trace, and cleared it.
    incident = json.loads((report.with_suffix("") / "incident.json").read_text())
    assert incident["client_500"] == incident["log_500"] == incident["prometheus_500"] > 0
    assert incident["trace_fault"] == incident["fault"]
    assert incident["detected_ratio"] > 0
    faults_file = Path(env["VAR_DIR"]) / "faults.json"
    # Nothing left switched on (the blind incident clears its faults as quietly as it set them).
    assert set(json.loads(faults_file.read_text())) <= {QUIET_KEY}


def _notebook(path: Path, *sources: str) -> Path:
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(book, path)
    return path


def test_a_notebook_that_raises_fails_the_run_and_the_report_says_why(tmp_path: Path) -> None:
    good = _notebook(tmp_path / "01-good.ipynb", "answer = 6 * 7", "assert answer == 42")
    bad = _notebook(tmp_path / "02-bad.ipynb", "x = 1",
                    "raise AssertionError('verification failed: 3 of 4 checks pass')",
                    "print('never printed')")
    assert notebook_run.notebooks(tmp_path) == [good, bad]

    outcomes = notebook_run.run_notebooks([good, bad], tmp_path / "out", {})
    assert [o.ok for o in outcomes] == [True, False]
    assert "verification failed: 3 of 4 checks pass" in (outcomes[1].error or "")
    executed = nbformat.read(outcomes[1].executed, as_version=4)
    assert executed.cells[2].outputs == []  # nothing after the failing cell ran

    page = notebook_run.write_report(outcomes, tmp_path / "report.html",
                                     {"run": datetime.now().isoformat()}).read_text()
    assert "02-bad.ipynb: FAILED" in page and "3 of 4 checks pass" in page
    assert "01-good.ipynb: ran top to bottom" in page


@pytest.mark.slow
@pytest.mark.stack
@pytest.mark.timeout(1200)
@needs_stack
def test_after_a_plain_lab_load_the_fault_modules_say_what_to_record_and_draw_no_empty_frame(
        tmp_path: Path) -> None:
    """A room that ran a plain `lab load` (no fault) opens 01, 04, 05 and 08: each says in one
    line what the run lacks and the command that records it (08: the fleet's, on a lab of one
    replica), and shows no empty frame or flat chart under text about a fault."""
    from analysis.lab_context import WORKSHOP_RUN
    from curriculum.modules.m08_fleet import FLEET_RUN
    from lab.notebook_env import notebook_env
    from stack.config import LabConfig

    reports = tmp_path / "reports"
    env = lab_env(tmp_path / "var", {"LAB_REPORTS_DIR": str(reports), "LOAD_WAIT": "0.1,0.5"})
    with lab_stack(env) as up:
        assert up.code == 0, up.stderr
        load = run_lab(env, "load", "--users", "4", "--duration", "20", timeout=300)
        assert load.code == 0, load.stdout[-2000:] + load.stderr[-2000:]
        tracked = Path(__file__).parents[1] / "notebooks"
        chosen = [tracked / f"{name}.ipynb" for name in ("01-metrics", "04-verification", "05-alerting",
                                                         "08-fleet")]
        notebook_vars = {**env, **notebook_env(LabConfig.from_env(env)), exercises.FILL_VARIABLE: "1"}
        outcomes = notebook_run.run_notebooks(chosen, tmp_path / "executed", notebook_vars)
    for outcome in outcomes:
        assert outcome.ok, outcome.error
        book = nbformat.read(tmp_path / "executed" / outcome.source.name, as_version=4)
        shown = "\n".join(str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
                          for cell in book.cells if cell.cell_type == "code" for output in cell.outputs)
        assert "Empty DataFrame" not in shown, outcome.source.name
        record = f"Record one with {FLEET_RUN}" if outcome.source.stem == "08-fleet" else \
            f"Record a run that has one with `{WORKSHOP_RUN}`"
        assert record in shown, outcome.source.name
