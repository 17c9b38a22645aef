"""Model profiles: list, detail, create, import a config.json, edit, delete, duplicate."""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from calculator.domain import services
from calculator.domain.selectors import estimate_list, profile_get_for_user, profile_list
from calculator.engine import EstimateError
from calculator.engine.architecture import ARCHITECTURE_FIELDS
from calculator.engine.inputs import resolve_model
from calculator.models import ModelProfile, ProfileSource
from calculator.web.forms.profiles import ProfileFilterForm, ProfileImportForm, ProfileManualForm
from calculator.web.forms.sharing import add_service_error
from calculator.web.typed import AuthenticatedHttpRequest, HtmxHttpRequest

# The engine's Architecture fields worth showing, in reading order (zeros hidden if optional):
# the model type first, then the contract's fields but the parameter count (shown beside the
# name), the family (the page's own line) and the shared experts' width.
SHAPE_FIELDS = (
    "model_type",
    *(
        name
        for name in ARCHITECTURE_FIELDS
        if name not in ("num_parameters", "model_type", "family", "shared_expert_intermediate_size")
    ),
)
ALWAYS_SHOWN = set(SHAPE_FIELDS[:10]) | {"default_dtype"}
ESTIMATES_SHOWN_ON_PROFILE = 50


def _profile_sections(request: HttpRequest, form: ProfileFilterForm) -> list[dict[str, Any]]:
    visible = profile_list(user=request.user).only(
        "public_id", "name", "family", "source", "visibility", "num_parameters",
        "num_active_parameters", "owner__username", "team__name", "team__slug",
    )  # fmt: skip
    if form.is_valid():
        if form.cleaned_data["q"]:
            visible = visible.filter(name__icontains=form.cleaned_data["q"].strip())
        if form.cleaned_data["family"]:
            visible = visible.filter(family=form.cleaned_data["family"])
        if form.cleaned_data["source"]:
            visible = visible.filter(source=form.cleaned_data["source"])
    sections = []
    if request.user.is_authenticated:
        sections += [
            {"id": "mine", "title": "My profiles", "profiles": visible.filter(owner=request.user)},
            {
                "id": "team",
                "title": "Shared with my teams",
                "profiles": visible.exclude(owner=request.user).exclude(
                    source=ProfileSource.CATALOG
                ),
            },
        ]
    catalog = visible.filter(source=ProfileSource.CATALOG)
    sections.append({"id": "catalog", "title": "Catalog", "profiles": catalog})
    return sections


@require_GET
def profile_list_view(request: HtmxHttpRequest) -> HttpResponse:
    families = sorted(
        set(profile_list(user=request.user).exclude(family="").values_list("family", flat=True))
    )
    form = ProfileFilterForm(request.GET, families=families)
    context = {"form": form, "sections": _profile_sections(request, form)}
    template = "calculator/profiles/list.html"
    if request.htmx:
        template += "#sections"
    return render(request, template, context)


@login_required
@require_http_methods(["GET", "POST"])
def profile_create_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = ProfileManualForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            profile = services.profile_create(
                user=request.user,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                architecture=form.architecture(),
                **form.sharing(),
            )
        except ValidationError as error:
            add_service_error(form, error)
        else:
            messages.success(request, f"Saved the profile {profile.name}.")
            return redirect(profile)
    return render(request, "calculator/profiles/form.html", {"form": form, "kind": "manual"})


def _import_form(request: HttpRequest, **kwargs: Any) -> ProfileImportForm:
    if request.method == "POST":
        return ProfileImportForm(request.POST, request.FILES, user=request.user, **kwargs)
    return ProfileImportForm(user=request.user, **kwargs)


@login_required
@require_http_methods(["GET", "POST"])
def profile_import_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = _import_form(request, offer_hub=True)
    if request.method == "POST" and form.is_valid():
        try:
            if form.cleaned_data.get("hub"):
                profile = services.profile_create_from_hub(
                    user=request.user,
                    repo_id=form.cleaned_data["hub"],
                    revision=form.cleaned_data["revision"],
                    name=form.cleaned_data["name"],
                    description=form.cleaned_data["description"],
                    **form.sharing(),
                )
            else:
                profile = services.profile_create(
                    user=request.user,
                    name=form.cleaned_data["name"],
                    description=form.cleaned_data["description"],
                    hf_config=form.cleaned_data["hf_config"],
                    config_json_text=form.cleaned_data["config_json_text"],
                    **form.sharing(),
                )
        except ValidationError as error:
            add_service_error(form, error, field_map={"hf_config": "config_json"})
        else:
            messages.success(request, f"Imported {profile.name}.")
            return redirect(profile)
    return render(request, "calculator/profiles/form.html", {"form": form, "kind": "import"})


