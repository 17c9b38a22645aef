"""What a new user does first, in Debian's chromium: sign up and stay signed in; paste a
config.json (longer than a server accepts in a request line) and see its answer, never the
previous model's; see a failed update said as such; go Back and Forward and get fields and
results that agree."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from tests.chromium import BROWSER_TEST_MARKS

pytestmark = BROWSER_TEST_MARKS

# gunicorn's default limit on a request line (--limit-request-line, 4094 bytes): a GET longer
# than this is refused with 414 before Django sees it.
GUNICORN_DEFAULT_REQUEST_LINE = 4094

# Llama 3.1 8B, bfloat16, batch 1, 2,048 tokens: K and V x 32 layers x 8 kv heads x 128 x 2 bytes
# = 131,072 bytes a token, x 2,048 = 268,435,456; at batch 3, 805,306,368; at batch 5,
# 1,342,177,280.
KV_LLAMA_8B = {1: "268,435,456", 3: "805,306,368", 5: "1,342,177,280"}
# The pasted model below: K and V x 2 layers x 2 kv heads x head dim 16 (64 / 4) x 2,048 tokens
# x 2 bytes (bfloat16) = 524,288 bytes.
KV_PASTED = "524,288"


def pasted_config(padding: int) -> str:
    """A small Llama config.json, made as long as a real one with the fields that real files
    carry and the engine does not read (task_specific_params, as in GPT-2's)."""
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 1000,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-05,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.46.0",
        "task_specific_params": {
            f"task_{n}": {"prefix": "summarize the following text in a few words: " * 2}
            for n in range(padding)
        },
    }
    return json.dumps(config, indent=2)


@pytest.fixture
def page(browser, live_server, catalog):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def kv_cache_bytes(page) -> str:
    return page.locator("#row-kv_cache td").nth(1).inner_text()


def wait_for_kv(page, expected: str) -> None:
    page.wait_for_function(
        "expected => { const cell = document.querySelector('#row-kv_cache td:nth-of-type(2)');"
        " return cell && cell.textContent.trim() === expected; }",
        arg=expected,
    )


