"""Dependencies run one way: every import of the project goes down the layers, never up.

    lab                                   the launcher's command line, on top
    bench                                 the benchmarks
    loadtests                             the load runner (it reads its runs with analysis)
    worker  analysis  stack               beside each other, none importing another
    app                                   the web app, at the bottom

Nothing outside tests/ imports tests. Imports inside functions count as much as the others.
"""

from __future__ import annotations

import ast

import pytest

from tests.support.processes import ROOT

LAYERS: dict[str, int] = {
    "app": 0, "worker": 1, "analysis": 1, "stack": 1, "loadtests": 2, "bench": 3, "lab": 4,
}


def imports(package: str) -> list[tuple[str, int, str]]:
    """(file, line, imported top-level package) for every project import in package."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in LAYERS or top == "tests":
                    found.append((str(path.relative_to(ROOT)), node.lineno, top))
    return found


@pytest.mark.parametrize("package", list(LAYERS))
def test_imports_only_go_down_the_layers(package: str) -> None:
    upward = [f"{file}:{line} imports {top}" for file, line, top in imports(package)
              if top != package and (top == "tests" or LAYERS[top] >= LAYERS[package])]
    assert upward == [], "\n".join(upward)


def test_the_app_imports_nothing_from_the_packages_above_it() -> None:
    above = {"worker", "lab", "bench", "analysis", "loadtests", "stack", "tests"}
    assert [i for i in imports("app") if i[2] in above] == []


def test_the_checker_sees_the_imports_it_judges() -> None:
    """The rule is not vacuous: the imports it reads include the app's own."""
    assert any(top == "app" for _, _, top in imports("worker"))
    assert any(top == "stack" for _, _, top in imports("lab"))


def test_every_package_is_placed_in_a_layer() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages <= set(LAYERS), f"place {sorted(packages - set(LAYERS))} in LAYERS"
