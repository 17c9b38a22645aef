"""The calculator page with a vision-language model: the image fields, the link, the numbers."""

from __future__ import annotations

import json
import re

import pytest

from tests.engine.test_vision import QWEN2_5_VL
from tests.web.test_calculator import HTMX, breakdown_bytes


@pytest.fixture(autouse=True)
def _catalog(catalog):
    """The page reads the built-in catalogs (the GPU it opens with)."""


def query(**fields: object) -> dict[str, object]:
    return {"model": "hf_config", "hf_config": json.dumps(QWEN2_5_VL), **fields}


def test_the_form_offers_the_image_fields(client):
    content = client.get("/").content.decode()
    for name in ("images_per_request", "image_height", "image_width"):
        assert re.search(rf'<input[^>]+name="{name}"', content), name


def test_it_sizes_the_images_and_keeps_them_in_the_link(client):
    response = client.get(
        "/", query(images_per_request=1, image_height=1024, image_width=768), headers=HTMX
    )
    # one image of 999 tokens beside 2,048 of text; 57,344 KV bytes a token
    assert breakdown_bytes(response.content.decode())["kv_cache"] == (2048 + 999) * 57_344
    pushed = response["HX-Push-Url"]
    assert "images_per_request=1" in pushed
    assert "image_height=1024" in pushed and "image_width=768" in pushed


def test_it_asks_for_the_image_size_where_the_tokens_follow_it(client):
    content = client.get("/", query(images_per_request=1), headers=HTMX).content.decode()
    assert "image_height" in content and "image_width in pixels" in content


def test_a_saved_estimate_links_back_with_its_images(client, alice):
    from calculator import services
    from calculator.calculations import calculation_run
    from calculator.views.estimates import calculator_url_for_estimate

    payload = {
        "model": {"hf_config": QWEN2_5_VL},
        "images_per_request": 1,
        "image_height": 1024,
        "image_width": 768,
    }
    calculation = calculation_run(user=alice, payload=payload)
    estimate = services.estimate_save(user=alice, calculation=calculation, title="With an image")
    url = calculator_url_for_estimate(estimate, user=alice)
    assert "images_per_request=1" in url and "image_height=1024" in url
    client.force_login(alice)
    page = client.get(url)
    assert page.context["results"]["result"]["total_bytes"] == estimate.total_bytes
