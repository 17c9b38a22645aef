"""The permalink's results and inputs are rendered once per estimate and unit, and nothing that
depends on the visitor is kept with them."""

from __future__ import annotations

from unittest import mock

from calculator.web.views import estimates as estimate_views


def _sections(page: bytes) -> bytes:
    return page[page.index(b'<section id="results"') : page.index(b"</main>")]


def test_it_renders_the_saved_results_once_per_estimate_and_unit(visitor_client, estimates):
    client = visitor_client("anonymous")
    url = estimates["link"].get_absolute_url()
    with mock.patch.object(
        estimate_views, "saved_results", wraps=estimate_views.saved_results
    ) as saved_results:
        first = client.get(url)
        second = client.get(url)
        assert saved_results.call_count == 1
        in_gb = client.get(url, {"unit": "GB"})
        assert saved_results.call_count == 2
    # The same sections, byte for byte (the page around them carries a fresh CSRF token).
    assert _sections(first.content) == _sections(second.content)
    # The unit reaches the breakdown table's header.
    assert b'<th scope="col" class="num">GB</th>' in in_gb.content
    assert b'<th scope="col" class="num">GiB</th>' in first.content


def test_the_owner_s_buttons_are_not_kept_for_the_next_visitor(visitor_client, estimates):
    url = estimates["link"].get_absolute_url()
    as_alice = visitor_client("alice").get(url)
    assert b"Edit title, notes, sharing" in as_alice.content
    as_charlie = visitor_client("charlie").get(url)
    assert as_charlie.status_code == 200
    assert b"Edit title, notes, sharing" not in as_charlie.content


def test_a_private_estimate_is_still_404_for_an_outsider_after_its_owner_saw_it(
    visitor_client, estimates
):
    url = estimates["private"].get_absolute_url()
    assert visitor_client("alice").get(url).status_code == 200
    assert visitor_client("charlie").get(url).status_code == 404
    assert visitor_client("anonymous").get(url).status_code == 404


def test_the_inputs_section_lists_the_saved_inputs(visitor_client, estimates):
    # The factory saved batch size 1 and sequence length 2048 (tests/factories.py).
    response = visitor_client("anonymous").get(estimates["link"].get_absolute_url())
    inputs = response.content.split(b'id="inputs-title"')[1]
    assert b"<dd>Tiny Llama</dd>" in inputs
    assert b"<dt>sequence_length</dt><dd>2048</dd>" in inputs
