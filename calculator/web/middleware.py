"""What the pages answer when a view raises instead of returning.

A database outage is a 503, not a 500 with a traceback in the log of every request.

While PostgreSQL restarts, a view, a template or DRF raises OperationalError (cannot connect) or
InterfaceError (connection closed). The visitor gets a short page, the API a JSON `detail`, both
with Retry-After; CONN_HEALTH_CHECKS makes the next request reconnect once the database is back.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from django.core.handlers.exception import response_for_exception
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults

from calculator.domain.errors import Forbidden, NotFound

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
API_PREFIX = "/api/"


def database_unavailable_response(request: HttpRequest) -> HttpResponse:
    """503 as JSON under /api/ and as a page elsewhere; rendered without touching the database."""
    response: HttpResponse
    if request.path.startswith(API_PREFIX):
        response = JsonResponse(
            {"detail": "The database is unavailable for a moment. Try again in a few seconds."},
            status=503,
        )
    else:
        # No request context: the context processors would ask the database for the user.
        response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.warning("Database unavailable on %s %s: %s", request.method, request.path, exception)
        return database_unavailable_response(request)


class DomainErrorMiddleware:
    """The domain's errors (calculator/domain/errors.py) as pages, in one place: not found is
    Django's 404, and so is forbidden, since a page never tells a visitor that something they
    may not change exists. The API's views answer them through their own exception handler first
    (calculator/api/exceptions.py) and never reach this."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, NotFound):
            return response_for_exception(request, Http404(exception.message))
        if isinstance(exception, Forbidden):
            return response_for_exception(request, Http404(f"No such {exception.item}."))
        return None


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: also a database outage met outside a view (a middleware, a signal handler)
    is a 503; any other error is Django's plain 500 page."""
    error = sys.exc_info()[1]
    if isinstance(error, OperationalError | InterfaceError):
        return database_unavailable_response(request)
    return defaults.server_error(request)
