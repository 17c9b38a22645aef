"""Query-string filters of the list endpoints (django-filter)."""

from __future__ import annotations

from datetime import UTC, datetime

import django_filters
from django import forms
from django.core.exceptions import ValidationError

from calculator.engine import METHODS, MODES
from calculator.models import Estimate, ModelProfile, ProfileSource

MAX_ID = 2**63 - 1


class IdFilter(django_filters.NumberFilter):
    """An object id: a whole number, so no decimal or huge value reaches the database."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class UtcDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 time, turned into UTC before it is compared: PostgreSQL refuses offsets past
    ±15:59 (Python takes up to ±23:59), and a time near year 1 or 9999 may have no UTC one."""

    def to_python(self, value: object) -> datetime | None:
        parsed = super().to_python(value)  # aware: naive times are in TIME_ZONE
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise ValidationError("Enter a time between years 1 and 9999 in UTC.") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class ProfileFilter(django_filters.FilterSet):
    source = django_filters.ChoiceFilter(choices=ProfileSource.choices)
    family = django_filters.CharFilter(help_text="A Hugging Face model_type, e.g. llama.")
    team = IdFilter(field_name="team_id")
    search = django_filters.CharFilter(
        field_name="name", lookup_expr="icontains", help_text="Part of the name."
    )
    ordering = django_filters.OrderingFilter(fields=("name", "created", "num_parameters"))

    class Meta:
        model = ModelProfile
        fields = ["source", "family", "team"]


class EstimateFilter(django_filters.FilterSet):
    mode = django_filters.ChoiceFilter(choices=[(m, m) for m in MODES])
    method = django_filters.ChoiceFilter(choices=[(m, m) for m in METHODS])
    profile = IdFilter(field_name="profile_id")
    team = IdFilter(field_name="team_id")
    created_after = UtcDateTimeFilter(field_name="created", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created", lookup_expr="lt")
    ordering = django_filters.OrderingFilter(
        fields=("created", "total_bytes", "title", "model_name")
    )

    class Meta:
        model = Estimate
        fields = ["mode", "method", "profile", "team"]


class CatalogModelFilter(django_filters.FilterSet):
    family = django_filters.CharFilter(help_text="A Hugging Face model_type, e.g. llama.")
    search = django_filters.CharFilter(
        field_name="name", lookup_expr="icontains", help_text="Part of the name."
    )

    class Meta:
        model = ModelProfile
        fields = ["family"]
