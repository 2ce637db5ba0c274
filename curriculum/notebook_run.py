"""Execute the notebooks headless (nbclient) and compose one HTML report from them.

A notebook that raises stops its run: the partly executed notebook (with the traceback in
the failing cell) is still saved and shown in the report, and ``run_notebooks`` reports it
as failed, so `lab demo` and the tests fail with the notebook's own error message.
"""

from __future__ import annotations

import html
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from stack.heartbeat import heartbeat, say_now

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = ROOT / "notebooks"
KERNEL_NAME = "todo-lab"
CELL_TIMEOUT_S = 300


@dataclass(frozen=True)
class NotebookOutcome:
    """One executed notebook: where it was saved, and the error that stopped it, if any."""

    source: Path
    executed: Path
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when every cell ran without raising."""
        return self.error is None


def notebooks(directory: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks (01-*.ipynb, 02-*.ipynb, ...) in order."""
    return sorted(p for p in directory.glob("[0-9][0-9]-*.ipynb"))


def ensure_kernel() -> str:
    """Register this interpreter as the kernel `todo-lab` inside its own prefix (no network)."""
    from ipykernel.kernelspec import install
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        if spec.argv and Path(spec.argv[0]) == Path(sys.executable):
            return KERNEL_NAME
    except NoSuchKernel:
        pass
    install(kernel_name=KERNEL_NAME, display_name="Python (todo lab)", prefix=sys.prefix)
    return KERNEL_NAME


def execute(source: Path, executed: Path, env: Mapping[str, str],
            timeout_s: int = CELL_TIMEOUT_S, say: Callable[[str], None] = say_now) -> NotebookOutcome:
    """Run source top to bottom in a fresh kernel with env; save the result to executed."""
    notebook = nbformat.read(source, as_version=4)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    done = [0]

    def executed_one(**_: object) -> None:
        done[0] += 1

    client = NotebookClient(notebook, timeout=timeout_s, kernel_name=ensure_kernel(),
                            resources={"metadata": {"path": str(source.parent)}},
                            on_cell_executed=executed_one)
    error = None
    try:
        # env reaches the kernel process (jupyter_client passes it to the launcher); a line
        # every few seconds says which cell runs (some wait for a scrape or a trace).
        with heartbeat(lambda: f"running {source.name}: cell {min(done[0] + 1, len(code_cells))} "
                               f"of {len(code_cells)}", say):
            client.execute(env={**os.environ, **env})
    except CellExecutionError as exc:
        error = _short(str(exc))
    except (CellTimeoutError, DeadKernelError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    executed.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, executed)
    return NotebookOutcome(source, executed, error)


def _short(message: str) -> str:
    """The end of nbclient's message: the exception line a user needs first."""
    lines = [line for line in message.strip().splitlines() if line.strip()]
    return "\n".join(lines[-12:])


def run_notebooks(sources: Sequence[Path], out_dir: Path,
                  env: Mapping[str, str]) -> list[NotebookOutcome]:
    """Execute each notebook in order (each in its own kernel), saving it under out_dir."""
    outcomes = []
    for source in sources:
        outcome = execute(source, out_dir / source.name, env)
        print(f"notebook {source.name}: {'ok' if outcome.ok else 'FAILED'}", flush=True)
        outcomes.append(outcome)
    return outcomes


def notebook_body(path: Path) -> str:
    """The executed notebook as HTML without page chrome (plots embedded as images)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="basic")
    body, _ = exporter.from_notebook_node(nbformat.read(path, as_version=4))
    return body


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; }
nav a { margin-right: 1em; } .failed { color: #cf222e; } .ok { color: #1a7f37; }
section.notebook { border-top: 3px solid #ddd; margin-top: 3em; }
pre, .highlight { background: #f6f8fa; padding: .5em; overflow-x: auto; font-size: 90%; }
table { border-collapse: collapse; font-size: 90%; } td, th { border: 1px solid #ccc; padding: .2em .5em; }
img { max-width: 100%; } .jp-InputPrompt, .jp-OutputPrompt { display: none; }
"""


def write_report(outcomes: Sequence[NotebookOutcome], path: Path, summary: Mapping[str, str],
                 sections_html: str = "") -> Path:
    """One self-contained HTML page: the run's summary, sections_html (e.g. the alert
    timeline, already escaped), then every executed notebook."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    items = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in summary.items())
    nav = "".join(f'<a href="#{o.source.stem}">{html.escape(o.source.stem)}</a>' for o in outcomes)
    status = "".join(
        f'<li class="{"ok" if o.ok else "failed"}">{html.escape(o.source.name)}: '
        f'{"ran top to bottom" if o.ok else "FAILED"}'
        + ("" if o.ok else f"<pre>{html.escape(o.error or '')}</pre>") + "</li>"
        for o in outcomes)
    sections = "".join(
        f'<section class="notebook" id="{o.source.stem}"><h1>{html.escape(o.source.stem)}</h1>'
        f"{notebook_body(o.executed)}</section>" for o in outcomes)
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>Todo Observability Lab report {stamp}</title><style>{STYLE}</style></head>"
            f"<body><h1>Todo Observability Lab: report</h1><p>{stamp}</p><ul>{items}</ul>{sections_html}"
            f"<h2>Notebooks</h2><ul>{status}</ul><nav>{nav}</nav>{sections}</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def run_all(out: Path | None = None) -> int:
    """Every notebook headless, exercises answered, into out (default a new notebooks-<time>
    directory of the reports directory), with the HTML report beside it: `lab notebook --run`.

    For any stack, the compose jupyter container's included: the notebooks find the lab
    through the environment (app.environment). 1 when a notebook failed, else 0.
    """
    from analysis.lab_context import LabContext
    from curriculum.exercises import FILL_VARIABLE

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = out or LabContext.from_env().reports_dir / f"notebooks-{stamp}"
    env = {FILL_VARIABLE: "1", "LAB_OUTPUT_DIR": str(out)}
    outcomes = run_notebooks(notebooks(), out, env)
    report = write_report(outcomes, out.with_suffix(".html"), {"executed notebooks": str(out)})
    print(f"report: {report}")
    for outcome in outcomes:
        if not outcome.ok:
            print(f"{outcome.source.name}:\n{outcome.error}", file=sys.stderr)
    return 0 if all(o.ok for o in outcomes) else 1

