"""`python -m bench [all|SECTION] [--quick]`, `python -m bench soak ...`, `python -m bench loadgen ...`.

`all` runs every section and rewrites docs/benchmarks.md (and var/bench/results.json);
a single section prints its table. Two commands beside the sections, each a module with
`configure(parser)` and a run function, as `lab`'s commands are: `soak` (the bounded soak of
docs/reliability.md) and `loadgen` (the load generator the sections start in a process of
its own).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from app.layout import PROJECT_ROOT
from bench import database, footprint, locust_rate, overhead, page, proxy, report, scale, scrape, turnaround
from bench import fleet as fleet_bench
from bench import room as room_bench
from stack.heartbeat import heartbeat

SECTIONS = ("overhead", "page", "proxy", "scrape", "footprint", "scale", "locust", "turnaround", "room",
            "fleet")
DEFAULT_DOC = PROJECT_ROOT / "docs" / "benchmarks.md"
DEFAULT_JSON = PROJECT_ROOT / "var" / "bench" / "results.json"


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="commands: " + "; ".join(
                                         f"{name}: {line}" for name, (_, _, line) in COMMANDS.items()))
    configure(parser)
    return parser


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by `python -m bench` and `lab bench`."""
    parser.add_argument("what", nargs="?", default="all", choices=("all", *SECTIONS))
    parser.add_argument("--quick", action="store_true", help="short runs: checks it works, not figures")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"markdown file to write (default for all: {DEFAULT_DOC})")
    parser.add_argument("--json", type=Path, default=None,
                        help=f"raw results (default for all: {DEFAULT_JSON})")
    parser.add_argument("--render-only", action="store_true",
                        help="measure nothing: rewrite the page from the raw results of the last run "
                             "(after editing bench/findings.md)")


# The sections that measure a server on a private PostgreSQL database: each module's
# measure(database_url, tmp, plan), with its quick and full plans.
ON_DATABASE: dict[str, tuple[Any, Any, Any]] = {
    "overhead": (overhead, overhead.QUICK, overhead.FULL),
    "proxy": (proxy, proxy.QUICK, proxy.FULL),
    "page": (page, page.QUICK, page.FULL),
    "locust": (locust_rate, locust_rate.QUICK, locust_rate.FULL),
    "scrape": (scrape, scrape.QUICK_REQUESTS, scrape.FULL_REQUESTS),
    "scale": (scale, scale.QUICK, scale.FULL),
}


def run_section(name: str, quick: bool, tmp: Path) -> tuple[Any, str]:
    """Run one section; returns (raw results, markdown)."""
    if name == "footprint":
        raw: Any = footprint.measure(tmp, footprint.QUICK if quick else footprint.FULL)
        return raw, footprint.render(raw)
    if name == "turnaround":
        raw = turnaround.measure(tmp, quick)
        return raw, turnaround.render(raw)
    if name == "room":
        raw = room_bench.measure(tmp, room_bench.QUICK if quick else room_bench.FULL)
        return raw, room_bench.render(raw)
    if name == "fleet":
        raw = fleet_bench.measure(tmp, fleet_bench.QUICK if quick else fleet_bench.FULL)
        return raw, fleet_bench.render(raw)
    module, quick_plan, full_plan = ON_DATABASE[name]
    with database.private_database() as url:
        raw = module.measure(url, tmp, quick_plan if quick else full_plan)
    return raw, module.render(raw)


RENDER: dict[str, Callable[[Any], str]] = {
    "overhead": overhead.render, "proxy": proxy.render, "scrape": scrape.render,
    "footprint": footprint.render, "scale": scale.render, "turnaround": turnaround.render,
    "page": page.render, "locust": locust_rate.render, "room": room_bench.render,
    "fleet": fleet_bench.render,
}


def render_only(args: argparse.Namespace, echo: Callable[[str], None]) -> int:
    """Rewrite the page from saved raw results."""
    raw = json.loads((args.json or DEFAULT_JSON).read_text(encoding="utf-8"))
    sections = {name: RENDER[name](raw[name]) for name in SECTIONS if name in raw}
    out = args.out or DEFAULT_DOC
    command = raw.get("command", "python -m bench all")
    out.write_text(report.document(raw, sections, bool(raw.get("quick")), command,
                                   generated=raw.get("generated")), encoding="utf-8")
    echo(f"bench: wrote {out} from {args.json or DEFAULT_JSON}")
    return 0


def run(args: argparse.Namespace, command: str = "python -m bench",
        echo: Callable[[str], None] = print) -> int:
    """Run what args ask for; write the page and the raw results for `all`."""
    if args.render_only:
        return render_only(args, echo)
    names: Sequence[str] = SECTIONS if args.what == "all" else (args.what,)
    raw: dict[str, Any] = {"load_average": [os.getloadavg()[0]]}
    sections: dict[str, str] = {}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="todolab-bench-") as tmp:
        for name in names:
            started = time.perf_counter()
            echo(f"bench: {name} ...")
            with heartbeat(f"bench: {name} still running", echo):
                raw[name], sections[name] = run_section(name, args.quick, Path(tmp) / name)
            raw["load_average"].append(os.getloadavg()[0])
            echo(f"bench: {name} done in {time.perf_counter() - started:.0f} s")
            if args.what != "all":
                echo(sections[name])
    raw["seconds"] = round(time.perf_counter() - began, 1)
    full_command = f"{command} {args.what}" + (" --quick" if args.quick else "")
    raw.update(command=full_command, quick=args.quick, generated=datetime.now(UTC).isoformat())
    out = args.out or (DEFAULT_DOC if args.what == "all" else None)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.document(raw, sections, args.quick, full_command), encoding="utf-8")
        echo(f"bench: wrote {out}")
    raw_path = args.json or (DEFAULT_JSON if args.what == "all" else None)
    if raw_path is not None:
        raw_path.parent.mkdir(parents=True, exist_ok=True)
        raw_path.write_text(json.dumps(raw, indent=1, default=str), encoding="utf-8")
    echo(f"bench: finished in {raw['seconds']:.0f} s")
    return 0


def _soak() -> ModuleType:
    from bench import soak

    return soak


def _loadgen() -> ModuleType:
    from bench import loadgen

    return loadgen


# The commands beside the sections: name -> (its module, imported when chosen; its run
# function's name; help line).
COMMANDS: dict[str, tuple[Callable[[], ModuleType], str, str]] = {
    "soak": (_soak, "run", "a bounded soak of the local stack (docs/reliability.md)"),
    "loadgen": (_loadgen, "main", "the closed-loop load generator, its result as JSON"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m bench`: a command of COMMANDS, else the sections."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        load, function, help_line = COMMANDS[args[0]]
        module = load()
        parser = argparse.ArgumentParser(prog=f"python -m bench {args[0]}", description=help_line)
        module.configure(parser)
        result: int = getattr(module, function)(parser.parse_args(args[1:]))
        return result
    return run(build_parser().parse_args(args))


if __name__ == "__main__":
    sys.exit(main())
