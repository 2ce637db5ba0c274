"""`lab progress [--json] [NOTEBOOK...]`: grade a learner's saved notebooks without running them.

With no argument it grades the learner's working copies (VAR_DIR/workshop, made by
`lab notebook`). Each exercise is right, wrong or unanswered (curriculum.progress says how a
saved notebook is read). `--json` prints one document a facilitator collects per learner;
`--room FILE...` reads such documents and shows, per exercise, how the room is doing and who
has a wrong answer (who to help first).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lab.errors import LabError
from stack.config import LOCAL, LabConfig

if TYPE_CHECKING:
    from analysis.prom import Prometheus
    from curriculum.progress import Graded


def configure(parser: argparse.ArgumentParser) -> None:
    """Notebooks to grade, output format, who the learner is, whether to ask Prometheus."""
    parser.add_argument("notebooks", nargs="*", metavar="NOTEBOOK",
                        help="saved notebooks: paths, or names of working copies such as "
                             "01-metrics (default: every working copy of `lab notebook`)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--learner", default=None,
                        help="name written into the JSON (default: the user name)")
    parser.add_argument("--offline", action="store_true",
                        help="never ask Prometheus to re-evaluate a changed PromQL answer")
    parser.add_argument("--push", action="store_true",
                        help="send the verdicts to the room joined with `lab room join`")
    parser.add_argument("--room", nargs="+", type=Path, metavar="JSON",
                        help="facilitator: summarise learners' `lab progress --json` files")


def _prometheus(config: LabConfig, offline: bool) -> Prometheus | None:
    """The lab's Prometheus when it answers (to re-evaluate changed PromQL answers), else None."""
    if offline:
        return None
    from analysis import prom
    from stack import processes

    url = f"http://{LOCAL}:{config.port('PROMETHEUS_PORT')}"
    try:
        if processes.http_session().get(f"{url}/-/ready", timeout=2).status_code != 200:
            return None
    except OSError:
        return None
    return prom.Prometheus(url)


def _room(files: list[Path]) -> int:
    """Per exercise across learners: right/wrong/unanswered counts and who is wrong."""
    from curriculum import progress

    reports = []
    for path in files:
        try:
            reports.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise LabError(f"{path}: not a `lab progress --json` document ({exc})", 2) from None
    print(f"{len(reports)} learner(s)")
    print(f"{'exercise':<10} {'module':<32} {'right':>5} {'wrong':>5} {'open':>5}  wrong answers")
    for row in progress.room(reports):
        print(f"{row.id:<10} {row.module:<32} {row.right:>5} {row.wrong:>5} {row.unanswered:>5}  "
              f"{', '.join(row.stuck)}")
    return 0


def _push(graded: list[Graded]) -> None:
    """Send the answered exercises' statuses to the joined room, and say what arrived."""
    from room import client

    if client.membership() is None:
        raise LabError("not in a room: `lab room join URL CODE --name NAME` first", 1)
    for row in graded:
        if row.status != "unanswered":
            client.push(row.id, row.status, module=row.module, attempt=row.attempts, source="progress")
    result = client.send()
    print(f"room: sent {result.sent} verdict(s)"
          + (f"; {result.pending} waiting ({result.error})" if result.pending else ""), file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Grade, then print a table (or JSON) and a one-line summary; or summarise a room."""
    from curriculum import notebook_run, progress

    if args.room:
        return _room(list(args.room))
    config = LabConfig.from_env()
    from lab.workshop import working_copy

    paths = [working_copy(config, name) for name in args.notebooks]
    if not paths:
        paths = notebook_run.notebooks(config.workshop_dir)
        if not paths:
            raise LabError(f"no working copies in {config.workshop_dir}: run `lab notebook` "
                           "first, or name the notebooks to grade", 1)
    graded = progress.grade(paths, _prometheus(config, args.offline))
    counts = progress.summary(graded)
    if args.push:
        _push(graded)
    if args.json:
        print(json.dumps({
            "learner": args.learner or getpass.getuser(),
            "graded_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "notebooks": [str(p) for p in paths],
            "exercises": [g.as_dict() for g in graded],
            "summary": counts,
        }, indent=1))
        return 0
    for row in graded:
        note = f"  ({row.note})" if row.note else ""
        tries = f", {row.attempts} attempt{'s' if row.attempts != 1 else ''}" if row.attempts else ""
        print(f"{row.module:<32} {row.id:<6} {row.status}{tries}{note}")
    print(f"{counts['right']} right, {counts['wrong']} wrong, {counts['unanswered']} unanswered "
          f"of {len(graded)} exercises")
    return 0

