"""Writes: create, save, share and delete. Views, the API and commands all call these.

Each service checks the actor's right to act (through selectors' access rules), validates,
and raises django.core.exceptions.ValidationError with per-field messages on bad input.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.text import slugify

from calculator.domain import evidence, hub
from calculator.domain.calculations import Calculation
from calculator.domain.errors import Forbidden, NotFound
from calculator.domain.evidence import Measured
from calculator.domain.jsontext import loads_bounded
from calculator.domain.selectors import AuthUser, access_for, team_ids_for_user
from calculator.domain.spoofing import check_user_text
from calculator.engine import EstimateError
from calculator.engine.inputs import resolve_model
from calculator.models import (
    Estimate,
    HubToken,
    MeasuredRun,
    Membership,
    ModelProfile,
    ProfileSource,
    Role,
    Team,
    TeamInvitation,
    Visibility,
)

MAX_CONFIG_JSON_BYTES = 1_048_576


# --- Sharing ----------------------------------------------------------------------------------


def _check_sharing(*, user: AuthUser, visibility: str, team: Team | None) -> Team | None:
    if visibility not in Visibility.values:
        raise ValidationError({"visibility": f"Choose one of: {', '.join(Visibility.values)}."})
    if team is not None and team.pk not in team_ids_for_user(user):
        raise ValidationError({"team": "You can only share with a team you belong to."})
    if visibility == Visibility.TEAM and team is None:
        raise ValidationError({"team": "Choose the team to share with."})
    return team


def _check_audience_kept(*, user: AuthUser, item: ModelProfile | Estimate, fields: dict) -> None:
    """Only an item's owner changes who sees it (the access table's "s"): a team owner who may
    edit a member's item must not move it to another team or make it public."""
    team = fields.get("team", item.team)
    changed = fields.get("visibility", item.visibility) != item.visibility or (
        "team" in fields and (team.pk if team is not None else None) != item.team_id
    )
    if changed and not access_for(user, item, via_link=False).can_share:
        kind = "profile" if isinstance(item, ModelProfile) else "estimate"
        raise Forbidden(kind, "Only its owner may change who sees it.")


# --- Profiles ---------------------------------------------------------------------------------


def _architecture_for(*, hf_config: dict | None, architecture: dict | None) -> tuple[int, int, str]:
    """Parameter counts and family, validated by the engine; errors name the field."""
    model = (
        {"hf_config": hf_config} if hf_config is not None else {"architecture": architecture or {}}
    )
    try:
        arch, _ = resolve_model(model)
    except EstimateError as error:
        field = "hf_config" if hf_config is not None else "architecture"
        raise ValidationError({field: f"{error.field}: {error.message}"}) from None
    return arch.num_parameters, arch.num_active_parameters, arch.model_type


def parse_config_json(text: str) -> dict[str, Any]:
    """A pasted or uploaded config.json as a dict, or a ValidationError saying why not."""
    if len(text.encode()) > MAX_CONFIG_JSON_BYTES:
        raise ValidationError({"config_json": "config.json is larger than 1 MB."})
    try:
        value = loads_bounded(text)
    except json.JSONDecodeError as error:
        message = f"Not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})."
        raise ValidationError({"config_json": message}) from None
    except (ValueError, RecursionError) as error:
        # NaN, 1e999, a lone surrogate, too deep, an integer past Python's 4,300 digits
        message = f"Not valid JSON: {str(error).rstrip('.')}."
        raise ValidationError({"config_json": message}) from None
    if not isinstance(value, dict):
        raise ValidationError({"config_json": "config.json must be a JSON object ({...})."})
    if _holds_nul(value):
        raise ValidationError({"config_json": "config.json must not contain NUL characters."})
    return value


def _holds_nul(value: Any) -> bool:
    """PostgreSQL stores a NUL character in neither text nor jsonb: refuse it before saving.
    (json.dumps writes a NUL as \\u0000, whatever string holds it.)"""
    return "\\u0000" in json.dumps(value)


