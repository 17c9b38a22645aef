"""The history page's filters: what the query string may narrow the user's list by.

The filters only ever narrow `selectors.estimate_list(user=...)`, so nothing the user may not
see can enter a page, a count or an export. The page's ids are read by
`calculator/history_queries.py`; its rows and the CSV / JSON export are written by
`calculator/presenters/history.py`.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import partial
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.forms.utils import flatatt
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from calculator.engine import MODES
from calculator.history_queries import ListedIds
from calculator.models import Estimate
from calculator.selectors import (
    User,
    estimate_list,
    listed_parts_q,
    profile_list,
    team_ids_for_user,
    team_list,
)
from calculator.typed import form_field

SORTS = {
    "newest": ("-created", "-id"),
    "oldest": ("created", "id"),
    "largest": ("-total_bytes", "-created", "-id"),
    "smallest": ("total_bytes", "-created", "-id"),
    "title": ("title", "-created", "-id"),
}


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


class PlainSelect(forms.Select):
    """A <select> written in Python. Django renders every option through its own template: for
    the profile filter's 45 options that was 10 ms of each history page."""

    def render(self, name: str, value: Any, attrs: Any = None, renderer: Any = None) -> SafeString:
        widget = self.get_context(name, value, attrs)["widget"]
        options = format_html_join(
            "",
            '<option value="{}"{}>{}</option>',
            (
                (option["value"], " selected" if option["selected"] else "", option["label"])
                for _, group, _ in widget["optgroups"]
                for option in group
            ),
        )
        return format_html(
            '<select name="{}"{}>{}</select>', widget["name"], flatatt(widget["attrs"]), options
        )


# A choice that is not (or no longer) listed: the words of Django's ModelChoiceField.
NOT_LISTED = forms.ModelChoiceField.default_error_messages["invalid_choice"]


class DatePicker(forms.DateInput):
    """The browser's date picker: it sends and shows ISO dates (YYYY-MM-DD) only, so a date
    the address gave in another accepted format (10/25/2026) is shown as ISO, not as blank."""

    input_type = "date"

    def __init__(self) -> None:
        super().__init__(format="%Y-%m-%d")

    def format_value(self, value: Any) -> str | None:
        if isinstance(value, str):
            try:
                value = forms.DateField().to_python(value)
            except ValidationError:
                return value
        return super().format_value(value)


class HistoryFilterForm(forms.Form):
    """The history page's filters: a GET form, every field optional. A value that does not
    validate is left out of `cleaned_data` and so ignored (the page says so). The profile and
    team choices are what the user may list."""

    q = forms.CharField(label="Search", required=False)
    whose = forms.ChoiceField(
        label="Whose",
        required=False,
        choices=[("", "Mine and my teams'"), ("mine", "Mine"), ("shared", "Shared with my teams")],
        widget=PlainSelect,
    )
    mode = forms.ChoiceField(
        label="Mode",
        required=False,
        choices=[("", "Any mode"), *((mode, mode.capitalize()) for mode in MODES)],
        widget=PlainSelect,
    )
    method = forms.ChoiceField(
        label="Method",
        required=False,
        choices=[("", "Any method"), ("detailed", "Detailed"), ("standard", "Standard")],
        widget=PlainSelect,
    )
    profile = forms.ChoiceField(
        label="Profile",
        required=False,
        error_messages={"invalid_choice": NOT_LISTED},
        widget=PlainSelect,
    )
    team = forms.ChoiceField(
        label="Team",
        required=False,
        error_messages={"invalid_choice": NOT_LISTED},
        widget=PlainSelect,
    )
    created_after = forms.DateField(label="From", required=False, widget=DatePicker)
    created_before = forms.DateField(label="To", required=False, widget=DatePicker)
    sort = forms.ChoiceField(
        label="Sort",
        required=False,
        choices=[
            ("newest", "Newest first"),
            ("oldest", "Oldest first"),
            ("largest", "Largest first"),
            ("smallest", "Smallest first"),
            ("title", "Title"),
        ],
        widget=PlainSelect,
    )

    def __init__(self, data: Any, *, user: User, team_ids: list[int]) -> None:
        super().__init__(data)
        # Each read in one query when first needed: to render the select, or to check a value.
        # An export without a profile or team filter needs neither.
        self.listed = {
            "profile": profile_list(user=user, team_ids=team_ids).values_list(
                "pk", "public_id", "name"
            ),
            "team": team_list(user=user, team_ids=team_ids).values_list("pk", "slug", "name"),
        }
        form_field(self, "profile", forms.ChoiceField).choices = partial(
            self._choices, "profile", "Any profile"
        )
        form_field(self, "team", forms.ChoiceField).choices = partial(
            self._choices, "team", "Any team"
        )

    def _choices(self, field: str, empty_label: str) -> list[tuple[str, str]]:
        return [("", empty_label), *((key, name) for _, key, name in self.listed[field])]

    def listed_pk(self, field: str, key: str) -> int:
        """The primary key of the listed profile or team that `key` (a validated choice) names."""
        return next(pk for pk, listed_key, _ in self.listed[field] if listed_key == key)


