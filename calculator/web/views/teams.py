"""Teams: my teams, create one, and a team's page (members, roles, what is shared with it)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count, OuterRef, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from calculator.domain import services
from calculator.domain.selectors import (
    invitation_list_for_user,
    team_get_for_user,
    team_invitation_list,
    team_list,
    team_shared_items,
)
from calculator.models import Membership, Role, Team, TeamInvitation
from calculator.web.forms.sharing import add_service_error
from calculator.web.forms.teams import MemberAddForm, MemberRoleForm, TeamCreateForm
from calculator.web.typed import AuthenticatedHttpRequest

SHARED_SHOWN = 50


def _errors_as_messages(request: HttpRequest, error: ValidationError) -> None:
    for message in error.messages:
        messages.error(request, message)


@login_required
@require_http_methods(["GET", "POST"])
def team_list_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = TeamCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            team = services.team_create(user=request.user, name=form.cleaned_data["name"])
        except ValidationError as error:
            add_service_error(form, error)
        else:
            messages.success(request, f"Created the team {team.name}: you are its owner.")
            return redirect(team)
    # Counted in a subquery: counting the join that team_list filters on counts only the
    # user's own membership, 1 for every team.
    members = (
        Membership.objects.filter(team=OuterRef("pk"))
        .order_by()
        .values("team")
        .annotate(count=Count("pk"))
        .values("count")
    )
    teams = team_list(user=request.user).annotate(num_members=Subquery(members))
    roles = dict(
        Membership.objects.filter(user=request.user).values_list("team_id", "role")
    )  # the user's own memberships: their role in each team listed
    context = {
        "form": form,
        "teams": [(team, roles.get(team.pk, "")) for team in teams],
        "num_invitations": invitation_list_for_user(user=request.user).count(),
    }
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "calculator/teams/list.html", context, status=status)


def _team_owned(request: HttpRequest, slug: str) -> Team:
    """The team, if the user owns it; 404 for members and outsiders alike (nothing leaks)."""
    team, role = team_get_for_user(user=request.user, slug=slug)
    if role != Role.OWNER:
        raise Http404("No such team.")
    return team


def _role_form(membership: Membership) -> MemberRoleForm:
    return MemberRoleForm(initial={"role": membership.role}, prefix=str(membership.pk))


def _team_detail_context(request: HttpRequest, team: Team, role: Role) -> dict:
    estimates, profiles = team_shared_items(user=request.user, team=team)
    memberships = team.memberships.select_related("user").order_by("role", "user__username")
    return {
        "team": team,
        "role": role,
        "is_owner": role == Role.OWNER,
        "memberships": [(membership, _role_form(membership)) for membership in memberships],
        "add_form": MemberAddForm(),
        "invitations": team_invitation_list(user=request.user, team=team),
        "estimates": estimates.defer("inputs", "architecture", "result")[:SHARED_SHOWN],
        "profiles": profiles[:SHARED_SHOWN],
    }


@login_required
@require_http_methods(["GET"])
def team_detail_view(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    team, role = team_get_for_user(user=request.user, slug=slug)
    return render(
        request, "calculator/teams/detail.html", _team_detail_context(request, team, role)
    )


@login_required
@require_POST
def team_member_add_view(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    """Invite by username or email; the same answer whether it names someone or no one."""
    team = _team_owned(request, slug)
    form = MemberAddForm(request.POST)
    if form.is_valid():
        try:
            services.team_invite(
                actor=request.user,
                team=team,
                username_or_email=form.cleaned_data["username_or_email"],
                role=form.cleaned_data["role"],
            )
        except ValidationError as error:
            add_service_error(form, error)
        else:
            messages.success(request, services.INVITED)
            return redirect(team)
    context = _team_detail_context(request, team, Role.OWNER)
    context["add_form"] = form
    return render(request, "calculator/teams/detail.html", context, status=400)


@login_required
@require_POST
def team_invitation_cancel_view(
    request: AuthenticatedHttpRequest, slug: str, invitation_id: int
) -> HttpResponse:
    team = _team_owned(request, slug)
    invitation = get_object_or_404(
        TeamInvitation.objects.select_related("team"), pk=invitation_id, team=team
    )
    services.invitation_cancel(actor=request.user, invitation=invitation)
    messages.success(request, f"Cancelled the invitation of {invitation.address}.")
    return redirect(team)


# --- My invitations ---------------------------------------------------------------------------


@login_required
@require_http_methods(["GET"])
def invitation_list_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    invitations = invitation_list_for_user(user=request.user)
    return render(request, "calculator/teams/invitations.html", {"invitations": invitations})


@login_required
@require_POST
def invitation_accept_view(request: AuthenticatedHttpRequest, invitation_id: int) -> HttpResponse:
    membership = services.invitation_accept(user=request.user, invitation_id=invitation_id)
    if membership is None:
        messages.error(
            request, "That invitation has lapsed: whoever sent it no longer owns the team."
        )
        return redirect("team-invitations")
    messages.success(
        request, f"You joined {membership.team} as {membership.get_role_display().lower()}."
    )
    return redirect(membership.team)


@login_required
@require_POST
def invitation_decline_view(request: AuthenticatedHttpRequest, invitation_id: int) -> HttpResponse:
    team = services.invitation_decline(user=request.user, invitation_id=invitation_id)
    messages.success(request, f"Declined the invitation to {team}.")
    return redirect("team-invitations")


def _membership(team: Team, membership_id: int) -> Membership:
    return get_object_or_404(
        Membership.objects.select_related("user", "team"), pk=membership_id, team=team
    )


@login_required
@require_POST
def team_member_role_view(
    request: AuthenticatedHttpRequest, slug: str, membership_id: int
) -> HttpResponse:
    team = _team_owned(request, slug)
    membership = _membership(team, membership_id)
    form = MemberRoleForm(request.POST, prefix=str(membership.pk))
    if not form.is_valid():
        messages.error(request, "Choose owner or member.")
        return redirect(team)
    try:
        services.team_member_set_role(
            actor=request.user, membership=membership, role=form.cleaned_data["role"]
        )
    except ValidationError as error:
        _errors_as_messages(request, error)
    else:
        messages.success(request, f"{membership.user} is now {membership.get_role_display()}.")
    return redirect(team)


@login_required
@require_POST
def team_member_remove_view(
    request: AuthenticatedHttpRequest, slug: str, membership_id: int
) -> HttpResponse:
    team = _team_owned(request, slug)
    membership = _membership(team, membership_id)
    try:
        services.team_member_remove(actor=request.user, membership=membership)
    except ValidationError as error:
        _errors_as_messages(request, error)
    else:
        messages.success(request, f"Removed {membership.user} from {team}.")
        if membership.user_id == request.user.pk:
            return redirect("team-list")
    return redirect(team)


@login_required
@require_POST
def team_leave_view(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    team, _ = team_get_for_user(user=request.user, slug=slug)
    membership = _membership_of(team, request)
    try:
        services.team_member_remove(actor=request.user, membership=membership)
    except ValidationError as error:
        _errors_as_messages(request, error)
        return redirect(team)
    messages.success(request, f"You left {team}.")
    return redirect("team-list")


def _membership_of(team: Team, request: HttpRequest) -> Membership:
    return get_object_or_404(
        Membership.objects.select_related("team"), team=team, user=request.user
    )


@login_required
@require_POST
def team_delete_view(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    team = _team_owned(request, slug)
    services.team_delete(actor=request.user, team=team)
    messages.success(
        request, f"Deleted {team}. What was shared only with it is private to its owners again."
    )
    return redirect("team-list")