@transaction.atomic
def profile_create(
    *,
    user: AuthUser,
    name: str,
    hf_config: dict | None = None,
    architecture: dict | None = None,
    config_json_text: str = "",
    description: str = "",
    visibility: str = Visibility.PRIVATE,
    team: Team | None = None,
    hub_model: hub.HubModel | None = None,
) -> ModelProfile:
    check_user_text(name=name, description=description)
    if (hf_config is None) == (architecture is None):
        raise ValidationError("Give either a config.json or architecture fields.")
    if _holds_nul([hf_config, architecture]):
        raise ValidationError("The architecture must not contain NUL characters.")
    _check_sharing(user=user, visibility=visibility, team=team)
    total, active, family = _architecture_for(hf_config=hf_config, architecture=architecture)
    profile = ModelProfile(
        name=name,
        owner=user,
        team=team,
        visibility=visibility,
        source=ProfileSource.CONFIG if hf_config is not None else ProfileSource.MANUAL,
        family=family,
        description=description,
        hf_config=hf_config,
        architecture=architecture,
        config_json_text=config_json_text,
        num_parameters=total,
        num_active_parameters=active,
    )
    if hub_model is not None:
        profile.source = ProfileSource.HUB
        profile.hub_repo_id = hub_model.repo_id
        profile.hub_revision = hub_model.sha
        profile.hub_facts = hub_model.evidence()
    profile.full_clean()
    profile.save()
    return profile


def profile_create_from_hub(
    *, user: AuthUser, repo_id: str, revision: str = "", name: str = "", **fields: Any
) -> ModelProfile:
    """A profile of a Hugging Face model: its config.json (verbatim) at the commit the revision
    names, with that commit and the safetensors facts as evidence."""
    try:
        imported = hub.hub_model(
            repo_id=repo_id, revision=revision or None, user=user, who=f"user:{user.pk}"
        )
    except hub.HubError as error:
        raise ValidationError({"hub": error.message}) from None
    return profile_create(
        user=user,
        name=name or imported.repo_id,
        hf_config=imported.config,
        config_json_text=imported.config_text,
        hub_model=imported,
        **fields,
    )


# --- Hugging Face tokens ----------------------------------------------------------------------


def hub_token_set(*, user: AuthUser, token: str) -> HubToken:
    """Keep a user's Hugging Face token, encrypted; it is never shown again."""
    token = token.strip()
    if not token or len(token) > 500 or any(ch.isspace() for ch in token):
        raise ValidationError({"token": "A Hugging Face access token, such as hf_..."})
    stored, _ = HubToken.objects.update_or_create(
        user=user, defaults={"encrypted": hub.token_encrypt(token)}
    )
    return stored


def hub_token_delete(*, user: AuthUser) -> None:
    HubToken.objects.filter(user=user).delete()


