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

from calculator.domain import caching
from calculator.domain.calculations import calculator_page_run
from calculator.domain.selectors import team_choices_for_request
from calculator.engine import EstimateError
from calculator.presenters.calculator import calculator_results
from calculator.web.forms.calculator import CalculatorForm
from calculator.web.typed import HtmxHttpRequest

# The longest link the page puts in the address bar: `make serve` lets gunicorn read request
# lines of up to 8190 bytes ("GET " + this + " HTTP/1.1" fits). A longer calculation (a large
# pasted config.json) still updates, through a POST, but gets no link: save it for a permalink.
MAX_LINK_LENGTH = 8000
# The form's hidden field that says the fit across the catalog's GPUs is open ("1")
FIT_FIELD = "fit"


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
    return render(request, "calculator/calculator.html", _page_context(request, form, data))


def _form(request: HttpRequest, data: QueryDict) -> CalculatorForm:
    """The calculator's form for the request's user. Their teams are read once for the whole
    request: here for the profile choices, and again (kept) by the save box."""
    team_ids = None
    if request.user.is_authenticated:
        team_ids = [pk for pk, _, _ in team_choices_for_request(request)]
    return CalculatorForm.from_query(data, user=request.user, team_ids=team_ids)


def fit_open(data: QueryDict) -> bool:
    """Whether the visitor has the fit across the catalog's GPUs open (the form's hidden `fit`
    field, set by static/js/calculator.js when the table is opened or closed)."""
    return data.get(FIT_FIELD) == "1"


def _page_context(request: HttpRequest, form: CalculatorForm, data: QueryDict) -> dict[str, Any]:
    """The page's data, one way: the form's payload, ONE calculation of everything the results
    show (calculations.calculator_page_run), then the presenter's display values.

    The fit across the catalog's GPUs (the fewest of each GPU that hold the request: most of
    the GPU answers' work and of the results' bytes) is folded on the page. A live update
    computes it only while it is open; the whole page always does, so that it opens without
    JavaScript; a serving plan always does (its cheapest deployments span the catalog)."""
    context: dict[str, Any] = {
        "form": form,
        "results": None,
        "link": "",
        "fit_open": fit_open(data),
    }
    if form.is_valid():
        query = form.canonical_query()
        fit_catalog = (
            not getattr(request, "htmx", False)
            or context["fit_open"]
            or form.cleaned_data.get("mode") == "serving"
        )
        try:
            page = calculator_page_run(
                user=request.user, payload=form.payload(), fit_catalog=fit_catalog
            )
        except EstimateError as error:
            form.add_estimate_error(error)
        else:
            unit = form.cleaned_data.get("unit") or "GiB"
            context["results"] = calculator_results(
                page, unit=unit, query=query, fit_catalog=fit_catalog, fit_open=context["fit_open"]
            )
            # The shortest link to this calculation (the form sends every field, even empty).
            context["link"] = f"{reverse('calculator')}?{query}"
    context["error_items"] = _error_items(form)
    context["saveable"] = context["results"] is not None and not context["error_items"]
    return context


def _results_fragment(request: HttpRequest, data: QueryDict) -> HttpResponse:
    """The results for htmx. Apart from the save box they are a pure function of the query
    string (and of the catalogs) unless the model is a saved profile, which depends on who
    asks: such results are kept (calculator/domain/caching.py) and served without binding the form
    (60 fields), running the engine or drawing the charts again."""
    kept = caching.fragment_get(data)
    if kept is None:
        form = _form(request, data)
        context = _page_context(request, form, data)
        kept = {
            "body": render_to_string("calculator/calculator.html#results-body", context),
            "saveable": context["saveable"],
            "url": context["link"],
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
