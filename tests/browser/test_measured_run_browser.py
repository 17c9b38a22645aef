"""Issue 20's flow in Debian's chromium: sign in, save an estimate, paste the vLLM log of the same
deployment and read each line's error on the permalink."""

from __future__ import annotations

import pytest

from tests.chromium import BROWSER_TEST_MARKS
from tests.factories import PASSWORD
from tests.runs.test_parsers import VLLM_V0_LOG

pytestmark = BROWSER_TEST_MARKS

GIB = 2**30
# Llama 3.1 8B, bfloat16, batch 1, 2,048 tokens: 131,072 bytes of K and V a token (see
# test_sharing_browser.py) x 2,048 = 268,435,456 bytes = 0.25 GiB. The log's KV cache is 4.36 GiB
# = 4,681,514,353 bytes: 268,435,456 - 4,681,514,353 = -4,413,078,897 bytes = -4.11 GiB, which
# is -94.27 % of the measured figure.
KV_ROW = ["0.25 GiB", "4.36 GiB", "−4.11 GiB", "−94.3 %"]
LOG_WEIGHTS = 16_651_910_329  # "Model loading took 15.5083 GiB" x 2^30


@pytest.fixture
def signed_in(browser, live_server, alice):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("main form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    yield page
    context.close()


def _cells(page, selector: str) -> list[str]:
    return [cell.inner_text().strip() for cell in page.locator(f"{selector} td").all()]


def test_a_pasted_vllm_log_shows_the_error_of_each_line_on_the_permalink(
    signed_in, live_server, catalog
):
    page = signed_in
    page.goto(f"{live_server.url}/?catalog=meta-llama/Llama-3.1-8B&batch_size=1")
    page.click("text=Save this estimate")
    page.fill("#id_save-title", "Llama 8B on our L40S")
    page.click("form[action='/estimates/save/'] button[type=submit]")
    page.wait_for_url(f"{live_server.url}/e/**")
    permalink = page.url.split("#")[0]
    weights = int(page.locator("#row-weights td").nth(1).inner_text().replace(",", ""))
    assert page.locator("text=No measured run yet.").count() == 1

    page.click("text=Attach a measured run")
    page.wait_for_url("**/runs/new/")
    page.fill("#id_text", VLLM_V0_LOG)
    page.click("main form button[type=submit]")
    page.wait_for_url(f"{permalink}#runs")

    run = page.locator("article.measured-run")
    assert run.count() == 1
    assert "vLLM start-up log" in run.locator("h3").inner_text()
    assert "vLLM 0.8.4" in run.inner_text()
    rows = run.locator("tbody tr")
    labels = [row.locator("th").inner_text() for row in rows.all()]
    assert labels == ["Weights", "KV cache", "Activations", "Non-torch / context", "Total"]
    kv = _cells(run, "tbody tr:nth-child(2)")
    assert kv == KV_ROW
    error = (weights - LOG_WEIGHTS) / GIB
    sign = "+" if error > 0 else "−"
    assert _cells(run, "tbody tr:nth-child(1)")[1:3] == [
        "15.51 GiB",
        f"{sign}{abs(error):,.2f} GiB",
    ]
    assert "Attached the measured run." in page.content()
