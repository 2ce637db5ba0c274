"""The learner's working copies of the notebooks, kept apart from the tracked ones.

`lab notebook` opens JupyterLab on VAR_DIR/workshop (git-ignored with var/): a learner edits
and saves there, the tracked notebooks stay pristine, and `lab demo` keeps executing the
tracked ones. A copy is made once and never overwritten, except by `lab notebook --reset`,
which first moves the learner's version aside into workshop/.replaced/<UTC time>/.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from curriculum.notebook_run import notebooks
from lab.errors import LabError
from stack.config import LabConfig

REPLACED = ".replaced"


@dataclass
class CopyReport:
    """What one pass over the tracked notebooks did."""

    copied: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    reset: list[Path] = field(default_factory=list)
    set_aside: Path | None = None


def tracked(config: LabConfig) -> list[Path]:
    """The tracked notebooks (notebooks/NN-*.ipynb of the checkout)."""
    return notebooks(config.root / "notebooks")


def working_copy(config: LabConfig, name: str) -> Path:
    """The notebook a learner names: a path to a saved notebook, or the name of a working copy
    as `lab notebook --reset` takes it (01-metrics, 01-metrics.ipynb)."""
    given = Path(name)
    if given.is_file():
        return given
    stem = given.name.removesuffix(".ipynb")
    copy = config.workshop_dir / f"{stem}.ipynb"
    if copy.is_file() and given.parent == Path("."):
        return copy
    known = ", ".join(p.stem for p in notebooks(config.workshop_dir)) or \
        "none yet: run `lab notebook` first"
    raise LabError(f"no such notebook: {name} (neither a file nor a working copy in "
                   f"{config.workshop_dir}; working copies: {known})", 2)


def working_copies(config: LabConfig, reset: bool = False,
                   names: Sequence[str] = ()) -> CopyReport:
    """Copy each tracked notebook that has no working copy yet; with reset, replace them.

    names limits --reset to some notebooks (a stem like 01-metrics or a file name).
    """
    sources = tracked(config)
    wanted = {n.removesuffix(".ipynb") for n in names}
    unknown = wanted - {p.stem for p in sources}
    if unknown:
        raise LabError(f"no tracked notebook {', '.join(sorted(unknown))} "
                       f"(known: {', '.join(p.stem for p in sources)})", 2)
    target_dir = config.workshop_dir
    target_dir.mkdir(parents=True, exist_ok=True)
    report = CopyReport()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for source in sources:
        copy = target_dir / source.name
        replace = reset and (not wanted or source.stem in wanted)
        if copy.exists() and not replace:
            report.kept.append(copy)
            continue
        if copy.exists():
            aside = target_dir / REPLACED / stamp
            aside.mkdir(parents=True, exist_ok=True)
            shutil.move(copy, aside / copy.name)
            report.set_aside = aside
            report.reset.append(copy)
        else:
            report.copied.append(copy)
        shutil.copyfile(source, copy)
    return report
