from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import push_url

from calculator import caching, charts, gpu_display, serving_display
from calculator.calculations import Calculation, calculation_run
from calculator.engine import HARDWARE_FIELDS, INPUT_LIMITS, EstimateError, sweep
from calculator.forms.calculator import CalculatorForm
from calculator.presenters.results import METHOD_NAMES, OTHER_METHOD, checkpoint_line
from calculator.querystring import with_changes
from calculator.selectors import team_choices_for_request
from calculator.typed import HtmxHttpRequest

SWEEP_POINTS = 24


# The longest link the page puts in the address bar: `make serve` lets gunicorn read request
# lines of up to 8190 bytes ("GET " + this + " HTTP/1.1" fits). A longer calculation (a large
# pasted config.json) still updates, through a POST, but gets no link: save it for a permalink.
MAX_LINK_LENGTH = 8000


@require_http_methods(["GET", "POST"])
def calculator(request: HtmxHttpRequest) -> HttpResponse:
    """The calculator: the full page, or only its results fragment for htmx requests. The
    query string is the estimate contract, so every calculation is a bookmarkable link. The
    live update posts the same fields instead when they are too long for a URL (the POST is
    CSRF-checked like any other; nothing is written)."""
    data = request.POST if request.method == "POST" else request.GET
    if request.htmx:
        return _results_fragment(request, data)
    form = _form(request, data)
    return render(request, "calculator/calculator.html", _calculate(request, form))


def _form(request: HttpRequest, data: QueryDict) -> CalculatorForm:
    """The calculator's form for the request's user. Their teams are read once for the whole
    request: here for the profile choices, and again (kept) by the save box."""
    team_ids = None
    if request.user.is_authenticated:
        team_ids = [pk for pk, _, _ in team_choices_for_request(request)]
    return CalculatorForm.from_query(data, user=request.user, team_ids=team_ids)


def _calculate(request: HttpRequest, form: CalculatorForm) -> dict[str, Any]:
    context: dict[str, Any] = {"form": form, "results": None}
    if form.is_valid():
        try:
            calculation = calculation_run(user=request.user, payload=form.payload())
        except EstimateError as error:
            form.add_estimate_error(error)
        else:
            context["results"] = _results(request, form, calculation)
    context["error_items"] = _error_items(form)
    context["saveable"] = context["results"] is not None and not context["error_items"]
    return context


def _results_fragment(request: HttpRequest, data: QueryDict) -> HttpResponse:
    """The results for htmx. Apart from the save box they are a pure function of the query
    string (and of the catalogs) unless the model is a saved profile, which depends on who
    asks: such results are kept (calculator/caching.py) and served without binding the form
    (60 fields), running the engine or drawing the charts again."""
    kept = caching.fragment_get(data)
    if kept is None:
        form = _form(request, data)
        context = _calculate(request, form)
        kept = {
            "body": render_to_string("calculator/calculator.html#results-body", context),
            "saveable": context["saveable"],
            # The shortest link to this calculation (the form sends every field, even empty).
            "url": f"{reverse('calculator')}?{form.canonical_query()}" if form.is_valid() else "",
            # invalid inputs: what is wrong, field by field, for the page to show in place
            "errors": [] if form.is_valid() else context["error_items"],
        }
        # a profile's or a Hub model's results depend on who asks (gated and private repos)
        if form.is_valid() and form.cleaned_data["model"] not in ("profile", "hub"):
            caching.fragment_set(data, kept)
    link_too_long = len(kept["url"]) > MAX_LINK_LENGTH
    context = {
        "results_body": mark_safe(kept["body"]),
        "saveable": kept["saveable"],
        "link_too_long": link_too_long,
    }
    response = render(request, "calculator/calculator.html#results", context)
    # The address bar follows valid inputs only, and never gets a link too long to open.
    push_url(response, kept["url"] if kept["url"] and not link_too_long else False)
    if kept.get("errors"):
        # A keystroke that leaves the form invalid keeps the last good result on screen,
        # marked stale, with each message beside its field (static/js/calculator.js); without
        # JavaScript the page shows the same messages beside the fields.
        response["HX-Reswap"] = "none"
        response["HX-Trigger"] = json.dumps({"calculator-invalid": {"errors": kept["errors"]}})
    return response