def test_signing_up_lands_signed_in(page, live_server):
    page.goto(f"{live_server.url}/accounts/signup/")
    page.fill("#id_username", "dora")
    page.fill("#id_password1", "a long enough passphrase 42")
    page.fill("#id_password2", "a long enough passphrase 42")
    page.click("main form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    assert "Welcome, dora: your account is ready." in page.inner_text(".messages")
    # the next pages too: signed in, not a "Log in" link
    page.goto(f"{live_server.url}/history/")
    assert page.url == f"{live_server.url}/history/"
    assert page.locator("nav button", has_text="Log out").count() == 1
    assert page.locator("nav a", has_text="Log in").count() == 0


def test_a_pasted_config_json_updates_the_answer_within_any_server_s_limits(page, live_server):
    config = pasted_config(padding=16)
    assert len(quote(config)) > GUNICORN_DEFAULT_REQUEST_LINE  # longer than a GET can be
    requests: list[tuple[str, str]] = []
    page.on("request", lambda request: requests.append((request.method, request.url)))
    page.goto(f"{live_server.url}/?catalog=meta-llama/Llama-3.1-8B")
    assert kv_cache_bytes(page) == KV_LLAMA_8B[1]
    page.click("input[name=model][value=hf_config] + label")  # the config.json tab
    page.fill("#id_hf_config", config)
    wait_for_kv(page, KV_PASTED)
    assert "llama · Detailed method" in page.inner_text("#results")
    line_lengths = [len(f"{method} {url} HTTP/1.1") for method, url in requests]
    assert max(line_lengths) < GUNICORN_DEFAULT_REQUEST_LINE, requests
    assert ("POST", f"{live_server.url}/") in requests  # the long inputs went as a body
    # the link in the address bar (the compact config.json) opens the same answer
    page.wait_for_url(re.compile(r"hf_config="))
    page.reload()
    assert kv_cache_bytes(page) == KV_PASTED


def test_inputs_too_long_for_a_link_still_update_and_say_so(page, live_server):
    page.goto(f"{live_server.url}/?catalog=meta-llama/Llama-3.1-8B&batch_size=1")
    address = page.url
    page.click("input[name=model][value=hf_config] + label")
    page.fill("#id_hf_config", pasted_config(padding=80))
    wait_for_kv(page, KV_PASTED)
    assert "too long for a link" in page.inner_text("#results")
    assert page.url == address  # the address bar keeps the last link that opens


def test_a_failed_update_is_said_and_the_old_result_marked_stale(page, live_server):
    page.goto(f"{live_server.url}/?catalog=meta-llama/Llama-3.1-8B&batch_size=1")

    def refuse_htmx(route):
        if route.request.headers.get("hx-request"):
            route.fulfill(status=414, body="Request-URI Too Long")
        else:
            route.continue_()

    page.route("**/*", refuse_htmx)
    page.fill("#id_batch_size", "3")
    error = page.locator("#calculator-update-error")
    error.wait_for(state="visible")
    assert "not updated" in error.inner_text() and "earlier inputs" in error.inner_text()
    assert "stale" in page.get_attribute("#results", "class")
    page.unroute("**/*", refuse_htmx)
    page.fill("#id_batch_size", "5")
    wait_for_kv(page, KV_LLAMA_8B[5])
    assert page.locator("#calculator-update-error").is_hidden()
    page.wait_for_function("() => !document.querySelector('#results').classList.contains('stale')")


def test_back_and_forward_restore_the_fields_with_the_result(page, live_server):
    page.goto(f"{live_server.url}/?catalog=meta-llama/Llama-3.1-8B&batch_size=1")
    for batch in (3, 5):
        page.fill("#id_batch_size", str(batch))
        page.wait_for_url(re.compile(rf"batch_size={batch}"))
        wait_for_kv(page, KV_LLAMA_8B[batch])
    page.go_back()
    page.wait_for_url(re.compile(r"batch_size=3"))
    wait_for_kv(page, KV_LLAMA_8B[3])
    expect(page.locator("#id_batch_size")).to_have_value("3")
    # the next edit computes from what the fields show
    page.fill("#id_sequence_length", "4096")
    page.wait_for_url(re.compile(r"sequence_length=4096"))
    assert "batch_size=3" in page.url
    wait_for_kv(page, "1,610,612,736")  # 805,306,368 x 2: twice the tokens
    page.go_back()
    page.wait_for_url(re.compile(r"batch_size=3&sequence_length=2048"))
    # the address changes first; the page then reloads (htmx refreshOnHistoryMiss) and resets
    # its form: wait for that page, not for the address
    wait_for_kv(page, KV_LLAMA_8B[3])
    expect(page.locator("#id_sequence_length")).to_have_value("2048")
    expect(page.locator("#id_batch_size")).to_have_value("3")


def test_an_invalid_keystroke_keeps_the_last_result_stale_with_the_message_beside_the_field(
    page, live_server
):
    page.goto(f"{live_server.url}/?catalog=meta-llama/Llama-3.1-8B&batch_size=3")
    wait_for_kv(page, KV_LLAMA_8B[3])
    page.fill("#id_batch_size", "0")
    message = page.locator("#live-error-id_batch_size")
    # the form is novalidate: the server's message (Django's min_value), put beside the field
    expect(message).to_contain_text("greater than or equal to 1")
    # the last good result stays, marked stale, and the field says it is invalid
    expect(page.locator("#results")).to_have_class(re.compile(r"\bstale\b"))
    assert kv_cache_bytes(page) == KV_LLAMA_8B[3]
    assert page.get_attribute("#id_batch_size", "aria-invalid") == "true"
    expect(page.locator("#calculator-update-error")).to_contain_text("not updated")
    assert "batch_size=3" in page.url  # the address keeps the last valid inputs
    page.fill("#id_batch_size", "5")
    wait_for_kv(page, KV_LLAMA_8B[5])
    expect(page.locator("#live-error-id_batch_size")).to_have_count(0)
    expect(page.locator("#results")).not_to_have_class(re.compile(r"\bstale\b"))