def _shape_rows(profile: ModelProfile) -> tuple[list[tuple[str, Any]], list[str]]:
    """The architecture as the engine reads it, and the engine's notes about it."""
    try:
        architecture, notes = resolve_model(profile.engine_model())
    except EstimateError as error:
        return [], [f"{error.field}: {error.message}"]
    values = dataclasses.asdict(architecture)
    rows = [
        (name, values[name])
        for name in SHAPE_FIELDS
        if name in values and (name in ALWAYS_SHOWN or values[name])
    ]
    return rows, list(notes)


def calculator_url_for_profile(profile: ModelProfile, *, listed: bool) -> str:
    """`/?catalog=<slug>` or `/?profile=<id>`; empty for a profile the viewer reached only by its
    link (the calculator resolves profile ids among listed ones): they may duplicate it."""
    if profile.is_catalog:
        query = {"catalog": profile.slug}
    elif listed:
        query = {"profile": str(profile.pk)}
    else:
        return ""
    return reverse("calculator") + "?" + urlencode(query)


@require_GET
def profile_detail_view(request: HttpRequest, public_id: str) -> HttpResponse:
    profile, access = profile_get_for_user(user=request.user, public_id=public_id)
    # Listed items (own, team, catalog) open in the calculator by id; an outsider holding a
    # link item's address can duplicate it instead.
    listed = profile_list(user=request.user).filter(pk=profile.pk).exists()
    shape, notes = _shape_rows(profile)
    estimates = (
        estimate_list(user=request.user)
        .filter(profile=profile)
        .defer("inputs", "architecture", "result")
    )
    context = {
        "profile": profile,
        "can_write": access.can_write,
        "shape": shape,
        "notes": notes,
        "estimates": estimates[:ESTIMATES_SHOWN_ON_PROFILE],
        "calculator_url": calculator_url_for_profile(profile, listed=listed),
    }
    return render(request, "calculator/profiles/detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def profile_edit_view(request: AuthenticatedHttpRequest, public_id: str) -> HttpResponse:
    profile, access = profile_get_for_user(user=request.user, public_id=public_id, write=True)
    sharing = {"visibility": profile.visibility, "team": profile.team}
    initial = {"name": profile.name, "description": profile.description, **sharing}
    can_share = access.can_share
    if profile.source == ProfileSource.CONFIG:
        initial["config_json"] = profile.config_json_text
        form: Any = _import_form(request, initial=initial, can_share=can_share)
        kind = "import"
    else:
        initial.update(profile.architecture or {})
        form = ProfileManualForm(
            request.POST or None, user=request.user, initial=initial, can_share=can_share
        )
        kind = "manual"
    if request.method == "POST" and form.is_valid():
        fields = {
            "name": form.cleaned_data["name"] or profile.name,
            "description": form.cleaned_data["description"],
            **form.sharing(),
        }
        if kind == "import":
            fields["hf_config"] = form.cleaned_data["hf_config"]
            fields["config_json_text"] = form.cleaned_data["config_json_text"]
        else:
            fields["architecture"] = form.architecture()
        try:
            services.profile_update(user=request.user, profile=profile, **fields)
        except ValidationError as error:
            add_service_error(form, error, field_map={"hf_config": "config_json"})
        else:
            messages.success(request, "Saved. Estimates saved earlier keep their own snapshot.")
            return redirect(profile)
    context = {"form": form, "kind": kind, "profile": profile}
    return render(request, "calculator/profiles/form.html", context)


@login_required
@require_POST
def profile_delete_view(request: AuthenticatedHttpRequest, public_id: str) -> HttpResponse:
    profile, _ = profile_get_for_user(user=request.user, public_id=public_id, write=True)
    services.profile_delete(user=request.user, profile=profile)
    messages.success(request, f"Deleted {profile.name}. Estimates that used it keep a snapshot.")
    return redirect("profile-list")


@login_required
@require_POST
def profile_duplicate_view(request: AuthenticatedHttpRequest, public_id: str) -> HttpResponse:
    profile, _ = profile_get_for_user(user=request.user, public_id=public_id)
    copy = services.profile_duplicate(user=request.user, profile=profile)
    messages.success(request, f"Made a private copy of {profile.name}: edit it as you like.")
    return redirect(copy)
