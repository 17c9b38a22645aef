"""The Content-Security-Policy as a browser enforces it: Debian's chromium reports no violation
on the calculator (with an htmx update and its charts), the compare chart, the login page,
Swagger UI and the admin; the policy does block an inline script that an attacker would add."""

from __future__ import annotations

import pytest

from tests.chromium import BROWSER_TEST_MARKS
from tests.factories import PASSWORD, EstimateFactory, UserFactory

pytestmark = BROWSER_TEST_MARKS

# Runs before any page script (injected by the browser, so the page's CSP does not apply to it)
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(event.violatedDirective + " " + (event.blockedURI || "inline"));
});
"""


@pytest.fixture
def page(browser, live_server, catalog):
    context = browser.new_context()
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    page.set_default_timeout(15_000)
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    page.recorded_console = messages
    yield page
    context.close()


def violations(page) -> list[str]:
    recorded = page.evaluate("window.cspViolations")
    console = [text for text in page.recorded_console if "Content Security Policy" in text]
    return recorded + console


def log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("main form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def test_the_calculator_and_its_htmx_updates_break_no_rule(page, live_server):
    page.goto(f"{live_server.url}/?catalog=meta-llama/Llama-3.1-8B&batch_size=1")
    assert page.locator("svg").count() > 0  # the charts are drawn
    with page.expect_response(lambda response: "batch_size=4" in response.url):
        page.fill("#id_batch_size", "4")
        page.locator("#id_batch_size").dispatch_event("change")
    page.wait_for_timeout(300)
    assert page.evaluate("typeof htmx") == "object"  # htmx ran, from our own static files
    assert violations(page) == []


def test_pages_swagger_ui_and_the_admin_break_no_rule(page, live_server):
    alice = UserFactory(username="alice", is_staff=True, is_superuser=True)
    first, second = EstimateFactory(owner=alice), EstimateFactory(owner=alice)
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .info", timeout=15_000)  # Swagger UI rendered the schema
    log_in(page, live_server, "alice")
    for path in (
        f"/compare/?ids={first.public_id},{second.public_id}",
        "/history/",
        "/profiles/",
        "/teams/",
        "/admin/",
        "/admin/calculator/estimate/",
        f"/admin/calculator/estimate/{first.pk}/change/",
    ):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("load")
        assert violations(page) == [], path


def test_an_injected_inline_script_would_be_blocked(page, live_server):
    page.goto(f"{live_server.url}/accounts/login/")
    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.injected = true";
          document.body.appendChild(script);
        }"""
    )
    page.wait_for_timeout(200)
    assert page.evaluate("window.injected === true") is False
    assert any("script-src" in violation for violation in violations(page))
