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


APP = VIEWS.parent


def _raised_and_caught(path: Path) -> tuple[set[str], set[str]]:
    """The exception names a module raises and the ones its handlers catch."""
    tree = ast.parse(path.read_text())
    raised: set[str] = set()
    caught: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name):
                raised.add(target.id)
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            types = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
            caught |= {t.id for t in types if isinstance(t, ast.Name)}
    return raised, caught


def test_selectors_and_services_raise_the_domain_errors_not_http_ones():
    # selectors raised Http404 and services Django's PermissionDenied, which every view then
    # converted by hand (eight times) and the API relied on DRF to translate
    http_errors = {"Http404", "PermissionDenied"}
    for name in ("selectors.py", "services.py", "calculations.py"):
        raised, caught = _raised_and_caught(APP / name)
        assert not raised & http_errors, name
        assert not caught & http_errors, name


def test_no_view_converts_a_domain_error_by_hand():
    # calculator/middleware.py DomainErrorMiddleware and api/exceptions.py map them, once each
    offenders = {}
    for path in [*VIEWS.glob("*.py"), *(APP / "api").glob("*.py")]:
        _, caught = _raised_and_caught(path)
        found = caught & {"PermissionDenied", "Forbidden", "NotFound", "Http404"}
        if found:
            offenders[path.name] = sorted(found)
    assert offenders == {}


def test_no_two_classes_of_the_app_share_a_name():
    # charts.py and compare.py each had a `Tick`, of different shapes (issue 17: "no two
    # classes named Estimate"); Django's own conventions (Command, Migration) excepted
    seen: dict[str, list[str]] = {}
    for path in APP.rglob("*.py"):
        if "migrations" in path.parts or "management" in path.parts:
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                seen.setdefault(node.name, []).append(str(path.relative_to(APP)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}


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