@require_GET
def catalog_options(request: HttpRequest) -> HttpResponse:
    """The catalog select narrowed to `catalog_search`, for the search box above it (htmx).
    Without JavaScript the calculator page itself narrows the select the same way."""
    form = CalculatorForm.from_query(request.GET, user=request.user)
    return render(request, "calculator/calculator.html#catalog-field", {"form": form})


def _results(request: HttpRequest, form: CalculatorForm, calculation: Calculation) -> dict:
    result = calculation.result
    unit = form.cleaned_data.get("unit") or "GiB"
    method = result["inputs"]["method"]
    other_method = OTHER_METHOD[method]
    other_total: str | None
    other_error: str | None
    try:
        # the memory estimate alone: the GPU answers are shown for the chosen method only;
        # the model already resolved (no second catalog or profile lookup)
        memory_payload = {
            name: value
            for name, value in calculation.payload.items()
            if name not in HARDWARE_FIELDS
        }
        other = calculation_run(
            user=request.user,
            payload={
                **memory_payload,
                "model": calculation.resolved.engine_model,
                "method": other_method,
            },
        )
    except EstimateError as error:
        other_total, other_error = None, error.message
    else:
        other_total, other_error = charts.in_unit(other.result["total_bytes"], unit), None
    sequence_length = result["inputs"]["sequence_length"]
    lengths = charts.sequence_length_points(
        sequence_length, INPUT_LIMITS["sequence_length"][1], SWEEP_POINTS
    )
    engine_payload = {**calculation.payload, "model": calculation.resolved.engine_model}
    totals = sweep(engine_payload, "sequence_length", lengths)
    chart = charts.line_chart(
        list(zip(lengths, totals, strict=True)),
        current_x=sequence_length,
        unit=unit,
        x_label="Sequence length (tokens)",
    )
    parameters = result["parameters"]
    return {
        "result": result,
        "model_name": calculation.resolved.name,
        "unit": unit,
        "total": charts.in_unit(result["total_bytes"], unit),
        "total_bytes": f"{result['total_bytes']:,}",
        "method_name": METHOD_NAMES[method],
        "other_method_name": METHOD_NAMES[other_method],
        "other_total": other_total,
        "other_error": other_error,
        "other_query": with_changes(form.canonical_query(), method=other_method),
        "rows": charts.with_basis(
            charts.breakdown_rows(result["breakdown"], unit), result.get("breakdown_bounds"), unit
        ),
        "bounds": charts.bounds_line(result.get("breakdown_bounds"), unit),
        "bar": charts.stacked_bar(result["breakdown"], unit),
        "chart": chart,
        "parameters": charts.parameter_rows(parameters),
        "checkpoint": checkpoint_line(result, form.canonical_query()),
        "num_gpus": result["num_gpus"],
        "gpus": gpu_display.gpu_section(result, unit),
        "serving": serving_display.serving_section(result, unit),
        "host_memory": charts.in_unit(result["host_memory_bytes"], unit)
        if result.get("host_memory_bytes")
        else None,
        "notes": result["notes"],
        "warnings": result.get("warnings", []),
        "engine_version": result["engine_version"],
    }


def _error_items(form: CalculatorForm) -> list[dict[str, str]]:
    """Every error of the form as (anchor, label, message), for the results fragment: htmx
    swaps only the results, so the errors must be listed there too."""
    if not form.is_bound or not form.errors:
        return []
    items: list[dict[str, str]] = []
    for name, errors in form.errors.items():
        if name == "__all__":
            items.extend({"anchor": "", "label": "", "message": str(e)} for e in errors)
            continue
        field = form[name]
        items.extend(
            {"anchor": field.auto_id, "label": str(field.label), "message": str(e)} for e in errors
        )
    return items
