"""The web layer's shape (issue 17): views do not reach into one another; display values that
two pages share live in calculator/presenters/."""

from __future__ import annotations

import ast
from pathlib import Path

VIEWS = Path(__file__).resolve().parents[2] / "calculator" / "views"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return names


def test_no_view_module_imports_another_view_module():
    # views/estimates.py took METHOD_NAMES and checkpoint_line from views/calculator.py
    offenders = {
        path.name: sorted(name for name in _imports(path) if name.startswith("calculator.views"))
        for path in VIEWS.glob("*.py")
        if path.name != "__init__.py"
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def _imported_names(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == module
        for alias in node.names
    }


def test_the_calculator_view_calculates_once_and_presents():
    # issue 17: request -> form -> ONE calculations call -> a pure presenter -> template; the
    # view ran the engine twice itself and the sweep around it
    path = VIEWS / "calculator.py"
    assert _imported_names(path, "calculator.calculations") == {"calculator_page_run"}
    assert _imported_names(path, "calculator.engine") <= {"EstimateError"}
    assert "calculator.engine.sweep" not in _imports(path)
    assert _imported_names(path, "calculator.presenters.calculator") == {"calculator_results"}


def test_presenters_run_no_query_and_no_engine():
    # the calculator's presenters; presenters/history.py reads the rows and the export it writes
    presenters = VIEWS.parent / "presenters"
    for path in (presenters / "calculator.py", presenters / "results.py"):
        names = _imports(path)
        assert not {name for name in names if name.startswith("django.db")}, path.name
        assert "calculator.selectors" not in names, path.name
        assert not (
            _imported_names(path, "calculator.calculations") - {"CalculatorPage", "OTHER_METHOD"}
        ), path.name
