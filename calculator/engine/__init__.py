"""The estimation engine: pure Python, imports nothing from Django.

Its one door is `calculate(payload) -> dict`, speaking the estimate contract of DESIGN.md.
"""

from __future__ import annotations

from calculator.engine.errors import EstimateError
from calculator.engine.estimate import ENGINE_VERSION, calculate

__all__ = ["ENGINE_VERSION", "EstimateError", "calculate"]
