"""Saving an estimate from the calculator, and changing its title, notes and sharing."""

from __future__ import annotations

from django import forms

from calculator.forms.sharing import SharingForm

SAVE_PREFIX = "save"


class EstimateDetailsForm(SharingForm):
    """Title, notes and sharing: all that may change once an estimate is saved."""

    title = forms.CharField(max_length=200, required=False)
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    field_order = ["title", "notes", "visibility", "team"]
