"""Forms, one module per page group."""

from calculator.web.forms.accounts import SignupForm
from calculator.web.forms.calculator import CalculatorForm

__all__ = ["CalculatorForm", "SignupForm"]
