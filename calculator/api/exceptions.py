"""Every API error is JSON: a 400 is `{"<field>": ["message", ...]}` (dotted names for nested
fields, "non_field_errors" for the body as a whole); any other error is `{"detail": "..."}`.
The domain's errors (calculator/domain/errors.py, the engine's EstimateError, Django's
ValidationError) are mapped here, once for the whole API."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from calculator.domain.errors import Forbidden, NotFound
from calculator.engine import EstimateError


class PayloadTooLarge(exceptions.APIException):
    """Django refuses bodies over DATA_UPLOAD_MAX_MEMORY_SIZE (DRF reads JSON through it)."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"

    def __init__(self) -> None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        super().__init__(f"The request body is larger than {limit:,} bytes.")


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error structure as one level of dotted field names."""
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for key, value in detail.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(detail, list) and any(isinstance(item, dict | list) for item in detail):
        flat = {}
        for index, item in enumerate(detail):
            flat.update(_flatten(item, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    messages = detail if isinstance(detail, list) else [detail]
    return {prefix or api_settings.NON_FIELD_ERRORS_KEY: [str(m) for m in messages]}


def _as_api_exception(exc: Exception) -> Exception:
    if isinstance(exc, EstimateError):
        return exceptions.ValidationError({exc.field: [exc.message]})
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            return exceptions.ValidationError(exc.message_dict)
        return exceptions.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: exc.messages})
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, NotFound):
        return exceptions.NotFound(exc.message)
    if isinstance(exc, Forbidden):
        # the item is readable, so whether it exists is no secret
        return exceptions.PermissionDenied(exc.message or None)
    return exc


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = drf_exception_handler(_as_api_exception(exc), context)
    if response is not None and response.status_code == status.HTTP_400_BAD_REQUEST:
        detail = response.data
        if isinstance(detail, dict) and set(detail) == {"detail"}:
            detail = detail["detail"]  # a ParseError: about the body as a whole
        response.data = _flatten(detail)
    return response
