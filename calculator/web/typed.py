"""Types that Django's stubs cannot infer: what the middleware puts on a request, and a form's
field by its kind. For annotations and mypy; nothing here changes what runs."""

from __future__ import annotations

from typing import TypeVar

from django import forms
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from calculator.domain.selectors import AuthUser

FieldT = TypeVar("FieldT", bound=forms.Field)


class HtmxHttpRequest(HttpRequest):
    """Every request: django-htmx's middleware (settings.MIDDLEWARE) sets `htmx` on each one."""

    htmx: HtmxDetails


class AuthenticatedHttpRequest(HtmxHttpRequest):
    """A request to a view behind `login_required`: its user is signed in."""

    user: AuthUser


def form_field(form: forms.BaseForm, name: str, kind: type[FieldT]) -> FieldT:
    """`form.fields[name]`, which the form declares as a `kind` (`fields` is typed as a dict of
    plain Fields)."""
    field = form.fields[name]
    if not isinstance(field, kind):
        raise TypeError(f"{type(form).__name__}.{name} is a {type(field).__name__}, not {kind}")
    return field
