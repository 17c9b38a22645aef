"""Saved estimates: save from the calculator, the permalink, history and its export, compare."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from calculator.domain import caching, evidence, selectors, services
from calculator.domain.calculations import OTHER_METHOD, calculation_run
from calculator.domain.history_queries import HISTORY_COUNT_LIMIT, HistoryPaginator
from calculator.domain.selectors import (
    User,
    estimate_get_for_user,
    estimate_list,
    profile_list,
    readable_profile_ids,
)
from calculator.engine import EstimateError
from calculator.engine.inputs import DEFAULTS, HARDWARE_FIELDS, SERVING_FIELDS
from calculator.models import Estimate
from calculator.presenters import charts, gpu_display, serving_display
from calculator.presenters.compare import (
    GIB,
    MAX_COMPARED,
    MIN_COMPARED,
    ComparedEstimate,
    Row,
    answer_rows,
    breakdown_rows,
    grouped_bar_chart,
    input_rows,
    measured_rows,
    serving_rows,
)
from calculator.presenters.history import export_response, history_rows
from calculator.presenters.results import METHOD_NAMES, checkpoint_line
from calculator.web.forms.calculator import TRAINING_FIELDS, UNITS, CalculatorForm
from calculator.web.forms.estimates import (
    SAVE_PREFIX,
    EstimateDetailsForm,
    save_draft_clear,
    save_draft_keep,
)
from calculator.web.forms.sharing import add_service_error
from calculator.web.history_filters import history_filter
from calculator.web.querystring import encode_architecture, encode_fields
from calculator.web.typed import AuthenticatedHttpRequest

HISTORY_PAGE_SIZE = 25
# Inputs that only training reads: the saved inputs hold their defaults whatever the mode, and
# an inference estimate's permalink does not list them (issue 14).
TRAINING_ONLY_INPUTS = frozenset(
    {*TRAINING_FIELDS, "zero_stage", "sharding", "training_efficiency", "training_tokens", "epochs"}
)
COLUMN_LETTERS = "ABCD"


def format_gib(num_bytes: int) -> str:
    return f"{num_bytes / GIB:,.2f} GiB"


# --- Save -------------------------------------------------------------------------------------


def _calculator_query(data: QueryDict) -> QueryDict:
    """The calculator's own fields of a save POST: everything but the save form and the token."""
    query = data.copy()
    for key in list(query):
        if key == "csrfmiddlewaretoken" or key.startswith(f"{SAVE_PREFIX}-"):
            del query[key]
    return query


@login_required
@require_POST
def estimate_save_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Recompute from the posted inputs (a posted result is never trusted), then save."""
    query = _calculator_query(request.POST)
    calculator_form = CalculatorForm.from_query(query, user=request.user)
    save_form = EstimateDetailsForm(request.POST, prefix=SAVE_PREFIX, user=request.user)
    calculation = None
    if calculator_form.is_valid():
        try:
            calculation = calculation_run(user=request.user, payload=calculator_form.payload())
        except EstimateError as error:
            calculator_form.add_estimate_error(error)
    if save_form.is_valid() and calculation is not None:
        try:
            estimate = services.estimate_save(
                user=request.user,
                calculation=calculation,
                title=save_form.cleaned_data["title"],
                notes=save_form.cleaned_data["notes"],
                visibility=save_form.cleaned_data["visibility"],
                team=save_form.cleaned_data["team"],
            )
        except ValidationError as error:
            add_service_error(save_form, error)
        else:
            save_draft_clear(request.session)
            messages.success(request, "Saved. This page's address is the estimate's permalink.")
            return redirect(estimate)
    # The calculator shows the save form again with what was typed (not in the address: notes
    # can be long, and they are nobody else's business).
    save_draft_keep(request.session, request.POST)
    for form in (calculator_form, save_form):
        for field, errors in form.errors.items():
            label = (form.fields[field].label or field) if field in form.fields else ""
            for message in errors:
                # str: ErrorList yields its messages as text (the stubs allow a ValidationError)
                messages.error(request, f"Not saved: {label}: {message}" if label else str(message))
    return redirect(reverse("calculator") + "?" + query.urlencode(safe="/"))


# --- Permalink --------------------------------------------------------------------------------


def _model_query(query: QueryDict, estimate: Estimate, *, user: User | None) -> None:
    """The model part of the calculator link: the catalog slug or profile id while they still
    describe what was saved, else the saved snapshot itself."""
    model = estimate.inputs.get("model") or {}
    kind, value = next(iter(model.items())) if len(model) == 1 else ("", None)
    profile = estimate.profile
    unchanged = profile is not None and profile.engine_model() == estimate.architecture
    if kind == "catalog" and unchanged:
        query["model"], query["catalog"] = "catalog", str(value)
        return
    listed = profile is not None and profile_list(user=user).filter(pk=profile.pk).exists()
    if kind == "profile" and unchanged and listed and profile is not None:
        query["model"], query["profile"] = "profile", str(profile.pk)
        return
    ((snapshot_kind, snapshot),) = estimate.architecture.items()
    query["model"] = snapshot_kind
    if snapshot_kind == "hf_config":
        query["hf_config"] = json.dumps(snapshot, separators=(",", ":"))
        return
    encode_architecture(query, snapshot)


def calculator_url_for_estimate(estimate: Estimate, *, user: User | None) -> str:
    """The calculator with this estimate's inputs, to adjust a copy of it."""
    query = QueryDict(mutable=True)
    _model_query(query, estimate, user=user)
    encode_fields(query, estimate.inputs, (*DEFAULTS, *HARDWARE_FIELDS, *SERVING_FIELDS))
    # The page has one GPU count: an estimate saved through the API with the GPU answers on
    # another count than its memory layout opens on that count, laid out automatically (the
    # layout its capacity, throughput and cost were computed for).
    gpu_count = query.pop("gpu_count", [None])[-1]
    if gpu_count is not None and gpu_count != query.get("num_gpus"):
        query["num_gpus"] = gpu_count
        query.pop("tensor_parallel", None)
        query.pop("pipeline_parallel", None)
    return reverse("calculator") + "?" + query.urlencode(safe="/")