@transaction.atomic
def profile_update(*, user: AuthUser, profile: ModelProfile, **fields: Any) -> ModelProfile:
    """Change name, description, sharing or the architecture. Saved estimates keep their own
    snapshot, so they are untouched."""
    if not access_for(user, profile, via_link=False).can_write:
        raise Forbidden("profile")
    allowed = {"name", "description", "visibility", "team", "hf_config", "architecture"}
    allowed |= {"config_json_text"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError(f"Cannot change: {', '.join(sorted(unknown))}.")
    _check_audience_kept(user=user, item=profile, fields=fields)
    check_user_text(**{key: fields[key] for key in ("name", "description") if key in fields})
    for key, value in fields.items():
        setattr(profile, key, value)
    if _holds_nul([profile.hf_config, profile.architecture]):
        raise ValidationError("The architecture must not contain NUL characters.")
    if "hf_config" in fields and fields["hf_config"] is not None:
        profile.architecture = None
        profile.source = ProfileSource.CONFIG
    elif "architecture" in fields and fields["architecture"] is not None:
        profile.hf_config = None
        profile.config_json_text = ""
        profile.source = ProfileSource.MANUAL
    if fields.get("hf_config") is not None or fields.get("architecture") is not None:
        # another model than the one imported: its Hub evidence no longer applies
        profile.hub_repo_id, profile.hub_revision, profile.hub_facts = "", "", None
    _check_sharing(user=user, visibility=profile.visibility, team=profile.team)
    total, active, family = _architecture_for(
        hf_config=profile.hf_config, architecture=profile.architecture
    )
    profile.num_parameters, profile.num_active_parameters, profile.family = total, active, family
    profile.full_clean()
    profile.save()
    return profile


def profile_delete(*, user: AuthUser, profile: ModelProfile) -> None:
    if not access_for(user, profile, via_link=False).can_write:
        raise Forbidden("profile")
    profile.delete()  # estimates keep their snapshot; their profile link becomes empty


def profile_duplicate(*, user: AuthUser, profile: ModelProfile, name: str = "") -> ModelProfile:
    """A private, editable copy of any profile the user can read (e.g. a catalog model)."""
    return profile_create(
        user=user,
        name=name or f"{profile.name} (copy)"[:200],
        hf_config=profile.hf_config,
        architecture=profile.architecture,
        config_json_text=profile.config_json_text,
        description=profile.description,
    )


# --- Estimates --------------------------------------------------------------------------------


@transaction.atomic
def estimate_save(
    *,
    user: AuthUser,
    calculation: Calculation,
    title: str = "",
    notes: str = "",
    visibility: str = Visibility.PRIVATE,
    team: Team | None = None,
) -> Estimate:
    check_user_text(title=title, notes=notes)
    _check_sharing(user=user, visibility=visibility, team=team)
    result = calculation.result
    inputs = result["inputs"]
    if _holds_nul(inputs):
        raise ValidationError({"model": "The model must not contain NUL characters."})
    estimate = Estimate(
        owner=user,
        team=team,
        visibility=visibility,
        profile=calculation.resolved.profile,
        model_name=calculation.resolved.name[:200],
        title=title,
        notes=notes,
        mode=inputs["mode"],
        method=inputs["method"],
        inputs=inputs,
        architecture=calculation.resolved.engine_model,
        result=result,
        total_bytes=result["total_bytes"],
        num_gpus=result["num_gpus"],
        engine_version=result["engine_version"],
    )
    estimate.full_clean()
    estimate.save()
    return estimate


@transaction.atomic
def estimate_update(*, user: AuthUser, estimate: Estimate, **fields: Any) -> Estimate:
    """Only the description and sharing change; inputs and result are immutable evidence."""
    if not access_for(user, estimate, via_link=False).can_write:
        raise Forbidden("estimate")
    unknown = set(fields) - {"title", "notes", "visibility", "team"}
    if unknown:
        raise ValidationError(f"Cannot change: {', '.join(sorted(unknown))}.")
    _check_audience_kept(user=user, item=estimate, fields=fields)
    check_user_text(**{key: fields[key] for key in ("title", "notes") if key in fields})
    for key, value in fields.items():
        setattr(estimate, key, value)
    _check_sharing(user=user, visibility=estimate.visibility, team=estimate.team)
    estimate.full_clean()
    estimate.save(update_fields=[*fields, "updated"])
    return estimate


def estimate_delete(*, user: AuthUser, estimate: Estimate) -> None:
    if not access_for(user, estimate, via_link=False).can_write:
        raise Forbidden("estimate")
    estimate.delete()


def estimate_bulk_delete(*, user: AuthUser, ids: list[int]) -> int:
    """Delete the given estimates that the user owns; others' ids are ignored."""
    deleted, _ = Estimate.objects.filter(owner=user, pk__in=ids).delete()
    return deleted


# --- Teams ------------------------------------------------------------------------------------


# Paths under /teams/ that are not a team's page.
RESERVED_TEAM_SLUGS = frozenset({"invitations"})


def _unique_team_slug(name: str) -> str:
    base = slugify(name)[:100] or "team"
    slug, n = base, 1
    while slug in RESERVED_TEAM_SLUGS or Team.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def _team_name_taken(*, user: AuthUser, name: str) -> bool:
    return Team.objects.filter(created_by=user, name__iexact=name).exists()


TEAM_NAME_TAKEN = "You already created a team named “{name}”: choose another name."


@transaction.atomic
def team_create(*, user: AuthUser, name: str) -> Team:
    """A new team owned by its creator, whose teams have distinct names (the
    team_unique_name_per_creator constraint; checked here first, for a message by the field)."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the team a name."})
    check_user_text(name=name)
    if _team_name_taken(user=user, name=name):
        raise ValidationError({"name": TEAM_NAME_TAKEN.format(name=name)})
    team = Team(name=name, slug=_unique_team_slug(name), created_by=user)
    team.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            team.save()
    except IntegrityError:
        # the same name created a moment ago (another tab), or a slug taken meanwhile
        if _team_name_taken(user=user, name=name):
            raise ValidationError({"name": TEAM_NAME_TAKEN.format(name=name)}) from None
        raise ValidationError("The team could not be created just now: try again.") from None
    Membership.objects.create(team=team, user=user, role=Role.OWNER)
    return team


def _require_team_owner(*, actor: AuthUser, team: Team) -> None:
    if not Membership.objects.filter(team=team, user=actor, role=Role.OWNER).exists():
        raise Forbidden("team")


INVITED = "If that user exists, they have been invited: they join when they accept."
MAX_PENDING_INVITATIONS = 100


@transaction.atomic
def team_invite(
    *, actor: AuthUser, team: Team, username_or_email: str, role: str = Role.MEMBER
) -> TeamInvitation:
    """Invite someone by username or email. The answer (an invitation listed under what was
    typed) is the same whoever it names, a member, or nobody: only the invitee, on their own
    page, sees that they were invited, and nothing is shared until they accept."""
    _require_team_owner(actor=actor, team=team)
    if role not in Role.values:
        raise ValidationError({"role": f"Choose one of: {', '.join(Role.values)}."})
    address = username_or_email.strip()
    if not address:
        raise ValidationError({"username_or_email": "Type a username or an email address."})
    check_user_text(username_or_email=address)
    pending = TeamInvitation.objects.select_for_update().filter(team=team)
    existing = pending.filter(address__iexact=address).first()
    if existing is not None:  # invited again: the role given last holds
        existing.role = role
        existing.save(update_fields=["role"])
        return existing
    if pending.count() >= MAX_PENDING_INVITATIONS:
        raise ValidationError(
            {
                "username_or_email": f"{team} has {MAX_PENDING_INVITATIONS} pending invitations: "
                "cancel some first."
            }
        )
    users = list(
        get_user_model().objects.filter(
            Q(username__iexact=address) | Q(email__iexact=address), is_active=True
        )[:2]
    )
    invitee = users[0] if len(users) == 1 else None
    if invitee is not None and Membership.objects.filter(team=team, user=invitee).exists():
        invitee = None  # already in: nothing to accept, and the same answer
    invitation = TeamInvitation(
        team=team, address=address, invitee=invitee, role=role, invited_by=actor
    )
    invitation.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            invitation.save()
    except IntegrityError:  # the same address invited a moment ago (another tab)
        return TeamInvitation.objects.get(team=team, address__iexact=address)
    return invitation


def _invitation_for(*, user: AuthUser, invitation_id: int) -> TeamInvitation:
    invitation = (
        TeamInvitation.objects.select_for_update()
        .select_related("team")
        .filter(pk=invitation_id, invitee=user)
        .first()
    )
    if invitation is None:
        raise NotFound("No such invitation.")
    return invitation


@transaction.atomic
def invitation_accept(*, user: AuthUser, invitation_id: int) -> Membership | None:
    """The invitee joins with the invited role; None when whoever invited them no longer owns
    the team (their invitations lapse with their ownership)."""
    invitation = _invitation_for(user=user, invitation_id=invitation_id)
    team = invitation.team
    inviter = invitation.invited_by_id
    still_owner = (
        inviter is not None
        and Membership.objects.filter(team=team, user_id=inviter, role=Role.OWNER).exists()
    )
    invitation.delete()
    if not still_owner:
        return None
    membership, _ = Membership.objects.get_or_create(
        team=team, user=user, defaults={"role": invitation.role}
    )
    return membership


@transaction.atomic
def invitation_decline(*, user: AuthUser, invitation_id: int) -> Team:
    invitation = _invitation_for(user=user, invitation_id=invitation_id)
    invitation.delete()
    return invitation.team


@transaction.atomic
def invitation_cancel(*, actor: AuthUser, invitation: TeamInvitation) -> None:
    """A team owner withdraws a pending invitation."""
    _require_team_owner(actor=actor, team=invitation.team)
    invitation.delete()


def _owners_left(team: Team, without: Membership) -> int:
    return Membership.objects.filter(team=team, role=Role.OWNER).exclude(pk=without.pk).count()


@transaction.atomic
def team_member_set_role(*, actor: AuthUser, membership: Membership, role: str) -> Membership:
    _require_team_owner(actor=actor, team=membership.team)
    if role not in Role.values:
        raise ValidationError({"role": f"Choose one of: {', '.join(Role.values)}."})
    if role != Role.OWNER and _owners_left(membership.team, membership) == 0:
        raise ValidationError({"role": "A team needs at least one owner."})
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def team_member_remove(*, actor: AuthUser, membership: Membership) -> None:
    """Remove a member (team owners), or leave (anyone, for themselves)."""
    if membership.user_id != actor.pk:
        _require_team_owner(actor=actor, team=membership.team)
    if membership.role == Role.OWNER and _owners_left(membership.team, membership) == 0:
        raise ValidationError("A team needs at least one owner: make someone else owner first.")
    membership.delete()


@transaction.atomic
def team_delete(*, actor: AuthUser, team: Team) -> None:
    """Delete a team; what was shared only with it becomes private to its owners again."""
    _require_team_owner(actor=actor, team=team)
    for model in (Estimate, ModelProfile):
        shared = model.objects.filter(team=team)
        shared.filter(visibility=Visibility.TEAM).update(visibility=Visibility.PRIVATE)
        shared.update(team=None)
    team.delete()


# --- Measured runs ----------------------------------------------------------------------------

MAX_RUNS_PER_ESTIMATE = 50
RUN_TEXT_LIMITS = {"gpu_name": 200, "driver_version": 64, "cuda_version": 64}
RUN_NOTE_LIMIT = 2000


@transaction.atomic
def measured_run_attach(
    *,
    user: AuthUser,
    estimate: Estimate,
    measured: Measured,
    raw_text: str = "",
    note: str = "",
    facts: dict[str, str] | None = None,
) -> MeasuredRun:
    """Attach what a run measured to an estimate. Only those who may write the estimate (its
    owner, a team owner for a team item: the access table's "w") attach; `facts` (GPU, driver,
    CUDA, framework typed by the person) fill in or correct what the log says."""
    if not access_for(user, estimate, via_link=False).can_write:
        raise Forbidden("estimate")
    if estimate.runs.count() >= MAX_RUNS_PER_ESTIMATE:
        raise ValidationError(
            f"An estimate keeps at most {MAX_RUNS_PER_ESTIMATE} measured runs: delete one first."
        )
    if len(raw_text.encode()) > evidence.MAX_TEXT_BYTES or _holds_nul(
        [raw_text, note, facts, measured.details, measured.notes, measured.gpu_name]
    ):
        raise ValidationError({"text": "The log is too large or holds NUL characters."})
    check_user_text(note=note)
    if len(note) > RUN_NOTE_LIMIT:
        raise ValidationError({"note": f"At most {RUN_NOTE_LIMIT:,} characters."})
    values = {
        "gpu_name": measured.gpu_name,
        "driver_version": measured.driver_version,
        "cuda_version": measured.cuda_version,
        "framework_version": measured.framework_version,
    }
    values.update({key: value for key, value in (facts or {}).items() if value})
    limits = {**RUN_TEXT_LIMITS, "framework_version": 100}
    for key, value in values.items():
        if key not in limits:
            raise ValidationError(f"Unknown fact: {key}.")
        values[key] = str(value)[: limits[key]]
    lines = {name: measured.line(name) for name in evidence.LINE_NAMES}
    for name, amount in lines.items():
        if amount is not None and abs(amount) > evidence.MAX_MEASURED_BYTES:
            raise ValidationError({name: "More memory than any GPU holds."})
    if all(value is None for value in lines.values()):
        raise ValidationError("The run measured nothing.")
    if lines["total"] is not None and lines["total"] < 0:
        raise ValidationError({"total": "A total cannot be negative."})
    run = MeasuredRun(
        estimate=estimate,
        owner=user,
        source_format=measured.source_format,
        weights_bytes=lines["weights"],
        kv_cache_bytes=lines["kv_cache"],
        activations_bytes=lines["activations"],
        non_torch_bytes=lines["non_torch"],
        total_bytes=lines["total"],
        details=measured.details,
        parser_notes=measured.notes,
        note=note,
        raw_text=raw_text,
        **values,
    )
    run.full_clean()
    run.save()
    return run


def measured_run_delete(*, user: AuthUser, run: MeasuredRun) -> None:
    """Only the run's owner deletes it (deleting the estimate deletes its runs too)."""
    if run.owner_id != user.pk:
        raise Forbidden("run")
    run.delete()
