"""Every field of the estimate contract (engine inputs, hardware, serving) and of the
calculator's query string, given hostile values: never a 5xx (issue 19). The API answers 200
or a 400 naming the field; the page answers 200 (its errors beside the fields) or 400."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from calculator.engine.inputs import DEFAULTS, HARDWARE_FIELDS, SERVING_FIELDS

FIELDS = [name for name in (*DEFAULTS, *HARDWARE_FIELDS, *SERVING_FIELDS) if name != "model"]
# NUL, a lone surrogate escape, a bidi override, 10,000 characters, not-a-number, a number past
# any limit and past a float, a negative, an object and a list
JSON_VALUES = [
    "a\x00b",
    "\udc80",
    "\u202eevil",
    "x" * 10_000,
    "NaN",
    10**30,
    -1,
    1e308,
    {"a": 1},
    [1, 2],
    True,
]
QUERY_VALUES = ["a\x00b", "\u202eevil", "x" * 3000, "NaN", "1e999", "-1", "99999999999999999999"]
MODEL = {"catalog": "meta-llama/Llama-3.1-8B"}


@pytest.mark.django_db
@pytest.mark.parametrize("field", FIELDS)
def test_the_api_answers_every_hostile_value_without_a_5xx(catalog, field):
    client = APIClient()
    for value in JSON_VALUES:
        for mode in ("inference", "training", "serving"):
            payload = {"model": MODEL, "mode": mode, "gpu": "h100-sxm", field: value}
            if field == "mode":
                payload["mode"] = value
            # json.dumps writes a lone surrogate as its \\udc80 escape, as an attacker would
            body = json.dumps(payload)
            response = client.post("/api/v1/calculate", body, content_type="application/json")
            assert response.status_code in (200, 400), (field, repr(value)[:40], mode)
            if response.status_code == 400:
                assert response["Content-Type"].startswith("application/json")


@pytest.mark.django_db
@pytest.mark.parametrize("field", FIELDS)
def test_the_page_answers_every_hostile_value_without_a_5xx(client, catalog, field):
    for value in QUERY_VALUES:
        for mode in ("inference", "training", "serving"):
            query = {"catalog": MODEL["catalog"], "mode": mode, field: value}
            for headers in ({}, {"HX-Request": "true"}):
                response = client.get("/", query, headers=headers)
                assert response.status_code in (200, 400), (field, value[:20], mode, headers)
