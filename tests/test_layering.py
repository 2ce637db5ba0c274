"""Dependencies run one way: every import of the project goes down the layers, never up.

    lab                                   the launcher's command line, on top
    bench                                 the benchmarks
    loadtests  curriculum                 the load runner; the workshop's exercises and graders
    worker  analysis  stack  room         beside each other, none importing another
    app                                   the web app, at the bottom

Nothing outside tests/ imports tests. Imports inside functions count as much as the others,
and so do modules imported by name at run time (`importlib.import_module("analysis.prom")`,
`__import__`). A module is never loaded by its file path (`spec_from_file_location`,
`runpy.run_path`, `SourceFileLoader`): such a load hides a dependency from this test and from
`farm-studio look`, so it is refused wherever it stands.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.processes import ROOT

LAYERS: dict[str, int] = {
    "app": 0, "worker": 1, "analysis": 1, "stack": 1, "room": 1, "loadtests": 2, "curriculum": 2,
    "bench": 3, "lab": 4,
}
# Calls that import a module named by a string, and calls that load one from a file.
BY_NAME = frozenset({"import_module", "__import__"})
BY_PATH = frozenset({"spec_from_file_location", "run_path", "SourceFileLoader", "SourcelessFileLoader",
                     "load_source"})


def _called(node: ast.Call) -> str:
    """The name a call calls: `f` of `f(...)` and of `a.b.f(...)`."""
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _named_module(arg: ast.expr, own: str) -> str | None:
    """The module an import-by-name call names: a constant, or an f-string that starts with a
    constant or with `__name__` (the calling module's own package)."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values:
        first = arg.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
        if isinstance(first, ast.FormattedValue) and isinstance(first.value, ast.Name) \
                and first.value.id == "__name__":
            return own
    return None


def imports(package: str, root: Path = ROOT) -> list[tuple[str, int, str]]:
    """(file, line, imported top-level package) for every project import in package; a load by
    file path is listed with the package "<file path>"."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and _called(node) in BY_NAME and node.args:
                name = _named_module(node.args[0], package)
                names = [name] if name else ["<a computed name>"]
            elif isinstance(node, ast.Call) and _called(node) in BY_PATH:
                found.append((str(path.relative_to(root)), node.lineno, "<file path>"))
                continue
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in LAYERS or top in ("tests", "<a computed name>"):
                    found.append((str(path.relative_to(root)), node.lineno, top))
    return found


def upward(package: str, root: Path = ROOT) -> list[str]:
    """The imports of package that do not go down the layers."""
    return [f"{file}:{line} imports {top}" for file, line, top in imports(package, root)
            if top != package and (top not in LAYERS or LAYERS[top] >= LAYERS[package])]


@pytest.mark.parametrize("package", list(LAYERS))
def test_imports_only_go_down_the_layers(package: str) -> None:
    assert upward(package) == [], "\n".join(upward(package))


def test_the_app_imports_nothing_from_the_packages_above_it() -> None:
    above = set(LAYERS) - {"app"} | {"tests"}
    assert [i for i in imports("app") if i[2] in above] == []


def test_the_checker_sees_the_imports_it_judges() -> None:
    """The rule is not vacuous: the imports it reads include the app's own, and lab's
    command registry imports its commands by name."""
    assert any(top == "app" for _, _, top in imports("worker"))
    assert any(top == "stack" for _, _, top in imports("lab"))
    assert any(file == "lab/commands/__init__.py" and top == "lab" for file, _, top in imports("lab"))


@pytest.mark.parametrize(("source", "found"), [
    ("import importlib\nimportlib.import_module('lab.cli')\n", "imports lab"),
    ("from importlib import import_module\nimport_module(f'curriculum.{1}')\n", "imports curriculum"),
    ("__import__('tests.support')\n", "imports tests"),
    ("import importlib\nname = 'lab'\nimportlib.import_module(name)\n", "imports <a computed name>"),
    ("import importlib.util\nimportlib.util.spec_from_file_location('s', 'notebooks/solutions.py')\n",
     "imports <file path>"),
    ("import runpy\nrunpy.run_path('curriculum/solutions.py')\n", "imports <file path>"),
])
def test_an_import_by_name_or_a_load_by_path_of_a_higher_layer_fails(
        tmp_path: Path, source: str, found: str) -> None:
    """The checker fails on the ways around `import`: importlib, __import__, loading a file."""
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "sneaky.py").write_text(source, encoding="utf-8")
    assert [line.split(" ", 1)[1] for line in upward("analysis", tmp_path)] == [found]


def test_an_import_by_name_of_a_lower_layer_passes(tmp_path: Path) -> None:
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "ok.py").write_text(
        "import importlib\nimportlib.import_module('analysis.prom')\n"
        "importlib.import_module(f'{__name__}.sub')\n", encoding="utf-8")
    assert upward("lab", tmp_path) == []


def test_every_package_is_placed_in_a_layer() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages <= set(LAYERS), f"place {sorted(packages - set(LAYERS))} in LAYERS"
