"""The calculator form's fields for the estimate contract, generated from its rows
(calculator/engine/contract.py): label, help, limits and choices are declared there once."""

from __future__ import annotations

import copy
from typing import Any

from django import forms

from calculator.engine.contract import CONTRACT, ContractField

# How the page lays a few fields out; everything else follows from the row's kind
RADIO_FIELDS = ("mode", "method")
# a small whole-number range offered as a select (ZeRO stages 0-3)
SELECT_INTEGER_FIELDS = {"zero_stage": {0: "0 (off)"}}


class _CopiedChoices:
    """A choice field whose copy per form copies its list of choices instead of deep-copying
    it. Django deep-copies every declared field for each form (the calculator's 60), the
    choices with them, and normalises them again in the widget: 0.65 of the 2 ms a calculator
    request spent binding its form. The choices are (value, label) tuples of strings, never
    changed in place: a new list of the same tuples is the same choices, and assigning new
    choices to one form's field (the GPUs, the model kinds) still leaves the others alone."""

    _choices: Any

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        result = forms.Field.__deepcopy__(self, memo)  # type: ignore[type-var]
        result._choices = copy.copy(self._choices)
        return result


class _CopiedWidgetChoices:
    """The widget's half of `_CopiedChoices`: its attrs and its already normalised choices
    copied, as Django's ChoiceWidget.__deepcopy__ does, without normalising them again."""

    attrs: dict[str, Any]
    _choices: Any

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        widget = copy.copy(self)
        widget.attrs = self.attrs.copy()
        widget._choices = copy.copy(self._choices)
        memo[id(self)] = widget
        return widget


class ChoiceField(_CopiedChoices, forms.ChoiceField):
    pass


class TypedChoiceField(_CopiedChoices, forms.TypedChoiceField):
    pass


class MultipleChoiceField(_CopiedChoices, forms.MultipleChoiceField):
    pass


class Select(_CopiedWidgetChoices, forms.Select):
    pass


class RadioSelect(_CopiedWidgetChoices, forms.RadioSelect):
    pass


class CheckboxSelectMultiple(_CopiedWidgetChoices, forms.CheckboxSelectMultiple):
    pass


def _number(attrs: dict[str, str] | None = None) -> forms.NumberInput:
    """A number box that brings up a numeric keypad (also the form's architecture fields)."""
    return forms.NumberInput(attrs={"inputmode": "numeric", **(attrs or {})})


def form_help(spec: ContractField) -> str:
    if spec.kind == "modules":
        return "None ticked: all linear layers (PEFT's all-linear)."
    return f"{spec.help} Blank: {spec.default_text}." if spec.blank else spec.help


def contract_form_field(spec: ContractField) -> forms.Field:
    """The form field for one contract row; blank (where the row allows it) is the default."""
    common: dict[str, Any] = {
        "label": spec.label,
        "help_text": form_help(spec),
        "required": not spec.blank,
    }
    limits = spec.limits
    if spec.name in SELECT_INTEGER_FIELDS and limits is not None:
        names = SELECT_INTEGER_FIELDS[spec.name]
        low, high = (int(limit) for limit in limits)
        return TypedChoiceField(
            choices=[(str(value), names.get(value, str(value))) for value in range(low, high + 1)],
            widget=Select,
            coerce=int,
            **common,
        )
    if spec.kind == "integer":
        assert limits is not None, spec.name
        return forms.IntegerField(
            widget=_number(), min_value=int(limits[0]), max_value=int(limits[1]), **common
        )
    if spec.kind == "number":
        assert limits is not None, spec.name
        # an excluded low end (epochs) is the engine's to refuse, with its own message
        return forms.FloatField(
            widget=forms.NumberInput(attrs={"step": "any"}),
            min_value=None if spec.open_low else limits[0],
            max_value=limits[1],
            **common,
        )
    if spec.kind == "boolean":
        return forms.BooleanField(**{**common, "required": False})
    if spec.kind == "modules":
        return MultipleChoiceField(
            choices=[(name, name) for name in spec.choices],
            widget=CheckboxSelectMultiple,
            **{**common, "required": False},
        )
    if spec.kind == "choice":
        choices = [(value, spec.choice_label(value)) for value in spec.choices]
        if spec.blank:
            choices = [("", spec.blank_label or f"Default ({spec.default_text})"), *choices]
        widget = RadioSelect if spec.name in RADIO_FIELDS else Select
        return ChoiceField(choices=choices, widget=widget, **common)
    if spec.kind == "text":
        return forms.CharField(max_length=spec.max_length, **common)
    # the GPU: a catalog select filled per request (CalculatorForm.__init__)
    return ChoiceField(widget=Select, **common)


def contract_form_fields() -> dict[str, forms.Field]:
    return {spec.name: contract_form_field(spec) for spec in CONTRACT if spec.on_form}
