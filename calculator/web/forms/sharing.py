"""What every shareable thing's form has: visibility and team, and services' errors on the form."""

from __future__ import annotations

from collections.abc import Mapping

from django import forms
from django.core.exceptions import ValidationError

from calculator.domain.selectors import User, team_list
from calculator.models import Team, Visibility
from calculator.web.typed import form_field


class SharingForm(forms.Form):
    visibility = forms.ChoiceField(
        choices=Visibility.choices,
        initial=Visibility.PRIVATE,
        widget=forms.RadioSelect,
        help_text="Team: members of the team below. Anyone with the link: never listed, but "
        "readable by whoever has its address.",
    )
    team = forms.ModelChoiceField(
        queryset=Team.objects.none(),
        required=False,
        to_field_name="slug",
        empty_label="No team",
    )

    def __init__(self, *args, user: User, can_share: bool = True, **kwargs) -> None:
        """`can_share`: the access rules' right to change who sees the item (its owner's);
        without it the form has no sharing fields, so a team owner edits only the content."""
        super().__init__(*args, **kwargs)
        self.user = user
        if not can_share:
            del self.fields["visibility"], self.fields["team"]
            return
        form_field(self, "team", forms.ModelChoiceField).queryset = team_list(user=user)

    def sharing(self) -> dict:
        """The cleaned sharing fields, as the services take them: none without the right."""
        return {
            name: self.cleaned_data[name] for name in ("visibility", "team") if name in self.fields
        }

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        if cleaned.get("visibility") == Visibility.TEAM and not cleaned.get("team"):
            self.add_error("team", "Choose the team to share with.")
        return cleaned


def add_service_error(
    form: forms.Form, error: ValidationError, *, field_map: Mapping[str, str] | None = None
) -> None:
    """Put a service's ValidationError on the form: on the field it names, else on top."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error.messages)
        return
    for field, errors in error.error_dict.items():
        name = (field_map or {}).get(field, field)
        messages = [message for e in errors for message in e.messages]
        form.add_error(name if name in form.fields else None, messages)
