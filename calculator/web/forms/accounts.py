from __future__ import annotations

from typing import Any

from django.contrib.auth.forms import UserCreationForm

from calculator.domain.spoofing import validate_user_text


class SignupForm(UserCreationForm):
    """A user name and a password, twice; nothing else is needed to save estimates."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Django's username rule refuses these too, with a vaguer message: say which and why.
        self.fields["username"].validators.insert(0, validate_user_text)
