"""Measured runs of a saved estimate: attach one, read one, delete one. The permalink lists them
(templatetags/runs.py); the access rules are the estimate's (calculator/domain/selectors.py)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from calculator.domain import selectors, services
from calculator.presenters.runs_display import run_rows
from calculator.web.forms.runs import FIGURES, MeasuredRunForm
from calculator.web.forms.sharing import add_service_error
from calculator.web.typed import AuthenticatedHttpRequest


@login_required
@require_http_methods(["GET", "POST"])
def measured_run_create_view(request: AuthenticatedHttpRequest, public_id: str) -> HttpResponse:
    # Like editing the estimate: 404 for anyone who may not write it.
    estimate, _ = selectors.estimate_get_for_user(
        user=request.user, public_id=public_id, write=True
    )
    form = MeasuredRunForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.measured_run_attach(
                user=request.user,
                estimate=estimate,
                measured=form.cleaned_data["measured"],
                raw_text=form.cleaned_data["raw_text"],
                note=form.cleaned_data["note"],
                facts=form.facts(),
            )
        except ValidationError as error:
            add_service_error(form, error)
        else:
            messages.success(request, "Attached the measured run.")
            return redirect(estimate.get_absolute_url() + "#runs")
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "estimate": estimate, "figures": [name for name, _ in FIGURES]}
    return render(request, "calculator/estimates/run_form.html", context, status=status)


@require_GET
def measured_run_detail_view(request: HttpRequest, public_id: str, run_id: int) -> HttpResponse:
    run, _ = selectors.run_get_for_user(user=request.user, public_id=public_id, run_id=run_id)
    context = {
        "run": run,
        "estimate": run.estimate,
        "rows": run_rows(run),
        "can_delete": selectors.can_delete_run(request.user, run),
    }
    return render(request, "calculator/estimates/run_detail.html", context)


@login_required
@require_POST
def measured_run_delete_view(
    request: AuthenticatedHttpRequest, public_id: str, run_id: int
) -> HttpResponse:
    run, _ = selectors.run_get_for_user(user=request.user, public_id=public_id, run_id=run_id)
    services.measured_run_delete(user=request.user, run=run)
    messages.success(request, "Deleted the measured run.")
    return redirect(run.estimate.get_absolute_url() + "#runs")
