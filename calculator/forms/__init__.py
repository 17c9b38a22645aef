"""Forms, one module per page group."""

from calculator.forms.accounts import SignupForm
from calculator.forms.calculator import CalculatorForm

__all__ = ["CalculatorForm", "SignupForm"]
