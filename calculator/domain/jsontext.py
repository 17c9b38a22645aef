"""JSON text from outside (a request body, a pasted or uploaded config.json), read with bounds.

Python's json module accepts NaN, Infinity and numbers such as 1e999 (read as infinity), nests
until the interpreter's recursion limit, and turns a "\\ud800" escape into a lone surrogate that
no UTF-8 text (a response, a PostgreSQL jsonb or text column) can hold. `loads_bounded` refuses
each with a ValueError that says why and repeats none of the offending text.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# Deepest nesting of objects and arrays; a config.json nests 3 or 4 levels.
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
    """`text` as JSON, or ValueError: no NaN or infinities, at most MAX_JSON_DEPTH levels, no
    lone surrogates (in keys or values)."""
    if json_depth(text) > MAX_JSON_DEPTH:
        raise ValueError(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels.")
    value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    if "\\ud" in text.lower() or any("\ud800" <= c <= "\udfff" for c in text):
        try:
            json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise ValueError(
                "a \\uD800-\\uDFFF escape stands alone: it is half of a character."
            ) from None
    return value
