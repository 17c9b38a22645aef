from __future__ import annotations

from django.contrib.auth.forms import UserCreationForm


class SignupForm(UserCreationForm):
    """A user name and a password, twice; nothing else is needed to save estimates."""
