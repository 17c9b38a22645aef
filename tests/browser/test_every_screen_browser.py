"""Every screen at a phone's width, in Debian's chromium: no page scrolls sideways (wide tables
scroll inside their own box) and the calculator's answer is in the first screen."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.test import Client

from calculator.domain import evidence, services
from calculator.domain.calculations import calculation_run
from calculator.models import Estimate, Role
from tests.chromium import BROWSER_TEST_MARKS
from tests.factories import (
    PASSWORD,
    EstimateFactory,
    MembershipFactory,
    ModelProfileFactory,
    TeamFactory,
    UserFactory,
)
from tests.runs.test_parsers import VLLM_V0_LOG

pytestmark = BROWSER_TEST_MARKS

# An iPhone 12 to 15 in portrait, CSS pixels; and a laptop.
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1440, "height": 900}

# A long word: team and profile names, titles and model ids come from users and are not
# guaranteed to hold a space where a line could break.
LONG_NAME = "Llama-3.1-70B-Instruct-long-context-sweep-for-the-inference-cluster"

OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"

# For the failure message: the outermost elements that reach past the right edge.
CULPRITS = """() => {
  const edge = window.innerWidth;
  const past = (el) => el.getBoundingClientRect().right > edge + 0.5;
  return Array.from(document.body.querySelectorAll("*"))
    .filter((el) => past(el) && el.parentElement && !past(el.parentElement))
    .slice(0, 5)
    .map((el) => {
      const classes = typeof el.className === "string" ? el.className.trim() : "";
      return el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
        + (classes ? "." + classes.replace(/ +/g, ".") : "")
        + " " + Math.round(el.getBoundingClientRect().right) + "px";
    });
}"""


def session_cookie(user, live_server) -> dict:
    client = Client()
    client.force_login(user)
    return {
        "name": settings.SESSION_COOKIE_NAME,
        "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
        "url": live_server.url,
    }


@pytest.fixture
def phone(browser, live_server, catalog):
    """phone(user=None): a fresh page at 390 x 844, signed in as `user` when given; with
    javascript=False, a browser that runs no scripts."""
    contexts = []

    def open_page(user=None, *, javascript=True, viewport=PHONE):
        context = browser.new_context(viewport=viewport, java_script_enabled=javascript)
        contexts.append(context)
        if user is not None:
            context.add_cookies([session_cookie(user, live_server)])
        page = context.new_page()
        page.set_default_timeout(15_000)
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def data(db, catalog):
    """Alice with a team of two, a profile, two real saved estimates (one inference, one
    training) and a factory-made one: enough for every page to show its tables filled in."""
    alice = UserFactory(username="alice")
    team = TeamFactory(name=LONG_NAME, slug="long-team")
    MembershipFactory(team=team, user=alice, role=Role.OWNER)
    MembershipFactory(team=team, user=UserFactory(username="bob"), role=Role.MEMBER)
    profile = ModelProfileFactory(owner=alice, name=LONG_NAME)
    payloads = [
        {"model": {"catalog": "meta-llama/Llama-3.1-8B"}, "mode": "inference"},
        {"model": {"catalog": "meta-llama/Llama-3.1-8B"}, "mode": "training", "batch_size": 4},
    ]
    estimates = [
        services.estimate_save(
            user=alice,
            calculation=calculation_run(user=alice, payload=payload),
            title=f"{LONG_NAME}-{n}",
            notes=LONG_NAME * 3,
        )
        for n, payload in enumerate(payloads)
    ]
    EstimateFactory(owner=alice, title=LONG_NAME)
    return {"alice": alice, "team": team, "profile": profile, "estimates": estimates}


def assert_no_sideways_scroll(page, url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.status == 200, url
    assert page.url == url, f"{url} went to {page.url}"  # not to the login page
    page.wait_for_load_state("load")
    overflow = page.evaluate(OVERFLOW)
    assert overflow <= 0, f"{url} scrolls sideways by {overflow} px: {page.evaluate(CULPRITS)}"


ANONYMOUS_PAGES = [
    "/",
    "/?catalog=deepseek-ai/DeepSeek-V3&mode=training",
    "/?model=architecture",
    "/accounts/login/",
    "/accounts/signup/",
    "/profiles/",
]


@pytest.mark.parametrize("path", ANONYMOUS_PAGES)
def test_no_page_scrolls_sideways_for_a_visitor(phone, live_server, catalog, path):
    assert_no_sideways_scroll(phone(), live_server.url + path)


@pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["390", "1440"])
def test_no_page_scrolls_sideways_when_signed_in(phone, live_server, data, viewport):
    alice, team, profile = data["alice"], data["team"], data["profile"]
    inference, training = data["estimates"]
    page = phone(alice, viewport=viewport)
    # A measured run: its table on the permalink, its page with the long log lines it kept
    run = services.measured_run_attach(
        user=alice, estimate=inference, measured=evidence.parse(VLLM_V0_LOG), raw_text=VLLM_V0_LOG
    )
    paths = [
        "/?catalog=meta-llama/Llama-3.1-8B",
        "/?catalog=meta-llama/Llama-3.1-8B&mode=training",
        "/?catalog=meta-llama/Llama-3.1-8B&mode=serving&target_output_tokens_per_s=2000",
        "/history/",
        "/accuracy/",  # with the vLLM run attached above
        f"/compare/?ids={inference.public_id},{training.public_id}",
        "/profiles/",
        profile.get_absolute_url(),
        f"{profile.get_absolute_url()}edit/",
        "/profiles/new/",
        "/teams/",
        team.get_absolute_url(),
        inference.get_absolute_url(),
        training.get_absolute_url(),
        f"{inference.get_absolute_url()}edit/",
        f"{inference.get_absolute_url()}runs/new/",
        f"{inference.get_absolute_url()}runs/{run.pk}/",
        "/accounts/tokens/",
        "/accounts/password/",
    ]
    for path in paths:
        assert_no_sideways_scroll(page, live_server.url + path)


def test_a_visitor_following_a_profile_link_is_asked_to_log_in(phone, live_server, data):
    profile = data["profile"]
    page = phone()
    url = f"{live_server.url}/?profile={profile.pk}"
    assert_no_sideways_scroll(page, url)
    notice = page.locator("#profile-sign-in")
    assert "saved profiles are for signed-in users" in notice.inner_text()
    assert "saved profiles are for signed-in users" in page.locator("#results").inner_text()
    notice.get_by_role("link", name="log in").click()
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("main form button[type=submit]")
    page.wait_for_url(url)  # back where the link pointed, now with the profile
    page.locator("#row-kv_cache").wait_for()
    assert page.locator("#profile-sign-in").count() == 0
    assert page.locator("#id_profile").input_value() == str(profile.pk)


@pytest.mark.parametrize("javascript", [True, False])
def test_bulk_delete_asks_first_with_or_without_javascript(phone, live_server, data, javascript):
    inference, training = data["estimates"]
    page = phone(data["alice"], javascript=javascript)
    page.goto(f"{live_server.url}/history/")
    for estimate in (inference, training):
        page.check(f"input[name=ids][value='{estimate.public_id}']")
    page.click("text=Delete selected")
    page.wait_for_url(f"{live_server.url}/history/delete/")
    assert page.locator("h1").inner_text() == "Delete 2 estimates?"
    assert page.evaluate(OVERFLOW) <= 0
    assert Estimate.objects.count() == 3  # nothing deleted before the confirmation
    page.click("#history-delete-confirm button[type=submit]")
    page.wait_for_url(f"{live_server.url}/history/")
    assert "Deleted 2 estimates." in page.locator(".messages").inner_text()
    assert list(Estimate.objects.values_list("title", flat=True)) == [LONG_NAME]


def test_a_failed_save_keeps_the_title_and_notes_in_the_browser(phone, live_server, data):
    page = phone(data["alice"])
    page.goto(f"{live_server.url}/?catalog=meta-llama/Llama-3.1-8B")
    page.click("text=Save this estimate")
    page.fill("#id_save-title", "Serving plan")
    page.fill("#id_save-notes", "For the H100 node\nsecond line")
    page.check("#id_save-visibility_1")  # Team, and no team chosen: refused
    page.click("form[action='/estimates/save/'] button[type=submit]")
    page.wait_for_url(re.compile(r"/\?"))
    assert "Choose the team to share with" in page.locator(".messages").inner_text()
    assert page.input_value("#id_save-title") == "Serving plan"
    assert page.input_value("#id_save-notes") == "For the H100 node\nsecond line"
    # a live update keeps them too
    page.select_option("#id_weight_dtype", "int8")
    page.wait_for_url(re.compile(r"weight_dtype=int8"))
    page.locator("#results", has_text="int8").wait_for()
    assert page.input_value("#id_save-title") == "Serving plan"
    page.select_option("#id_save-team", data["team"].slug)
    page.click("form[action='/estimates/save/'] button[type=submit]")
    page.wait_for_url(f"{live_server.url}/e/**")
    assert page.locator("h1").inner_text() == "Serving plan"


@pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["390", "1440"])
def test_the_gpu_headline_is_in_the_first_screen(phone, live_server, catalog, viewport):
    page = phone(viewport=viewport)
    page.goto(f"{live_server.url}/?catalog=meta-llama/Llama-3.1-8B")
    headline = page.locator("#gpu-headline")
    headline.wait_for()
    box = headline.bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= viewport["height"], box
    assert page.evaluate(OVERFLOW) <= 0


# Counts the calculator's requests as htmx starts them.
COUNT_REQUESTS = """() => {
  window.calculatorRequests = 0;
  document.body.addEventListener("htmx:beforeRequest", (event) => {
    if (event.detail.elt.id === "calculator-form") window.calculatorRequests += 1;
  });
}"""

# Changes a field as a user does (the value, then "input", then "change") and answers how
# many requests had started by the time the events were handled: no timer has run yet.
CHANGE_FIELD = """([selector, typed]) => {
  const field = document.querySelector(selector);
  if (field instanceof HTMLSelectElement) {
    field.selectedIndex = (field.selectedIndex + 1) % field.options.length;
  } else if (field.type === "radio") {
    field.checked = true;
  } else if (field.type === "checkbox") {
    field.checked = !field.checked;
  } else {
    field.value = typed;
  }
  field.dispatchEvent(new Event("input", {bubbles: true}));
  field.dispatchEvent(new Event("change", {bubbles: true}));
  return window.calculatorRequests;
}"""


@pytest.mark.parametrize(
    "selector",
    [
        "#id_weight_dtype",  # a select
        "#id_gpu",  # a select
        "#id_unit_1",  # a radio button
        "#id_method_1",  # a radio button
        "#id_tie_word_embeddings",  # a checkbox
    ],
)
def test_a_choice_updates_at_once(phone, live_server, selector):
    page = phone()
    page.goto(f"{live_server.url}/?catalog=meta-llama/Llama-3.1-8B")
    page.evaluate(COUNT_REQUESTS)
    assert page.evaluate(CHANGE_FIELD, [selector, ""]) == 1
    page.wait_for_function("() => !document.querySelector('.htmx-request')")
    page.wait_for_timeout(600)  # the form's typing delay has passed: no second request
    assert page.evaluate("window.calculatorRequests") == 1


def test_typing_still_waits_for_a_pause(phone, live_server):
    page = phone()
    page.goto(f"{live_server.url}/?catalog=meta-llama/Llama-3.1-8B")
    page.evaluate(COUNT_REQUESTS)
    assert page.evaluate(CHANGE_FIELD, ["#id_batch_size", "3"]) == 0
    page.wait_for_url(re.compile(r"batch_size=3"))
    assert page.evaluate("window.calculatorRequests") == 1


def test_a_picked_option_shows_its_result(phone, live_server):
    page = phone()
    page.goto(f"{live_server.url}/?catalog=meta-llama/Llama-3.1-8B")
    page.select_option("#id_weight_dtype", "int8")
    page.wait_for_url(re.compile(r"weight_dtype=int8"), timeout=2_000)
    page.check("#id_unit_1")
    page.wait_for_url(re.compile(r"unit=GB"), timeout=2_000)


# Every Content-Security-Policy violation the page meets, from its first script on.
WATCH_CSP = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


@pytest.mark.parametrize("path", ["/", "/accounts/login/"])
def test_the_favicon_loads_within_the_csp(phone, live_server, catalog, path):
    page = phone()
    page.add_init_script(WATCH_CSP)
    with page.expect_response(lambda response: "favicon" in response.url) as icon:
        page.goto(live_server.url + path)
    response = icon.value
    assert response.url.endswith(".svg") and response.status == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in response.body()
    page.wait_for_load_state("load")
    assert page.evaluate("window.cspViolations") == []


# The famous models' published checkpoints, by default, as a user opens them (issue 14):
# gpt-oss model card (OpenAI, arXiv:2508.10925, table 1): 60.8 GiB and 12.8 GiB checkpoints,
# MoE weights in MXFP4; DeepSeek-V3 README_WEIGHTS.md: FP8 E4M3 with 128x128 block scales,
# 671B parameters in the main model: a byte each, the embedding and head (129,280 x 7,168
# each) in BF16, so at least 671,026,404,352 + 2 x 926,679,040 bytes and under 0.1 % more.
PUBLISHED_DEFAULTS = [
    ("openai/gpt-oss-120b", "MXFP4 (experts)", 60.8 * 2**30 * 0.995, 60.8 * 2**30 * 1.005),
    ("openai/gpt-oss-20b", "MXFP4 (experts)", 12.8 * 2**30 * 0.99, 12.8 * 2**30 * 1.01),
    (
        "deepseek-ai/DeepSeek-V3",
        "FP8 with 128x128 block scales",
        671_026_404_352 + 2 * 926_679_040,
        (671_026_404_352 + 2 * 926_679_040) * 1.001,
    ),
]


@pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["390px", "1440px"])
@pytest.mark.parametrize(("slug", "published", "low", "high"), PUBLISHED_DEFAULTS)
def test_the_famous_models_open_in_their_published_format(
    phone, live_server, viewport, slug, published, low, high
):
    page = phone(viewport=viewport)
    page.goto(f"{live_server.url}/?catalog={slug}")
    line = page.locator("#published-checkpoint")
    assert f"Published checkpoint: {published}" in line.inner_text()
    weights = page.locator("#row-weights td:nth-of-type(2)").inner_text()
    assert low <= int(weights.replace(",", "")) <= high
    assert page.evaluate(OVERFLOW) <= 0
