"""`{% save_estimate_form %}`: the calculator's save box, with its form built here, not in HTML."""

from __future__ import annotations

from typing import Any

from django import template

from calculator.forms.estimates import SAVE_PREFIX, EstimateDetailsForm, save_draft

register = template.Library()


@register.inclusion_tag("calculator/estimates/save_form.html", takes_context=True)
def save_estimate_form(context: template.Context) -> dict[str, Any]:
    request = context["request"]
    form = None
    on_calculator = request.resolver_match and request.resolver_match.url_name == "calculator"
    if not on_calculator:
        # The results fragment is also shown on permalinks: nothing to save there.
        return {"request": request, "user": request.user, "save_form": None, "hidden": True}
    draft = None
    if request.user.is_authenticated:
        # a failed save's title and notes, kept until a save succeeds (views/estimates.py)
        draft = save_draft(request.session)
        form = EstimateDetailsForm(prefix=SAVE_PREFIX, user=request.user, initial=draft)
    return {
        "request": request,
        "user": request.user,
        "save_form": form,
        "hidden": False,
        "open": draft is not None,
    }
