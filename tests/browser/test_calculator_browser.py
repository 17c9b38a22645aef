"""The live calculator in Debian's chromium, driven by Playwright: htmx updates the results
without a page load, keeps the URL in sync, and that URL renders the same numbers."""

from __future__ import annotations

import re

import pytest

from tests.chromium import BROWSER_TEST_MARKS

pytestmark = BROWSER_TEST_MARKS

# Llama 3.1 8B, bfloat16: K and V x 32 layers x 8 kv heads x 128 head dim x 2 bytes = 131,072
# bytes a token; 2,048 tokens x batch 3 x 131,072 = 805,306,368 bytes of KV cache.
KV_BATCH_3 = "805,306,368"
KV_BATCH_1 = "268,435,456"


@pytest.fixture
def page(browser, live_server, catalog):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def kv_cache_bytes(page) -> str:
    return page.locator("#row-kv_cache td").nth(1).inner_text()


def test_it_updates_the_results_and_the_url_without_a_page_load(page, live_server):
    page.goto(f"{live_server.url}/?catalog=meta-llama/Llama-3.1-8B&batch_size=1")
    assert kv_cache_bytes(page) == KV_BATCH_1
    # A full page load would wipe this variable; htmx swaps only the results.
    page.evaluate("window.pageMarker = 'still here'")

    page.fill("#id_batch_size", "3")
    page.wait_for_url(re.compile(r"batch_size=3"))
    page.wait_for_function(
        "expected => document.querySelector('#row-kv_cache td:nth-of-type(2)')"
        ".textContent.trim() === expected",
        arg=KV_BATCH_3,
    )
    assert page.evaluate("window.pageMarker") == "still here"
    assert "catalog=meta-llama/Llama-3.1-8B" in page.url

    # Opening that URL afresh renders the same numbers on the server.
    url = page.url
    page.reload()
    assert page.evaluate("window.pageMarker") is None
    assert page.url == url
    assert kv_cache_bytes(page) == KV_BATCH_3
    assert page.input_value("#id_batch_size") == "3"


def test_the_fit_across_gpus_is_computed_when_opened(page, live_server):
    page.goto(f"{live_server.url}/?catalog=meta-llama/Llama-3.1-8B&batch_size=1")
    # the whole page holds the fit rows, folded (they open without JavaScript too)
    assert page.locator("#fit-t4").count() == 1
    assert not page.locator("#fit-t4").is_visible()
    # a live update leaves the folded fit empty: its rows are most of the update's work
    page.fill("#id_batch_size", "3")
    page.wait_for_url(re.compile(r"batch_size=3"))
    page.locator("#fit-folded").wait_for(state="attached")
    assert page.locator("#fit-t4").count() == 0
    # opening it updates the results with the rows, and they stay while it is open
    page.click("#fit-all > summary")
    page.locator("#fit-t4").wait_for()
    assert page.input_value("#id_fit") == "1"
    page.fill("#id_batch_size", "4")
    page.wait_for_url(re.compile(r"batch_size=4"))
    page.wait_for_function(
        "() => document.querySelector('#row-kv_cache td:nth-of-type(2)').textContent.trim()"
        " === '1,073,741,824'"
    )  # 4 x 2,048 tokens x 131,072 bytes
    assert page.locator("#fit-t4").is_visible()
    # closed again, the next update folds it ("toggle" is dispatched as a task after the click)
    page.click("#fit-all > summary")
    page.wait_for_function("() => document.querySelector('#id_fit').value === ''")
    page.fill("#id_batch_size", "5")
    page.wait_for_url(re.compile(r"batch_size=5"))
    page.locator("#fit-folded").wait_for(state="attached")
    assert page.locator("#fit-t4").count() == 0


def test_it_shows_field_errors_in_place_of_the_results(page, live_server):
    page.goto(f"{live_server.url}/")
    page.fill("#id_batch_size", "0")
    alert = page.locator("#results [role=alert]")
    alert.wait_for()
    assert "greater than or equal to 1" in alert.inner_text()
    page.fill("#id_batch_size", "1")
    page.locator("#row-kv_cache").wait_for()
    assert kv_cache_bytes(page) == KV_BATCH_1


def test_it_switches_to_training_with_the_tabs(page, live_server):
    page.goto(f"{live_server.url}/")
    assert not page.is_visible("#id_optimizer")
    page.click("label[for=id_mode_1]")
    page.wait_for_url(re.compile(r"mode=training"))
    assert page.is_visible("#id_optimizer")
    page.wait_for_function(
        "() => document.querySelector('#row-gradients td:nth-of-type(2)').textContent.trim()"
        " !== '0'"
    )


def test_it_searches_the_catalog_and_switches_model(page, live_server):
    page.goto(f"{live_server.url}/")
    page.fill("#id_catalog_search", "mixtral")
    page.wait_for_function(
        "() => !document.querySelector('#id_catalog option[value=\"google/gemma-2-9b-it\"]')"
    )
    assert "catalog_search" not in page.url  # searching alone does not recalculate
    page.select_option("#id_catalog", "mistralai/Mixtral-8x7B-Instruct-v0.1")
    page.wait_for_url(re.compile(r"catalog=mistralai/Mixtral-8x7B-Instruct-v0.1"))
    page.locator("#results", has_text="Mixtral").wait_for()


def test_it_plans_llamacpp_with_layers_left_in_host_ram(page, live_server):
    page.goto(
        f"{live_server.url}/?catalog=meta-llama/Llama-3.1-8B&mode=serving&batch_size=1"
        "&sequence_length=8192&weight_dtype=gguf_q4_k_m"
    )
    page.select_option("#id_engine", "llama.cpp")
    page.wait_for_url(re.compile(r"engine=llama\.cpp"))
    page.click("#llamacpp-fields summary")
    page.fill("#id_n_gpu_layers", "20")
    page.wait_for_url(re.compile(r"n_gpu_layers=20"))
    headline = page.locator("#serving-headline")
    page.wait_for_function(
        "() => document.querySelector('#serving-headline').textContent.includes('20/33')"
    )
    # 12 of 32 layers, their KV (8192 x 2048 x 2 bytes = 32 MiB a layer) and the token
    # embeddings stay on the CPU: the plan names the host RAM they take
    assert "host RAM" in headline.inner_text()
    row = page.locator("tr", has_text="CPU KV buffer (layers on the CPU)")
    assert row.locator("td").nth(1).inner_text() == f"{12 * 32 * 2**20:,}"
