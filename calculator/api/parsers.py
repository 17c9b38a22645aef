"""The API's JSON parser: DRF's, with the bounds of docs/limits.md.

Python's json module accepts NaN, Infinity and numbers such as 1e999 (read as infinity), nests
until the interpreter's recursion limit and reads a body of any size from the stream. Each is a
400 (or a 413 for the size) here, before any view sees the data.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as DrfJSONParser
from rest_framework.parsers import get_encoding

# Deepest nesting of objects and arrays in a request body; a config.json nests 3 or 4 levels.
MAX_JSON_DEPTH = 64

# A JSON string literal (with escapes), so that brackets inside strings are not counted
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in `text`, counted without parsing it."""
    depth = deepest = 0
    for bracket in _JSON_BRACKET.finditer(_JSON_STRING.sub('""', text)):
        if bracket.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number in JSON; send a finite number.")


def _finite_float(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise ValueError(f"{literal} is too large; send a finite number.")
    return number


def loads_bounded(text: str) -> Any:
    """`text` as JSON, or ValueError: no NaN or infinities, at most MAX_JSON_DEPTH levels."""
    if json_depth(text) > MAX_JSON_DEPTH:
        raise ValueError(f"the body nests deeper than {MAX_JSON_DEPTH} levels.")
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)


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
