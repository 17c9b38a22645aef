"""HTML views, one module per page group; urls.py imports them from here."""

from calculator.web.views.accounts import signup
from calculator.web.views.calculator import calculator, catalog_options
from calculator.web.views.estimates import (
    compare_view,
    estimate_delete_view,
    estimate_edit_view,
    estimate_permalink_view,
    estimate_save_view,
    history_bulk_delete_view,
    history_export_view,
    history_view,
)
from calculator.web.views.health import healthz
from calculator.web.views.profiles import (
    profile_create_view,
    profile_delete_view,
    profile_detail_view,
    profile_duplicate_view,
    profile_edit_view,
    profile_import_view,
    profile_list_view,
)
from calculator.web.views.teams import (
    team_delete_view,
    team_detail_view,
    team_leave_view,
    team_list_view,
    team_member_add_view,
    team_member_remove_view,
    team_member_role_view,
)

__all__ = [
    "calculator",
    "catalog_options",
    "compare_view",
    "estimate_delete_view",
    "estimate_edit_view",
    "estimate_permalink_view",
    "estimate_save_view",
    "healthz",
    "history_bulk_delete_view",
    "history_export_view",
    "history_view",
    "profile_create_view",
    "profile_delete_view",
    "profile_detail_view",
    "profile_duplicate_view",
    "profile_edit_view",
    "profile_import_view",
    "profile_list_view",
    "signup",
    "team_delete_view",
    "team_detail_view",
    "team_leave_view",
    "team_list_view",
    "team_member_add_view",
    "team_member_remove_view",
    "team_member_role_view",
]
