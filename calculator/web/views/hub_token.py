"""The account page's Hugging Face token: set or replace it (kept encrypted, never shown
again), or remove it. Imports from the Hub then read gated and private repos as this user."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from calculator.domain import hub, services
from calculator.models import HubToken
from calculator.web.forms.sharing import add_service_error
from calculator.web.typed import AuthenticatedHttpRequest


class HubTokenForm(forms.Form):
    token = forms.CharField(
        label="Hugging Face access token",
        max_length=500,
        strip=True,
        # render_value=False: the page never holds the token, not even after an error
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="A read token from your Hugging Face settings (hf_...).",
    )


@never_cache
@sensitive_post_parameters("token")
@login_required
@require_http_methods(["GET", "POST"])
def hub_token_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = HubTokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.hub_token_set(user=request.user, token=form.cleaned_data["token"])
        except ValidationError as error:
            add_service_error(form, error)
        else:
            messages.success(request, "Saved your Hugging Face token.")
            return redirect("hub-token")
    context = {
        "form": form,
        "has_token": HubToken.objects.filter(user=request.user).exists(),
        "hub_enabled": hub.enabled(),
    }
    return render(request, "calculator/account/hub_token.html", context)


@login_required
@require_POST
def hub_token_delete_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    services.hub_token_delete(user=request.user)
    messages.success(request, "Removed your Hugging Face token.")
    return redirect("hub-token")
