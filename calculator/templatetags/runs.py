"""{% measured_runs %}: the permalink's measured runs, each beside the estimate line by line.
The permalink view has checked that the visitor may read the estimate; whoever may read it sees
its runs (docs/design.md, "Who may see what")."""

from __future__ import annotations

from typing import Any

from django import template

from calculator.domain import selectors
from calculator.presenters.runs_display import run_rows
from calculator.web.forms.calculator import UNITS

register = template.Library()


@register.inclusion_tag("calculator/estimates/runs.html", takes_context=True)
def measured_runs(context: template.Context) -> dict[str, Any]:
    request = context["request"]
    estimate = context["estimate"]
    unit = request.GET.get("unit", "GiB")
    unit = unit if unit in UNITS else "GiB"
    runs = list(selectors.run_list(estimate=estimate))
    for run in runs:
        run.estimate = estimate
    return {
        "estimate": estimate,
        "can_write": context.get("can_write", False),
        "runs": [
            {
                "run": run,
                "rows": run_rows(run, unit),
                "can_delete": selectors.can_delete_run(request.user, run),
            }
            for run in runs
        ],
        "csrf_token": context.get("csrf_token"),
    }
