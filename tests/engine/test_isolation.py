"""The engine is pure Python: importing it loads nothing from Django (nor torch)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_engine_loads_no_django_or_torch():
    code = (
        "import calculator.engine, sys; "
        "top = {m.split('.')[0] for m in sys.modules}; "
        "assert 'django' not in top, 'django'; "
        "assert 'torch' not in top and 'transformers' not in top, 'torch'"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
