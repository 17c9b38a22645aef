"""POST /api/v1/calculate with images: the vision-language fields of the contract."""

from __future__ import annotations

import pytest

from tests.engine.test_vision import LLAMA, QWEN2_5_VL

URL = "/api/v1/calculate"


@pytest.mark.django_db
def test_it_adds_the_image_tokens_to_the_kv_cache(client_for):
    payload = {
        "model": {"hf_config": QWEN2_5_VL},
        "images_per_request": 2,
        "image_height": 1024,
        "image_width": 768,
    }
    response = client_for(None).post(URL, payload, format="json")
    assert response.status_code == 200
    body = response.json()
    # two 1024 x 768 images of 999 tokens (smart_resize to 1036 x 756, 74 x 54 patches, 2 x 2
    # merged) beside 2,048 tokens of text; 28 layers x (k + v) x 4 KV heads x 128 x 2 bytes
    assert body["breakdown"]["kv_cache"] == (2048 + 2 * 999) * 28 * 2 * 4 * 128 * 2
    inputs = body["inputs"]
    assert (inputs["images_per_request"], inputs["image_height"], inputs["image_width"]) == (
        2,
        1024,
        768,
    )
    assert any(note.startswith("Images: 2 per sequence x 999 tokens") for note in body["notes"])


@pytest.mark.django_db
def test_it_takes_null_for_the_default_image_size(client_for):
    payload = {"model": {"hf_config": QWEN2_5_VL}, "image_height": None, "image_width": None}
    response = client_for(None).post(URL, payload, format="json")
    assert response.status_code == 200
    assert response.json()["inputs"]["images_per_request"] == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "fields", "field"),
    [
        (LLAMA, {"images_per_request": 1}, "images_per_request"),
        (QWEN2_5_VL, {"images_per_request": 1}, "image_height"),
        (QWEN2_5_VL, {"images_per_request": 1.5}, "images_per_request"),
    ],
)
def test_it_names_the_image_field_at_fault(client_for, model, fields, field):
    payload = {"model": {"hf_config": model}, **fields}
    response = client_for(None).post(URL, payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
