"""The account page's API tokens: create a named token (its key shown once), list, revoke."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from calculator.api.tokens import api_token_create, api_token_list, api_token_revoke
from calculator.models import ApiToken
from calculator.web.typed import AuthenticatedHttpRequest

NEW_KEY_SESSION_KEY = "api_token_new_key"


class HttpResponseSeeOther(HttpResponseRedirect):
    status_code = 303  # after a POST: the browser follows with a GET


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=ApiToken._meta.get_field("name").max_length,
        help_text="What will use it, e.g. “Grafana dashboard”.",
    )


@never_cache  # the page may hold a new token's key: keep it out of every cache
@login_required
@require_http_methods(["GET", "POST"])
def api_tokens_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            _, key = api_token_create(user=request.user, name=form.cleaned_data["name"])
        except ValidationError as error:
            form.add_error(None, error)
        else:
            # Redirect after the POST, so that a reload cannot create a second token; the key
            # waits in the session for the next page alone, which removes it as it shows it.
            request.session[NEW_KEY_SESSION_KEY] = key
            return HttpResponseSeeOther(reverse("api-tokens"))
    new_key = request.session.pop(NEW_KEY_SESSION_KEY, None) if request.method == "GET" else None
    context = {"form": form, "tokens": api_token_list(user=request.user), "new_key": new_key}
    return render(request, "calculator/account/tokens.html", context)


@login_required
@require_POST
def api_token_revoke_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    token = api_token_revoke(user=request.user, digest=request.POST.get("digest", ""))
    if token is None:
        raise Http404("No such token.")
    messages.success(request, f"Token “{token.name}” revoked: requests using it now get 401.")
    return redirect("api-tokens")
