"""Save an estimate in the browser and open its permalink as a teammate and as an outsider,
each in a fresh browser context (own cookies, own session)."""

from __future__ import annotations

import pytest

from tests.chromium import BROWSER_TEST_MARKS
from tests.factories import PASSWORD

pytestmark = BROWSER_TEST_MARKS

# Llama 3.1 8B, bfloat16, batch 1, 2,048 tokens: K and V x 32 layers x 8 kv heads x 128 head
# dim x 2 bytes = 131,072 bytes a token, x 2,048 tokens = 268,435,456 bytes of KV cache.
KV_CACHE = "268,435,456"


@pytest.fixture
def log_in(browser, live_server):
    """log_in("bob") is a page in a fresh browser context, logged in as Bob."""
    contexts = []

    def open_as(username: str):
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        page.click("main form button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")
        return page

    yield open_as
    for context in contexts:
        context.close()


def test_a_saved_estimate_opens_for_the_teammate_and_not_for_the_outsider(
    log_in, live_server, catalog, team, charlie
):
    alice = log_in("alice")
    alice.goto(f"{live_server.url}/?catalog=meta-llama/Llama-3.1-8B&batch_size=1")
    alice.click("text=Save this estimate")
    alice.fill("#id_save-title", "Llama for the team")
    alice.check("#id_save-visibility_1")  # Team
    alice.select_option("#id_save-team", team.slug)
    alice.click("form[action='/estimates/save/'] button[type=submit]")
    alice.wait_for_url(f"{live_server.url}/e/**")
    permalink = alice.url
    assert alice.locator("h1").inner_text() == "Llama for the team"
    assert alice.locator("#row-kv_cache td").nth(1).inner_text() == KV_CACHE

    bob = log_in("bob")
    response = bob.goto(permalink)
    assert response.status == 200
    assert bob.locator("h1").inner_text() == "Llama for the team"
    assert bob.locator("#row-kv_cache td").nth(1).inner_text() == KV_CACHE
    assert bob.locator("text=Edit title, notes, sharing").count() == 0

    outsider = log_in("charlie")
    response = outsider.goto(permalink)
    assert response.status == 404
    assert "Llama for the team" not in outsider.content()


def test_the_history_filters_swap_the_table_in_place(log_in, live_server, alice):
    from tests.factories import EstimateFactory

    EstimateFactory(owner=alice, title="Llama long context")
    EstimateFactory(owner=alice, title="Qwen short")
    page = log_in("alice")
    page.goto(f"{live_server.url}/history/")
    page.evaluate("window.pageMarker = 'still here'")
    page.fill("#id_q", "qwen")
    page.wait_for_url("**/history/?*q=qwen*")
    page.wait_for_function("() => !document.body.textContent.includes('Llama long context')")
    assert "Qwen short" in page.locator("#history-table").inner_text()
    assert page.evaluate("window.pageMarker") == "still here"


def test_an_invitee_joins_by_accepting_and_then_sees_the_teams_items(
    log_in, live_server, alice, team, charlie
):
    from tests.factories import EstimateFactory

    EstimateFactory(owner=alice, title="The team's plan", visibility="team", team=team)
    owner = log_in("alice")
    owner.goto(f"{live_server.url}{team.get_absolute_url()}")
    owner.fill("#id_username_or_email", "charlie@example.org")
    owner.click("text=Invite")
    owner.wait_for_url(f"{live_server.url}{team.get_absolute_url()}")
    assert "If that user exists, they have been invited" in owner.locator(".messages").inner_text()
    assert "charlie@example.org" in owner.locator("#invitations-title + table").inner_text()

    invitee = log_in("charlie")
    assert invitee.goto(f"{live_server.url}{team.get_absolute_url()}").status == 404
    invitee.goto(f"{live_server.url}/teams/")
    invitee.click("text=You have 1 pending team invitation")
    invitee.wait_for_url(f"{live_server.url}/teams/invitations/")
    assert "Alice's team" in invitee.locator("main table").inner_text()
    invitee.click("main table button:has-text('Accept')")
    invitee.wait_for_url(f"{live_server.url}{team.get_absolute_url()}")
    assert "You joined Alice's team" in invitee.locator(".messages").inner_text()
    assert invitee.locator("text=The team's plan").count() == 1
    invitee.click("text=The team's plan")
    invitee.wait_for_url(f"{live_server.url}/e/**")
    assert invitee.locator("h1").inner_text() == "The team's plan"
