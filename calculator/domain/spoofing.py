"""Invisible format characters in what one user types and another reads (issue 19).

Bidi controls (U+202A-U+202E embeddings and overrides, U+2066-U+2069 isolates, the marks
U+200E, U+200F, U+061C) make a title, a name or a team name read differently from what it holds
("Trojan Source"); zero-width spaces, the word joiner, invisible operators, the BOM and tag
characters hide text. Every character of Unicode's category Cf (format) is refused in user text
fields, except the zero-width non-joiner and joiner (U+200C, U+200D), which Persian and Indic
scripts and emoji sequences need. The services check each field before saving
(`check_user_text`), so the pages show a form error and the API a 400 naming the field.
"""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError

# What writing systems and emoji need; invisible, but they do not reorder or hide text.
ALLOWED_FORMAT = frozenset({"\u200c", "\u200d"})


def spoofing_characters(text: str) -> list[str]:
    """The invisible format characters in `text`, each once, in order of appearance."""
    found: dict[str, None] = {}
    for char in text:
        if char not in ALLOWED_FORMAT and unicodedata.category(char) == "Cf":
            found.setdefault(char)
    return list(found)


def message_for(found: list[str]) -> str:
    codes = ", ".join(f"U+{ord(char):04X}" for char in found[:5])
    return (
        f"Remove the invisible formatting characters ({codes}): they can make text read "
        "differently from what it holds."
    )


def check_user_text(**fields: str | None) -> None:
    """Raise a ValidationError naming each field whose text holds such a character."""
    errors = {}
    for name, value in fields.items():
        found = spoofing_characters(value) if isinstance(value, str) else []
        if found:
            errors[name] = message_for(found)
    if errors:
        raise ValidationError(errors)


def validate_user_text(value: str) -> None:
    """The same check as a form field's validator."""
    found = spoofing_characters(value)
    if found:
        raise ValidationError(message_for(found), code="spoofing")
