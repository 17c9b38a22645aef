"""Reads, always scoped to what the user may see: the one place the access rules live.

who, item        private  team                        link                  catalog
owner                rws      rws                         rws                   r
member of its team   404      r (rw for the team's owners) r                    r
anyone else, anon.   404      404                         r by permalink only   r

r: read, w: write its content (title, notes, name, description, architecture; delete),
s: share: change who sees it (visibility, team). Only its owner decides an item's audience; a
team owner may edit a member's team item, not re-share it elsewhere or make it public.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as AuthUser
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from calculator.domain.errors import NotFound
from calculator.models import (
    Estimate,
    MeasuredRun,
    Membership,
    ModelProfile,
    ProfileSource,
    Role,
    Team,
    TeamInvitation,
    Visibility,
)

if TYPE_CHECKING:
    from typing_extensions import TypeIs

# A signed-in user (AUTH_USER_MODEL is Django's own User), and anyone who reads a page.
User = AuthUser | AnonymousUser


def _authenticated(user: User | None) -> TypeIs[AuthUser]:
    return bool(user is not None and user.is_authenticated)


def team_ids_for_user(user: User | None) -> list[int]:
    if not _authenticated(user):
        return []
    return list(Membership.objects.filter(user=user).values_list("team_id", flat=True))


def _owned_team_ids(user: User | None) -> list[int]:
    if not _authenticated(user):
        return []
    return list(
        Membership.objects.filter(user=user, role=Role.OWNER).values_list("team_id", flat=True)
    )


def _listed_q(user: User | None, team_ids: list[int] | None = None) -> Q:
    """Items listed for the user: their own and those shared with their teams. `team_ids`, where
    a caller passes them, are `team_ids_for_user(user)` as it read them earlier in the request."""
    if not _authenticated(user):
        return Q(pk__in=[])
    if team_ids is None:
        team_ids = team_ids_for_user(user)
    return Q(owner=user) | Q(visibility=Visibility.TEAM, team_id__in=team_ids)


def listed_parts_q(
    user: User | None, team_ids: list[int] | None = None, *, per_team: bool = True
) -> list[Q]:
    """`_listed_q` as disjoint parts, each a range of an index on PostgreSQL (the history reads
    each part ordered and limited, then merges them): first the user's own items (`owner_id =
    u`), then their teams' team items that are not their own (`visibility = 'team' AND team_id
    IN (...) AND owner_id <> u`, the partial index estimate_history_team), one part per team
    with `per_team` (each in the index's order), else one for all of them. An item is in one
    part at most, and in one exactly when `_listed_q` lists it."""
    if not _authenticated(user):
        return []
    if team_ids is None:
        team_ids = team_ids_for_user(user)
    own = Q(owner_id=user.pk)
    teams = sorted(set(team_ids))
    if not teams:
        return [own]
    if not per_team:
        return [own, Q(visibility=Visibility.TEAM, team_id__in=teams) & ~own]
    return [own, *(Q(visibility=Visibility.TEAM, team_id=team_id) & ~own for team_id in teams)]


@dataclass(frozen=True)
class Access:
    can_read: bool
    can_write: bool
    can_share: bool = False


def access_for(user: User | None, item: ModelProfile | Estimate, *, via_link: bool) -> Access:
    """The access table above for one item. `via_link` says the item was reached by its
    public id (a permalink), which is the only way an outsider may read a link item."""
    if isinstance(item, ModelProfile) and item.source == ProfileSource.CATALOG:
        return Access(can_read=True, can_write=False)
    if _authenticated(user) and item.owner_id == user.pk:
        return Access(can_read=True, can_write=True, can_share=True)
    if item.visibility == Visibility.LINK and via_link:
        return Access(can_read=True, can_write=False)
    if item.visibility in (Visibility.TEAM, Visibility.LINK) and item.team_id is not None:
        # The user's role in the item's team, if any: one query, whatever it decides.
        role = _role_in_team(user, item.team_id)
        if role is not None:
            # A team owner edits a member's team item; a link item filed under the team is
            # only read by its members (from the team's pages).
            can_write = item.visibility == Visibility.TEAM and role == Role.OWNER
            return Access(can_read=True, can_write=can_write)
    return Access(can_read=False, can_write=False)


def _role_in_team(user: User | None, team_id: int) -> str | None:
    if not _authenticated(user):
        return None
    return (
        Membership.objects.filter(user=user, team_id=team_id).values_list("role", flat=True).first()
    )


# --- Profiles ---------------------------------------------------------------------------------


def profile_list(
    *, user: User | None, include_catalog: bool = True, team_ids: list[int] | None = None
) -> QuerySet[ModelProfile]:
    """`team_ids`: `team_ids_for_user(user)` where the caller read them already (a page that
    lists several kinds reads them once); without them they are read here."""
    q = _listed_q(user, team_ids)
    if include_catalog:
        q |= Q(source=ProfileSource.CATALOG)
    return ModelProfile.objects.filter(q).select_related("owner", "team")


def catalog_list() -> QuerySet[ModelProfile]:
    return ModelProfile.objects.filter(source=ProfileSource.CATALOG)


def catalog_get(*, slug: str) -> ModelProfile:
    try:
        return catalog_list().get(slug=slug)
    except ModelProfile.DoesNotExist:
        raise NotFound("No catalog model with that slug.") from None


def profile_get_for_user(
    *, user: User | None, pk: int | None = None, public_id: str | None = None, write: bool = False
) -> tuple[ModelProfile, Access]:
    """A profile by id (listed items only) or by public id (permalink). NotFound when the user may
    not read it; `write=True` requests also raise NotFound for those who may only read, so
    nothing leaks whether an item exists."""
    lookup = {"pk": pk} if public_id is None else {"public_id": public_id}
    try:
        profile = ModelProfile.objects.select_related("owner", "team").get(**lookup)
    except (ModelProfile.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such profile.") from None
    access = access_for(user, profile, via_link=public_id is not None)
    if not access.can_read:
        raise NotFound("No such profile.")
    if write and not access.can_write:
        raise NotFound("No such profile.")
    return profile, access


# --- Estimates --------------------------------------------------------------------------------


def estimate_list(*, user: User | None, team_ids: list[int] | None = None) -> QuerySet[Estimate]:
    """`team_ids` as for `profile_list`."""
    return Estimate.objects.filter(_listed_q(user, team_ids)).select_related(
        "owner", "team", "profile"
    )


def estimate_get_for_user(
    *, user: User | None, pk: int | None = None, public_id: str | None = None, write: bool = False
) -> tuple[Estimate, Access]:
    lookup = {"pk": pk} if public_id is None else {"public_id": public_id}
    try:
        # Not the profile's verbatim config.json and description: no estimate page shows them.
        estimate = (
            Estimate.objects.select_related("owner", "team", "profile")
            .defer("profile__config_json_text", "profile__description")
            .get(**lookup)
        )
    except (Estimate.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such estimate.") from None
    access = access_for(user, estimate, via_link=public_id is not None)
    if not access.can_read or (write and not access.can_write):
        raise NotFound("No such estimate.")
    return estimate, access


# --- Measured runs ----------------------------------------------------------------------------


def run_list(*, estimate: Estimate) -> QuerySet[MeasuredRun]:
    """The runs of an estimate the caller has already read through `estimate_get_for_user`:
    whoever may read an estimate sees its runs."""
    return MeasuredRun.objects.filter(estimate=estimate).select_related("owner").defer("raw_text")


def run_get_for_user(
    *, user: User | None, public_id: str, run_id: int
) -> tuple[MeasuredRun, Access]:
    """One run of an estimate reached by its public id; NotFound unless the estimate is readable.
    The access returned is the estimate's; a run's owner alone deletes it (`can_delete_run`)."""
    estimate, access = estimate_get_for_user(user=user, public_id=public_id)
    run = MeasuredRun.objects.select_related("owner").filter(estimate=estimate, pk=run_id).first()
    if run is None:
        raise NotFound("No such run.")
    run.estimate = estimate
    return run, access


def can_delete_run(user: User | None, run: MeasuredRun) -> bool:
    return _authenticated(user) and run.owner_id == user.pk


# --- Teams ------------------------------------------------------------------------------------


def team_list(*, user: User | None, team_ids: list[int] | None = None) -> QuerySet[Team]:
    """`team_ids` as for `profile_list`: with them, no join with the memberships."""
    if not _authenticated(user):
        return Team.objects.none()
    if team_ids is not None:
        return Team.objects.filter(pk__in=team_ids)
    return Team.objects.filter(memberships__user=user).distinct()


def team_choices(*, user: User | None) -> list[tuple[int, str, str]]:
    """The user's teams as (pk, slug, name), by name, in one query (none for a visitor)."""
    if not _authenticated(user):
        return []
    return list(
        Team.objects.filter(memberships__user=user)
        .order_by("name", "pk")
        .values_list("pk", "slug", "name")
    )


def team_choices_for_request(request: HttpRequest) -> list[tuple[int, str, str]]:
    """`team_choices(user=request.user)`, read once per request: kept on the request (for
    its user), which ends with it. The calculator's profile choices and its save box both
    need them."""
    user = request.user
    kept = request.__dict__.get("_team_choices")
    if kept is None or kept[0] != user.pk:
        kept = (user.pk, team_choices(user=user))
        request.__dict__["_team_choices"] = kept
    return kept[1]


def team_shared_items(
    *, user: User | None, team: Team
) -> tuple[QuerySet[Estimate], QuerySet[ModelProfile]]:
    """What members see on a team's page: its team items and the link items filed under it."""
    if team.pk not in team_ids_for_user(user):
        return Estimate.objects.none(), ModelProfile.objects.none()
    shared = Q(team=team, visibility__in=[Visibility.TEAM, Visibility.LINK])
    return (
        Estimate.objects.filter(shared).select_related("owner"),
        ModelProfile.objects.filter(shared).select_related("owner"),
    )


def team_get_for_user(*, user: User | None, slug: str) -> tuple[Team, Role]:
    """A team the user belongs to, and their role in it; NotFound for everyone else."""
    if not _authenticated(user):
        raise NotFound("No such team.")
    membership = (
        Membership.objects.select_related("team").filter(user=user, team__slug=slug).first()
    )
    if membership is None:
        raise NotFound("No such team.")
    return membership.team, Role(membership.role)


# --- Team invitations -------------------------------------------------------------------------


def invitation_list_for_user(*, user: User | None) -> QuerySet[TeamInvitation]:
    """The invitations waiting for the user's answer: theirs alone, on their own page."""
    if not _authenticated(user):
        return TeamInvitation.objects.none()
    return TeamInvitation.objects.filter(invitee=user).select_related("team", "invited_by")


def team_invitation_list(*, user: User | None, team: Team) -> QuerySet[TeamInvitation]:
    """A team's pending invitations, for its owners only: listed by the address typed, never by
    whom it names (that would tell which usernames and emails exist)."""
    if team.pk not in _owned_team_ids(user):
        return TeamInvitation.objects.none()
    return TeamInvitation.objects.filter(team=team)


# --- What an estimate may say of its profile ---------------------------------------------------


def readable_profile_ids(*, user: User | None, ids: set[int]) -> set[int]:
    """Those of `ids` whose profile the user may read without its address: `access_for`'s
    read, via_link=False, for many at once. Whoever reads an estimate but not its profile sees
    only the snapshot saved with the estimate: not the profile's current name, link or id."""
    if not ids:
        return set()
    readable = Q(source=ProfileSource.CATALOG)
    if _authenticated(user):
        readable |= Q(owner=user) | Q(
            visibility__in=[Visibility.TEAM, Visibility.LINK],
            team_id__in=team_ids_for_user(user),
        )
    return set(ModelProfile.objects.filter(readable, pk__in=ids).values_list("pk", flat=True))
