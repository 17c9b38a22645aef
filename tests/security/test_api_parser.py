"""The API's JSON parser: bodies over 1 MB, nesting deeper than 64 levels, NaN, Infinity and
numbers too large for a float are refused before any view sees them."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from calculator.api.parsers import MAX_JSON_DEPTH, json_depth, loads_bounded

CALCULATE = "/api/v1/calculate"
SMALL_MODEL = (
    '{"architecture": {"num_parameters": 1000000, "hidden_size": 64, "num_layers": 2,'
    ' "num_attention_heads": 4}}'
)


def post_raw(body: str):
    return APIClient().post(CALCULATE, body, content_type="application/json")


def test_json_depth_counts_arrays_and_objects_but_not_brackets_inside_strings():
    assert json_depth("1") == 0
    assert json_depth("[]") == 1
    # object, array, object, array
    assert json_depth('{"a": [1, {"b": []}]}') == 4
    # Brackets and escaped quotes inside a string are text, not nesting.
    assert json_depth('{"a": "[[[{{{\\"]]]"}') == 1


def test_loads_bounded_refuses_what_pythons_json_module_accepts():
    for text in ("NaN", "Infinity", "-Infinity", "[1e999]", '{"x": -1e400}'):
        with pytest.raises(ValueError):
            loads_bounded(text)
    assert loads_bounded('{"x": 1.5e300}') == {"x": 1.5e300}


@pytest.mark.django_db
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_non_finite_numbers_are_a_400_naming_the_body(literal):
    response = post_raw(f'{{"model": {SMALL_MODEL}, "batch_size": {literal}}}')
    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == ["non_field_errors"]
    assert "JSON parse error" in errors["non_field_errors"][0]


@pytest.mark.django_db
def test_nesting_one_level_past_the_limit_is_a_400():
    # The body object is level 1, so this is MAX_JSON_DEPTH + 1 levels.
    body = (
        '{"model": {"hf_config": {"x": ' + "[" * (MAX_JSON_DEPTH - 2) + "]" * (MAX_JSON_DEPTH - 2)
    )
    body += "}}}"
    assert json_depth(body) == MAX_JSON_DEPTH + 1
    response = post_raw(body)
    assert response.status_code == 400
    assert "nests deeper than 64" in response.json()["non_field_errors"][0]


@pytest.mark.django_db
def test_nesting_at_the_limit_is_parsed_and_judged_by_the_engine():
    body = (
        '{"model": {"hf_config": {"x": ' + "[" * (MAX_JSON_DEPTH - 3) + "]" * (MAX_JSON_DEPTH - 3)
    )
    body += "}}}"
    assert json_depth(body) == MAX_JSON_DEPTH
    response = post_raw(body)
    assert response.status_code == 400
    assert "non_field_errors" not in response.json()  # a field error, not a parse error


@pytest.mark.django_db
def test_a_hundred_thousand_levels_is_a_400_not_a_recursion_error():
    response = post_raw("[" * 100_000 + "]" * 100_000)
    assert response.status_code == 400


@pytest.mark.django_db
def test_a_body_of_exactly_one_megabyte_is_read_and_one_byte_more_is_a_413():
    # DATA_UPLOAD_MAX_MEMORY_SIZE is 1,048,576 bytes; build a JSON string of exactly that length.
    envelope = '{"padding": ""}'
    exact = '{"padding": "' + "x" * (1_048_576 - len(envelope)) + '"}'
    assert len(exact) == 1_048_576
    assert post_raw(exact).status_code == 400  # read, then: no model
    over = '{"padding": "' + "x" * (1_048_577 - len(envelope)) + '"}'
    response = post_raw(over)
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"


@pytest.mark.django_db
def test_a_number_with_more_digits_than_python_converts_is_a_400():
    response = post_raw('{"batch_size": ' + "9" * 5000 + "}")
    assert response.status_code == 400


@pytest.mark.django_db
def test_bytes_that_are_not_utf8_are_a_400():
    response = APIClient().post(CALCULATE, b'{"a": "\xff\xfe"}', content_type="application/json")
    assert response.status_code == 400
