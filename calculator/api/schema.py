"""OpenAPI documentation of the error responses every endpoint shares."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.utils import OpenApiResponse

from calculator.api.serializers import ErrorDetailSerializer

FIELD_ERRORS = {
    "type": "object",
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}

_DESCRIPTIONS = {
    400: "Bad input: messages per field (dotted names for nested fields).",
    401: "No credentials, or an unknown or revoked token.",
    403: "Readable, but not yours to change (or a missing CSRF token with a session).",
    404: "No such object, or not one you can see.",
    413: "The request body is larger than 1 MB.",
    429: "Too many requests: retry after the Retry-After header's seconds.",
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    return {
        code: OpenApiResponse(
            response=FIELD_ERRORS if code == 400 else ErrorDetailSerializer,
            description=_DESCRIPTIONS[code],
        )
        for code in codes
    }


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "calculator.api.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):  # noqa: ANN001, ANN201 (extension API)
        scheme = build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix="Token"
        )
        scheme["description"] = "An API token from your account page: `Authorization: Token <key>`."
        return scheme
