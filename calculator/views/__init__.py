"""HTML views, one module per page group; urls.py imports them from here."""

from calculator.views.accounts import signup
from calculator.views.calculator import calculator
from calculator.views.health import healthz

__all__ = ["calculator", "healthz", "signup"]
