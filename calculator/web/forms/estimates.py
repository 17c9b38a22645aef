"""Saving an estimate from the calculator, and changing its title, notes and sharing."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from django import forms

from calculator.web.forms.sharing import SharingForm

SAVE_PREFIX = "save"

# What a failed save keeps of the save form (session key, fields, how much of each, how long):
# the calculator shows it again, through the live updates, until a save succeeds.
SAVE_DRAFT_SESSION_KEY = "estimate_save_draft"
SAVE_DRAFT_FIELDS = ("title", "notes", "visibility", "team")
SAVE_DRAFT_MAX_CHARS = 20_000
SAVE_DRAFT_SECONDS = 60 * 60


class EstimateDetailsForm(SharingForm):
    """Title, notes and sharing: all that may change once an estimate is saved."""

    title = forms.CharField(max_length=200, required=False)
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    field_order = ["title", "notes", "visibility", "team"]


def save_draft_keep(session: Any, data: Mapping[str, Any]) -> None:
    """Keep what was typed in the save form of `data` (a save POST) for the next calculator."""
    fields = {
        name: str(data.get(f"{SAVE_PREFIX}-{name}") or "")[:SAVE_DRAFT_MAX_CHARS]
        for name in SAVE_DRAFT_FIELDS
    }
    session[SAVE_DRAFT_SESSION_KEY] = {"fields": fields, "at": time.time()}


def save_draft(session: Any) -> dict[str, str] | None:
    """What a recent failed save kept, as the save form's initial values; None without one."""
    draft = session.get(SAVE_DRAFT_SESSION_KEY)
    if not isinstance(draft, dict) or not isinstance(draft.get("fields"), dict):
        return None
    at = draft.get("at")
    if not isinstance(at, int | float) or time.time() - at > SAVE_DRAFT_SECONDS:
        return None
    return {
        name: value
        for name, value in draft["fields"].items()
        if name in SAVE_DRAFT_FIELDS and isinstance(value, str)
    }


def save_draft_clear(session: Any) -> None:
    session.pop(SAVE_DRAFT_SESSION_KEY, None)
