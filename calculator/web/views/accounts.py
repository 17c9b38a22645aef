from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from calculator.web.forms.accounts import SignupForm

# The backend a new account is signed in with: Django's own, which must be one of
# AUTHENTICATION_BACKENDS, or the session is dropped on the next request (tested).
SIGN_IN_BACKEND = "django.contrib.auth.backends.ModelBackend"


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    # Read at request time so that ALLOW_SIGNUP=0 hides the page without a redeploy of code.
    if not settings.ALLOW_SIGNUP:
        raise Http404("Sign-up is turned off on this server.")
    if request.user.is_authenticated:
        return redirect("calculator")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend=SIGN_IN_BACKEND)
        messages.success(request, f"Welcome, {user.get_username()}: your account is ready.")
        return redirect("calculator")
    return render(request, "registration/signup.html", {"form": form})