def profile_status(estimate: Estimate, *, user: User | None, can_write: bool) -> str:
    """What became of the estimate's profile: '' (unchanged, or none), 'changed', 'deleted'.
    Only to those who may read the profile ('deleted' to those who may write the estimate):
    everyone else sees the snapshot saved with the estimate, not the profile's current name
    and link, nor whether it was edited."""
    kind = next(iter(estimate.inputs.get("model") or {"": None}))
    if kind not in ("catalog", "profile"):
        return ""
    if estimate.profile is None or estimate.profile_id is None:
        return "deleted" if can_write else ""
    if estimate.profile_id not in readable_profile_ids(user=user, ids={estimate.profile_id}):
        return ""
    if estimate.profile.engine_model() != estimate.architecture:
        return "changed"
    return ""


def _compared(estimate: Estimate, label: str = "") -> ComparedEstimate:
    return ComparedEstimate(
        label=label or estimate.title or estimate.model_name,
        model_name=estimate.model_name,
        inputs=estimate.inputs,
        result=estimate.result,
    )


def saved_results(estimate: Estimate, unit: str) -> dict[str, Any]:
    """The calculator's results context from what was saved: nothing is recomputed, so the
    permalink shows the numbers of the day it was saved, whatever the engine says now."""
    result = estimate.result
    breakdown = result.get("breakdown", {})
    parameters = result.get("parameters", {})
    method = estimate.method
    return {
        "result": result,
        "model_name": estimate.model_name,
        "unit": unit,
        "total": charts.in_unit(estimate.total_bytes, unit),
        "total_bytes": f"{estimate.total_bytes:,}",
        "method_name": METHOD_NAMES[method],
        "other_method_name": METHOD_NAMES[OTHER_METHOD[method]],
        "other_total": None,
        "other_error": "a saved estimate keeps the numbers of its own method",
        "other_query": "",
        "rows": charts.with_basis(
            charts.breakdown_rows(breakdown, unit), result.get("breakdown_bounds"), unit
        ),
        "bounds": charts.bounds_line(result.get("breakdown_bounds"), unit),
        "bar": charts.stacked_bar(breakdown, unit),
        "chart": None,
        "parameters": charts.parameter_rows(parameters),
        "checkpoint": checkpoint_line(result, None),
        "num_gpus": estimate.num_gpus,
        "gpus": gpu_display.gpu_section(result, unit),
        "serving": serving_display.serving_section(result, unit),
        "host_memory": charts.in_unit(result["host_memory_bytes"], unit)
        if result.get("host_memory_bytes")
        else None,
        "notes": result.get("notes", []),
        "warnings": result.get("warnings", []),
        "engine_version": estimate.engine_version,
    }


