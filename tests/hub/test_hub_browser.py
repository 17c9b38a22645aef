"""A user types a Hugging Face id on the calculator and sees the answer (chromium)."""

from __future__ import annotations

import re

import pytest

from tests.chromium import BROWSER_TEST_MARKS
from tests.hub.standin import TINY_LLAMA, model_repo, tiny_llama_tensors

pytestmark = BROWSER_TEST_MARKS


@pytest.fixture
def page(browser, live_server, catalog):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def test_it_sizes_a_model_typed_by_its_id(page, live_server, hub):
    hub.repos["acme/tiny"] = model_repo(TINY_LLAMA, tiny_llama_tensors())
    page.goto(f"{live_server.url}/")
    page.click("label:has-text('Hugging Face id')")
    page.fill("#id_hub", "acme/tiny")
    page.wait_for_url(re.compile(r"hub=acme/tiny"))
    # bfloat16: 106,816 parameters x 2 bytes
    page.wait_for_function(
        "() => document.querySelector('#row-weights td:nth-of-type(2)')"
        "?.textContent.trim() === '213,632'"
    )
    assert "acme/tiny" in page.inner_text("#results")
    page.reload()  # the link alone gives the same answer
    assert page.input_value("#id_hub") == "acme/tiny"
    assert page.locator("#row-weights td").nth(1).inner_text() == "213,632"
