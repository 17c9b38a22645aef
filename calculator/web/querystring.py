"""The calculator's query string, written in one place: the contract's values as the form reads
them back (CalculatorForm.from_query is the decoder). Used for the page's own address
(hx-push-url) and for a saved estimate's "open in the calculator" link."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.http import QueryDict

from calculator.engine import ALL_LINEAR
from calculator.engine.contract import FIELD_SPECS


def query_value(value: Any) -> str:
    """One value as the form's field reads it: booleans as a ticked box, whole floats bare."""
    if isinstance(value, bool):
        return "on" if value else ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def encode_architecture(query: QueryDict, fields: Mapping[str, Any]) -> None:
    """A model typed by hand, as the form's architecture fields read it: a plain MLP is
    `gated_mlp=no` (blank is the gated default), other flags a ticked box."""
    for name, value in fields.items():
        if name == "gated_mlp":
            if value is False:
                query["gated_mlp"] = "no"
        elif isinstance(value, bool):
            if value:
                query[name] = "on"
        elif value is not None:
            query[name] = query_value(value)


def encode_fields(
    query: QueryDict,
    values: Mapping[str, Any],
    names: Iterable[str],
    *,
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """Add `names` of `values` to `query`, leaving out what the form fills in by itself: no
    value, false, all-linear LoRA targets, a GPU given by its figures (the page picks GPUs from
    the catalog) and anything equal to `defaults`."""
    defaults = defaults or {}
    for name in names:
        value = values.get(name)
        # `is False`: a 0 (runtime_overhead_bytes) is a value, not an unticked box
        if value is None or value is False or value in ("", [], ALL_LINEAR):
            continue
        if isinstance(value, dict):
            continue
        if name in defaults and value == defaults[name]:
            continue
        spec = FIELD_SPECS.get(name)
        if isinstance(value, list | tuple) or (spec is not None and spec.kind == "modules"):
            query.setlist(name, [str(item) for item in value])
        else:
            query[name] = query_value(value)


def with_changes(query: str, **changes: str) -> str:
    """`query` with some fields set to other values (the links beside a result)."""
    params = QueryDict(query, mutable=True)
    for name, value in changes.items():
        params[name] = value
    return params.urlencode(safe="/")