def permalink_input_rows(estimate: Estimate) -> list[Row]:
    """The saved inputs the permalink lists (the model is shown apart): the ones its mode
    reads."""
    rows = input_rows([_compared(estimate)])[1:]
    if estimate.mode == "training":
        return rows
    return [row for row in rows if row.label not in TRAINING_ONLY_INPUTS]


def saved_sections(estimate: Estimate, unit: str) -> dict[str, str]:
    """The permalink's results and inputs as HTML. They depend only on what was saved and on
    the unit, so they are kept per estimate, edit and unit (calculator/domain/caching.py): rendering
    them was most of the page's time. Nothing per visitor is inside; access is checked before."""

    def render() -> dict[str, str]:
        results = {"results": saved_results(estimate, unit), "error_items": None}
        rows = {"estimate": estimate, "input_rows": permalink_input_rows(estimate)}
        return {
            "results": render_to_string("calculator/calculator.html#results", results),
            "inputs": render_to_string("calculator/estimates/permalink.html#inputs", rows),
        }

    sections = caching.saved_sections(estimate, unit, render)
    return {name: mark_safe(html) for name, html in sections.items()}


@require_GET
def estimate_permalink_view(request: HttpRequest, public_id: str) -> HttpResponse:
    estimate, access = estimate_get_for_user(user=request.user, public_id=public_id)
    unit = request.GET.get("unit", "GiB")
    context: dict[str, Any] = {
        "sections": saved_sections(estimate, unit if unit in UNITS else "GiB"),
        "estimate": estimate,
        "can_write": access.can_write,
        "profile_status": profile_status(estimate, user=request.user, can_write=access.can_write),
        "calculator_url": calculator_url_for_estimate(estimate, user=request.user),
    }
    return render(request, "calculator/estimates/permalink.html", context)


def _details_initial(estimate: Estimate) -> dict[str, Any]:
    return {
        "title": estimate.title,
        "notes": estimate.notes,
        "visibility": estimate.visibility,
        "team": estimate.team,
    }