def _filters_q(form: HistoryFilterForm) -> Q:
    """What validated of the form but `whose` and `sort`, as one condition; what did not
    validate is ignored."""
    form.is_valid()
    data = form.cleaned_data
    q = Q()
    if text := data.get("q", "").strip():
        q &= Q(title__icontains=text) | Q(notes__icontains=text) | Q(model_name__icontains=text)
    if mode := data.get("mode"):
        q &= Q(mode=mode)
    if method := data.get("method"):
        q &= Q(method=method)
    if profile := data.get("profile"):
        q &= Q(profile_id=form.listed_pk("profile", profile))
    if team := data.get("team"):
        q &= Q(team_id=form.listed_pk("team", team))
    if after := data.get("created_after"):
        q &= Q(created__gte=_day_start(after))
    if (before := data.get("created_before")) and before < date.max:
        # Inclusive: everything saved on that day too (a range on the indexed column, no casts).
        # The last day there is (9999-12-31) has no day after it: no upper bound then.
        q &= Q(created__lt=_day_start(before + timedelta(days=1)))
    return q


def _ordering(form: HistoryFilterForm) -> tuple[str, ...]:
    form.is_valid()
    return SORTS[form.cleaned_data.get("sort") or "newest"]


def history_narrowed(queryset: QuerySet[Estimate], form: HistoryFilterForm, user: User):
    """`queryset` narrowed by what validated of the form; what did not is ignored."""
    queryset = queryset.filter(_filters_q(form))
    if whose := form.cleaned_data.get("whose"):
        mine = Q(owner=user)
        queryset = queryset.filter(mine) if whose == "mine" else queryset.exclude(mine)
    if form.cleaned_data.get("sort"):
        queryset = queryset.order_by(*_ordering(form))
    return queryset


class HistoryFilter:
    """The history page's filters for one request: `form` to show, `qs` the user's estimates
    and their teams' narrowed by it, `ids` the same list's ids for the page's count and rows.
    The user's team ids are read once, for all of them."""

    def __init__(self, request: HttpRequest) -> None:
        self.user = request.user
        self.team_ids = team_ids_for_user(self.user)
        self.form = HistoryFilterForm(request.GET, user=self.user, team_ids=self.team_ids)
        self.estimates = estimate_list(user=self.user, team_ids=self.team_ids).defer(
            "inputs", "architecture", "result"
        )

    @cached_property
    def qs(self) -> QuerySet[Estimate]:
        return history_narrowed(self.estimates, self.form, self.user)

    @cached_property
    def ids(self) -> ListedIds:
        """The ids of `qs`, in its order, read as a union of the access rule's parts (the
        user's own, their teams' team items), each part narrowed by the same filters."""
        self.form.is_valid()
        whose = self.form.cleaned_data.get("whose")
        filters = _filters_q(self.form)

        def parts(*, per_team: bool) -> list[QuerySet[Estimate]]:
            listed = listed_parts_q(self.user, self.team_ids, per_team=per_team)
            if whose == "mine":
                listed = listed[:1]
            elif whose == "shared":
                listed = listed[1:]
            return [Estimate.objects.filter(part).filter(filters) for part in listed]

        # The count: two parts, own and all teams' (unordered, each stops after the limit); the
        # page: one part per team, each read in its index's order.
        return ListedIds(
            parts(per_team=True), count_parts=parts(per_team=False), ordering=_ordering(self.form)
        )


def history_filter(request: HttpRequest) -> HistoryFilter:
    """The user's estimates and their teams' narrowed by the request's query string."""
    return HistoryFilter(request)
