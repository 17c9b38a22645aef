"""Arbitrary input never breaks the service (hypothesis): the engine answers or raises
EstimateError naming a field; the calculator page and the calculate API answer 200, 400 or a
form error, never a 5xx."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from calculator.engine import (
    FIELDS,
    HARDWARE_FIELDS,
    KV_CACHE_DTYPES,
    MODES,
    WEIGHT_DTYPES,
    EstimateError,
    calculate,
)
from calculator.engine.architecture import ARCHITECTURE_FIELDS

BOUNDED = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Values that do not belong where numbers, names or objects are expected
NASTY_NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1, 2**63, 10**30, 0.5, 1e308, -0.0]),
)
NASTY_TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            "nan",
            "NaN",
            "inf",
            "-Infinity",
            "1e999",
            "0x10",
            "1_000",
            "٣",  # Arabic-Indic digit three: int() accepts it
            "\x00",
            "<script>alert(1)</script>",
            "float64",
            "int3",
            "pretraining",
            "9" * 5000,
        ]
    ),
)
SCALARS = st.one_of(st.none(), st.booleans(), NASTY_NUMBERS, NASTY_TEXT)
JSON_ANY = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

VALID_ARCHITECTURE = {
    "num_parameters": 1_000_000,
    "hidden_size": 64,
    "num_layers": 2,
    "num_attention_heads": 4,
}
VALID_HF_CONFIG = {
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 176,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1000,
}
FIELD_VALUES = {
    "mode": st.one_of(st.sampled_from(MODES), NASTY_TEXT, SCALARS),
    "weight_dtype": st.one_of(st.sampled_from(WEIGHT_DTYPES), SCALARS),
    "kv_cache_dtype": st.one_of(st.sampled_from(KV_CACHE_DTYPES), SCALARS),
}


@st.composite
def models(draw: st.DrawFn) -> Any:
    """A valid model with some fields replaced by anything, or anything at all."""
    kind = draw(st.sampled_from(["architecture", "hf_config", "garbage"]))
    if kind == "garbage":
        return draw(JSON_ANY)
    base = dict(VALID_ARCHITECTURE if kind == "architecture" else VALID_HF_CONFIG)
    keys = ARCHITECTURE_FIELDS if kind == "architecture" else (*VALID_HF_CONFIG, "torch_dtype")
    for key in draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)):
        base[key] = draw(JSON_ANY)
    return {kind: base}


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    payload: dict[str, Any] = {"model": draw(models())}
    for field in draw(st.lists(st.sampled_from((*FIELDS[1:], *HARDWARE_FIELDS)), max_size=5)):
        payload[field] = draw(FIELD_VALUES.get(field, JSON_ANY))
    if draw(st.booleans()):
        payload[draw(st.text(max_size=10))] = draw(JSON_ANY)
    return payload


@BOUNDED
@given(payload=payloads())
def test_the_engine_answers_or_names_the_field_at_fault(payload):
    try:
        result = calculate(payload)
    except EstimateError as error:
        assert isinstance(error.field, str) and error.field
        assert str(error)
    else:
        assert result["total_bytes"] == sum(result["breakdown"].values())
        assert all(isinstance(size, int) and size >= 0 for size in result["breakdown"].values())


def _finite_json(payload: Any) -> bool:
    """Whether json.dumps would write standard JSON (no NaN/Infinity)."""
    if isinstance(payload, float):
        return math.isfinite(payload)
    if isinstance(payload, dict):
        return all(_finite_json(value) for value in payload.values())
    if isinstance(payload, list):
        return all(_finite_json(value) for value in payload)
    return True


@pytest.mark.django_db
@BOUNDED
@given(payload=st.one_of(payloads(), JSON_ANY))
def test_the_calculate_api_answers_200_or_400_to_any_json(payload):
    cache.clear()  # the anonymous throttle would answer 429 after 60 requests
    body = json.dumps(payload)  # writes NaN and Infinity, which the API must refuse
    response = APIClient().post("/api/v1/calculate", body, content_type="application/json")
    assert response.status_code in (200, 400), response.content[:500]
    data = response.json()
    if response.status_code == 400:
        assert data and all(isinstance(messages, list) for messages in data.values())
        if not _finite_json(payload):
            assert "JSON parse error" in data["non_field_errors"][0]
    else:
        assert _finite_json(payload)
        assert data["total_bytes"] == sum(data["breakdown"].values())


QUERY_KEYS = st.one_of(
    st.sampled_from(
        (*FIELDS, *HARDWARE_FIELDS, *ARCHITECTURE_FIELDS, "catalog", "profile", "hf_config")
    ),
    st.text(max_size=10),
)
QUERY_VALUES = st.one_of(
    NASTY_TEXT,
    NASTY_NUMBERS.map(str),
    st.sampled_from(["catalog", "architecture", "hf_config", "profile", "meta-llama/Llama-3.1-8B"]),
    JSON_ANY.map(json.dumps),
)


@pytest.mark.django_db
@BOUNDED
@given(
    query=st.lists(st.tuples(QUERY_KEYS, QUERY_VALUES), max_size=8),
    htmx=st.booleans(),
)
def test_the_calculator_page_never_fails_on_any_query_string(query, htmx):
    headers = {"HX-Request": "true"} if htmx else {}
    response = Client().get("/", dict(query), headers=headers)
    assert response.status_code == 200, response.content[:500]