@login_required
@require_http_methods(["GET", "POST"])
def estimate_edit_view(request: AuthenticatedHttpRequest, public_id: str) -> HttpResponse:
    estimate, access = estimate_get_for_user(user=request.user, public_id=public_id, write=True)
    form = EstimateDetailsForm(
        request.POST or None,
        user=request.user,
        initial=_details_initial(estimate),
        can_share=access.can_share,
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.estimate_update(user=request.user, estimate=estimate, **form.cleaned_data)
        except ValidationError as error:
            add_service_error(form, error)
        else:
            messages.success(request, "Saved the title, notes and sharing.")
            return redirect(estimate)
    return render(request, "calculator/estimates/edit.html", {"form": form, "estimate": estimate})


@login_required
@require_POST
def estimate_delete_view(request: AuthenticatedHttpRequest, public_id: str) -> HttpResponse:
    estimate, _ = estimate_get_for_user(user=request.user, public_id=public_id, write=True)
    services.estimate_delete(user=request.user, estimate=estimate)
    messages.success(request, f"Deleted “{estimate}”.")
    return redirect("history")


# --- History ----------------------------------------------------------------------------------


@login_required
@require_GET
def history_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    filterset = history_filter(request)
    fmt = request.GET.get("format")
    if fmt in ("csv", "json"):
        return export_response(request, filterset.qs, fmt=fmt)
    # Count (up to a limit) and order the ids first, as a union of the access rule's parts
    # (each an index range on PostgreSQL: calculator/domain/history_queries.py's ListedIds),
    # then read the
    # page's 25 rows by id, through the access filter again.
    paginator = HistoryPaginator(filterset.ids, HISTORY_PAGE_SIZE, count_limit=HISTORY_COUNT_LIMIT)
    page = paginator.get_page(request.GET.get("page"))
    rows = history_rows(filterset.qs, list(page.object_list))
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("format", None)
    context = {
        "filter": filterset,
        "page": page,
        "rows": rows,
        "query": query.urlencode(),
    }
    template = "calculator/estimates/history.html"
    if request.htmx:
        template += "#table"
    return render(request, template, context)


@login_required
@require_GET
def history_export_view(request: AuthenticatedHttpRequest, fmt: str) -> HttpResponse:
    if fmt not in ("csv", "json"):
        raise Http404("Export as .csv or .json.")
    return export_response(request, history_filter(request).qs, fmt=fmt)


@login_required
@require_POST
def history_bulk_delete_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Delete the ticked estimates that are the user's own; teammates' ones stay. A POST
    without `confirm` (the history page's button) answers with a page that lists what would go
    and asks to confirm: it works without JavaScript, and nothing is deleted by one click."""
    public_ids = list(dict.fromkeys(request.POST.getlist("ids")[: HISTORY_PAGE_SIZE * 4]))
    own = estimate_list(user=request.user).filter(owner=request.user, public_id__in=public_ids)
    # Back to the same filters; re-encoded, so only a query string can come through.
    back = QueryDict(request.POST.get("query", "")).urlencode()
    history_url = reverse("history") + (f"?{back}" if back else "")
    if not request.POST.get("confirm"):
        if not public_ids:
            messages.error(request, "Tick the estimates to delete first.")
            return redirect(history_url)
        doomed = list(own.select_related(None).order_by("-created"))
        context = {
            "estimates": doomed,
            "others": len(public_ids) - len(doomed),
            "query": back,
            "history_url": history_url,
        }
        return render(request, "calculator/estimates/history_delete.html", context)
    deleted = services.estimate_bulk_delete(
        user=request.user, ids=list(own.values_list("pk", flat=True))
    )
    skipped = len(public_ids) - deleted
    message = f"Deleted {deleted} estimate{'s' if deleted != 1 else ''}."
    if skipped > 0:
        message += f" {skipped} not yours (or already gone) stayed."
    messages.success(request, message)
    return redirect(history_url)


# --- Compare ----------------------------------------------------------------------------------


PUBLIC_ID = re.compile(r"[-\w]+")


def _compare_ids(request: HttpRequest) -> list[str]:
    ids: list[str] = []
    for raw in request.GET.getlist("ids"):
        ids += [part.strip() for part in raw.split(",") if part.strip()]
    return list(dict.fromkeys(ids))


def _latest_run_lines(estimate: Estimate) -> list[evidence.ComparedLine] | None:
    """The estimate (already read) beside its latest measured run, line by line."""
    run = selectors.run_list(estimate=estimate).first()
    if run is None:
        return None
    return evidence.compare(
        breakdown=(estimate.result or {}).get("breakdown", {}),
        total_bytes=estimate.total_bytes,
        measured=run.measured(),
    )


def _compared_estimate(user: User | None, public_id: str) -> Estimate:
    # Public ids are URL-safe base64; anything else (a NUL, which PostgreSQL cannot compare)
    # names no estimate: 404 without asking the database.
    if not PUBLIC_ID.fullmatch(public_id):
        raise Http404("No such estimate.")
    return estimate_get_for_user(user=user, public_id=public_id)[0]


@require_GET
def compare_view(request: HttpRequest) -> HttpResponse:
    ids = _compare_ids(request)
    if set(request.GET) - {"ids"}:
        # From the history page's form: drop its other fields for a clean, shareable address.
        return redirect(reverse("compare") + "?ids=" + quote(",".join(ids), safe=","))
    if not MIN_COMPARED <= len(ids) <= MAX_COMPARED:
        context: dict[str, Any] = {
            "error": f"Choose {MIN_COMPARED} to {MAX_COMPARED} estimates to compare."
        }
        return render(request, "calculator/estimates/compare.html", context, status=400)
    # One lookup each, by public id like a permalink: 404 when any of them is not readable.
    estimates = [_compared_estimate(request.user, pid) for pid in ids]
    compared = [_compared(e, f"{COLUMN_LETTERS[i]}") for i, e in enumerate(estimates)]
    breakdown = breakdown_rows(compared)
    context = {
        "estimates": list(zip(COLUMN_LETTERS, estimates, strict=False)),
        "input_rows": input_rows(compared, TRAINING_ONLY_INPUTS),
        "answer_rows": answer_rows(compared) + serving_rows(compared),
        "measured_rows": measured_rows([_latest_run_lines(e) for e in estimates]),
        "breakdown": [(row, [(format_gib(v), f"{v:,}") for v in row.values]) for row in breakdown],
        "chart": grouped_bar_chart(compared),
    }
    return render(request, "calculator/estimates/compare.html", context)
