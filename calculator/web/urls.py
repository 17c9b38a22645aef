from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from calculator.web import views
from calculator.web.views import accuracy, hub_token, runs, teams, tokens

urlpatterns = [
    path("", views.calculator, name="calculator"),
    path("catalog/options/", views.catalog_options, name="catalog-options"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", views.signup, name="signup"),
    path(
        "accounts/password/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("accounts/tokens/", tokens.api_tokens_view, name="api-tokens"),
    path("accounts/tokens/revoke/", tokens.api_token_revoke_view, name="api-token-revoke"),
    path("accounts/hub-token/", hub_token.hub_token_view, name="hub-token"),
    path("accounts/hub-token/delete/", hub_token.hub_token_delete_view, name="hub-token-delete"),
    # Profiles, saved estimates, history, compare, teams (issue 4)
    path("profiles/", views.profile_list_view, name="profile-list"),
    path("profiles/new/", views.profile_create_view, name="profile-create"),
    path("profiles/import/", views.profile_import_view, name="profile-import"),
    path("profiles/<slug:public_id>/", views.profile_detail_view, name="profile-detail"),
    path("profiles/<slug:public_id>/edit/", views.profile_edit_view, name="profile-edit"),
    path("profiles/<slug:public_id>/delete/", views.profile_delete_view, name="profile-delete"),
    path(
        "profiles/<slug:public_id>/duplicate/",
        views.profile_duplicate_view,
        name="profile-duplicate",
    ),
    path("estimates/save/", views.estimate_save_view, name="estimate-save"),
    path("accuracy/", accuracy.accuracy_view, name="accuracy"),
    path("e/<slug:public_id>/", views.estimate_permalink_view, name="estimate-permalink"),
    path("e/<slug:public_id>/edit/", views.estimate_edit_view, name="estimate-edit"),
    path("e/<slug:public_id>/delete/", views.estimate_delete_view, name="estimate-delete"),
    path("e/<slug:public_id>/runs/new/", runs.measured_run_create_view, name="estimate-run-create"),
    path(
        "e/<slug:public_id>/runs/<int:run_id>/",
        runs.measured_run_detail_view,
        name="estimate-run",
    ),
    path(
        "e/<slug:public_id>/runs/<int:run_id>/delete/",
        runs.measured_run_delete_view,
        name="estimate-run-delete",
    ),
    path("history/", views.history_view, name="history"),
    path("history/export.<str:fmt>", views.history_export_view, name="history-export"),
    path("history/delete/", views.history_bulk_delete_view, name="history-delete"),
    path("compare/", views.compare_view, name="compare"),
    path("teams/", views.team_list_view, name="team-list"),
    # before teams/<slug>/: "invitations" is no team's slug (services.RESERVED_TEAM_SLUGS)
    path("teams/invitations/", teams.invitation_list_view, name="team-invitations"),
    path(
        "teams/invitations/<int:invitation_id>/accept/",
        teams.invitation_accept_view,
        name="team-invitation-accept",
    ),
    path(
        "teams/invitations/<int:invitation_id>/decline/",
        teams.invitation_decline_view,
        name="team-invitation-decline",
    ),
    path("teams/<slug:slug>/", views.team_detail_view, name="team-detail"),
    path("teams/<slug:slug>/members/", views.team_member_add_view, name="team-member-add"),
    path(
        "teams/<slug:slug>/members/<int:membership_id>/role/",
        views.team_member_role_view,
        name="team-member-role",
    ),
    path(
        "teams/<slug:slug>/members/<int:membership_id>/remove/",
        views.team_member_remove_view,
        name="team-member-remove",
    ),
    path(
        "teams/<slug:slug>/invitations/<int:invitation_id>/cancel/",
        teams.team_invitation_cancel_view,
        name="team-invitation-cancel",
    ),
    path("teams/<slug:slug>/leave/", views.team_leave_view, name="team-leave"),
    path("teams/<slug:slug>/delete/", views.team_delete_view, name="team-delete"),
]
