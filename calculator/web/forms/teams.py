"""Team forms: create a team, add a member, change a member's role."""

from __future__ import annotations

from django import forms

from calculator.models import Role


class TeamCreateForm(forms.Form):
    name = forms.CharField(max_length=100)


class MemberAddForm(forms.Form):
    username_or_email = forms.CharField(label="Username or email", max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
