"""Bad values, one field at a time: the calculate API answers 400 with the message under that
field's name, the calculator page shows a form error on that field, and neither clamps."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

SMALL_ARCHITECTURE = {
    "num_parameters": 1_000_000,
    "hidden_size": 64,
    "num_layers": 2,
    "num_attention_heads": 4,
}
# (field, value): zero and negative sizes, booleans and strings where numbers belong, values past
# the limits of docs/limits.md, unknown dtypes, modes and options
BAD_VALUES = [
    ("batch_size", 0),
    ("batch_size", -1),
    ("batch_size", True),
    ("batch_size", "8"),
    ("batch_size", 1.5),
    ("batch_size", 1_000_001),
    ("sequence_length", 0),
    ("sequence_length", 100_000_001),
    ("num_gpus", 0),
    ("num_gpus", 100_001),
    ("tensor_parallel", 10**9),
    ("zero_stage", 4),
    ("runtime_overhead_bytes", -1),
    ("trainable_percent", 101),
    ("weight_dtype", "float64"),
    ("kv_cache_dtype", "nf4"),
    ("mode", "pretraining"),
    ("method", "magic"),
    ("optimizer", "adam"),
    ("finetuning", "dora"),
    ("attention_implementation", "sdpa"),
    ("mixed_precision", "yes"),
]
BAD_ARCHITECTURE = [
    ("hidden_size", 0),
    ("num_layers", -2),
    ("num_attention_heads", True),
    ("num_parameters", 10**20),
    ("vocab_size", "32000"),
]


@pytest.fixture(autouse=True)
def _no_throttle():
    cache.clear()


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
def test_the_api_names_the_field(field, value):
    payload = {"model": {"architecture": SMALL_ARCHITECTURE}, field: value}
    response = APIClient().post("/api/v1/calculate", payload, format="json")
    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == [field], errors
    assert errors[field][0]


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "value"), BAD_ARCHITECTURE)
def test_the_api_names_the_architecture_field(field, value):
    payload = {"model": {"architecture": {**SMALL_ARCHITECTURE, field: value}}}
    response = APIClient().post("/api/v1/calculate", payload, format="json")
    assert response.status_code == 400
    assert list(response.json()) == [f"model.architecture.{field}"], response.json()


# A query string is text: "8" is the number 8 there, and a checkbox is on for any value.
FORM_BAD_VALUES = [
    (field, value)
    for field, value in BAD_VALUES
    if not isinstance(value, bool) and value != "8" and field != "mixed_precision"
]
TRAINING_FIELDS = ("trainable_percent", "optimizer", "finetuning")


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "value"), FORM_BAD_VALUES)
def test_the_calculator_page_shows_an_error_on_the_field(field, value):
    query = {"model": "architecture", **SMALL_ARCHITECTURE, field: value}
    if field in TRAINING_FIELDS:
        # Training options are shown, and read, in training mode: trainable_percent for "partial".
        query.update(mode="training", finetuning="partial")
        query[field] = value
    response = Client().get("/", query)
    assert response.status_code == 200
    form = response.context["form"]
    assert field in form.errors, (field, form.errors)
    assert response.context["results"] is None  # no estimate from a bad value


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [(f, v) for f, v in BAD_ARCHITECTURE if isinstance(v, int) and v is not True],
)
def test_the_calculator_page_shows_an_error_on_the_architecture_field(field, value):
    query = {"model": "architecture", **SMALL_ARCHITECTURE, field: value}
    response = Client().get("/", query)
    assert response.status_code == 200
    assert field in response.context["form"].errors, response.context["form"].errors
    assert response.context["results"] is None


DEEP_JSON = "[" * 100_000 + "]" * 100_000
NAN_CONFIG = '{"model_type": "llama", "hidden_size": NaN, "num_hidden_layers": Infinity}'


@pytest.mark.django_db
@pytest.mark.parametrize("text", [DEEP_JSON, NAN_CONFIG, "{", '"just a string"'])
def test_a_pasted_config_json_that_is_not_a_config_is_a_form_error(text):
    response = Client().get("/", {"model": "hf_config", "hf_config": text})
    assert response.status_code == 200
    assert "hf_config" in response.context["form"].errors, response.context["form"].errors
    assert response.context["results"] is None


@pytest.mark.django_db
@pytest.mark.parametrize("text", [DEEP_JSON, NAN_CONFIG])
def test_importing_such_a_config_json_is_a_form_error(alice, text):
    client = Client()
    client.force_login(alice)
    response = client.post(
        "/profiles/import/", {"name": "bad", "config_json": text, "visibility": "private"}
    )
    assert response.status_code == 200  # the form again
    assert "config_json" in response.context["form"].errors, response.context["form"].errors


@pytest.mark.django_db
def test_a_form_post_over_one_megabyte_is_a_400_not_a_500(alice):
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    # 1,100,000 bytes of form body: over DATA_UPLOAD_MAX_MEMORY_SIZE (1,048,576)
    fields = {"name": "big", "config_json": "x" * 1_100_000, "visibility": "private"}
    response = client.post("/profiles/import/", fields)
    assert response.status_code == 400


@pytest.mark.django_db
def test_an_uploaded_config_json_over_one_megabyte_is_a_form_error(alice):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = Client()
    client.force_login(alice)
    big = SimpleUploadedFile("config.json", b" " * 1_048_577, content_type="application/json")
    response = client.post(
        "/profiles/import/", {"name": "big", "config_file": big, "visibility": "private"}
    )
    assert response.status_code == 200
    assert "config_file" in response.context["form"].errors, response.context["form"].errors
