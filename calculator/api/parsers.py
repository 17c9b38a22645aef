"""The API's JSON parser: DRF's, with the bounds of docs/limits.md.

Python's json module accepts NaN, Infinity and numbers such as 1e999 (read as infinity), lone
surrogates, nests until the interpreter's recursion limit and reads a body of any size from the
stream. Each is a 400 (or a 413 for the size) here, before any view sees the data.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as DrfJSONParser
from rest_framework.parsers import get_encoding

from calculator.domain.jsontext import MAX_JSON_DEPTH, json_depth, loads_bounded

__all__ = ["MAX_JSON_DEPTH", "JSONParser", "json_depth", "loads_bounded"]


class JSONParser(DrfJSONParser):
    """DRF's JSONParser, bounded: 1 MB of body, 64 levels, finite numbers only."""

    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        encoding = get_encoding(parser_context or {})
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(body) > limit:
            raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
        try:
            return loads_bounded(codecs.decode(body, encoding))
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise ParseError(f"JSON parse error - {exc}") from exc
