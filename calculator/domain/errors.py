"""The domain's errors: what selectors and services raise, whoever calls them.

Each interface maps them once: HTML pages in `calculator.web.middleware.DomainErrorMiddleware`,
the API in `calculator.api.exceptions.exception_handler`. Invalid input is Django's
`ValidationError` (services) or the engine's `EstimateError` (calculations), mapped in the same
two places.
"""

from __future__ import annotations


class NotFound(Exception):
    """No such item, or none the caller may read: the two are never told apart."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Forbidden(Exception):
    """The caller may read the item but not do this to it. The API answers 403 (the item is
    readable, so whether it exists is no secret); a page answers as if it did not exist
    ("No such <item>."), as every page does for what its visitor may not change."""

    def __init__(self, item: str, message: str = "") -> None:
        super().__init__(message or f"You may not change this {item}.")
        self.item = item
        self.message = message  # what the API says; blank: its standard 403 text
