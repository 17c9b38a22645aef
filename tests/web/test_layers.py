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
