"""Whole permalink and history pages kept per data version (calculator/pagecache.py): a kept
page is served again only while nothing it shows, and nothing that decides who may see it, has
changed; nothing that differs per request or per visitor is kept with it."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.sites import site as admin_site
from django.test import Client, RequestFactory
from django.urls import reverse

from calculator import services
from calculator.admin import EstimateAdmin
from calculator.models import DataVersion, Estimate, Membership, Visibility
from calculator.pagecache import CSRF_PLACEHOLDER, data_version
from tests.factories import EstimateFactory, UserFactory

CSRF_IN_HEADERS = re.compile(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'')


def test_a_kept_permalink_costs_one_query_and_shows_the_same_page(
    visitor_client, estimates, django_assert_num_queries
):
    client = visitor_client("anonymous")
    url = estimates["link"].get_absolute_url()
    first = client.get(url)
    with django_assert_num_queries(1):  # the data version; no session, no estimate
        second = client.get(url)
    assert second.status_code == 200
    token = CSRF_IN_HEADERS.search(first.text).group(1)
    assert first.text == second.text.replace(CSRF_IN_HEADERS.search(second.text).group(1), token)


def test_each_answer_carries_its_own_csrf_token_and_never_the_placeholder(alice, estimates):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    url = estimates["link"].get_absolute_url()
    pages = [client.get(url).text for _ in range(3)]
    tokens = [CSRF_IN_HEADERS.search(page).group(1) for page in pages]
    assert len(set(tokens)) == 3  # masked anew for every response
    assert all(CSRF_PLACEHOLDER not in page for page in pages)
    # the token of a kept page is good for the page's own delete form
    delete = reverse("estimate-delete", args=[estimates["link"].public_id])
    assert client.post(delete, {"csrfmiddlewaretoken": tokens[2]}).status_code == 302
    assert not Estimate.objects.filter(pk=estimates["link"].pk).exists()


def test_a_404_rendered_while_keeping_carries_a_real_token(visitor_client):
    page = visitor_client("anonymous").get(reverse("estimate-permalink", args=["nope"]))
    assert page.status_code == 404
    assert CSRF_PLACEHOLDER not in page.text


def test_making_a_link_estimate_private_ends_the_kept_page_at_once(
    visitor_client, alice, estimates
):
    url = estimates["link"].get_absolute_url()
    assert visitor_client("anonymous").get(url).status_code == 200
    services.estimate_update(user=alice, estimate=estimates["link"], visibility=Visibility.PRIVATE)
    assert visitor_client("anonymous").get(url).status_code == 404


def test_leaving_the_team_ends_a_teammate_s_kept_page(visitor_client, bob, team, estimates):
    url = estimates["team"].get_absolute_url()
    assert visitor_client("bob").get(url).status_code == 200
    services.team_member_remove(actor=bob, membership=Membership.objects.get(user=bob))
    assert visitor_client("bob").get(url).status_code == 404


def test_a_deactivated_account_is_not_answered_from_the_cache(visitor_client, bob, estimates):
    client = visitor_client("bob")
    history = client.get(reverse("history"))
    assert history.status_code == 200
    bob.is_active = False
    bob.save()
    # the session's user is gone: the login page, not Bob's kept history
    assert client.get(reverse("history")).status_code == 302


def test_the_owner_s_page_is_not_kept_for_a_teammate(visitor_client, estimates):
    url = estimates["team"].get_absolute_url()
    assert "Edit title, notes, sharing" in visitor_client("alice").get(url).text
    as_bob = visitor_client("bob").get(url)
    assert as_bob.status_code == 200 and "Edit title, notes, sharing" not in as_bob.text


def test_renaming_the_team_shows_on_a_kept_permalink(visitor_client, team, estimates):
    client = visitor_client("bob")
    url = estimates["team"].get_absolute_url()
    assert "Alice's team" in client.get(url).text.replace("&#x27;", "'")
    team.name = "Inference squad"
    team.save()
    assert "Inference squad" in client.get(url).text


def test_a_teammate_s_new_estimate_reaches_a_kept_history(visitor_client, bob, team, estimates):
    client = visitor_client("alice")
    assert "Shared by Bob" not in client.get(reverse("history")).text
    EstimateFactory(owner=bob, title="Shared by Bob", visibility=Visibility.TEAM, team=team)
    assert "Shared by Bob" in client.get(reverse("history")).text


@pytest.mark.parametrize("how", ["one", "bulk", "admin"])
def test_deleted_estimates_leave_a_kept_history(visitor_client, alice, estimates, how):
    client = visitor_client("alice")
    assert "Alice private" in client.get(reverse("history")).text
    estimate = estimates["private"]
    if how == "one":
        services.estimate_delete(user=alice, estimate=estimate)
    elif how == "bulk":
        assert services.estimate_bulk_delete(user=alice, ids=[estimate.pk]) == 1
    else:
        request = RequestFactory().post("/admin/")
        EstimateAdmin(Estimate, admin_site).delete_queryset(
            request, Estimate.objects.filter(pk=estimate.pk)
        )
    assert "Alice private" not in client.get(reverse("history")).text


def test_htmx_and_full_pages_are_kept_apart(visitor_client, estimates):
    client = visitor_client("alice")
    full = client.get(reverse("history"))
    table = client.get(reverse("history"), headers={"HX-Request": "true"})
    assert "<html" in full.text and "<html" not in table.text
    assert "<html" in client.get(reverse("history")).text


def test_a_page_with_a_message_is_rendered_not_kept(visitor_client, alice, estimates):
    client = visitor_client("alice")
    client.get(reverse("history"))  # kept, without a message
    delete = reverse("estimate-delete", args=[estimates["team"].public_id])
    page = client.post(delete, follow=True)
    assert "Deleted “Alice team”." in page.text
    # shown once: the next visit has no message
    assert "Deleted “Alice team”." not in client.get(reverse("history")).text


def test_logging_in_does_not_change_the_data_version(alice):
    before = data_version()
    client = Client()
    alice.set_password("a-long-test-password")
    alice.save()
    after_password = data_version()
    assert after_password != before  # a full save of the user is a change
    assert client.login(username="alice", password="a-long-test-password")
    assert data_version() == after_password  # login saves last_login alone


def test_without_the_version_row_pages_are_rendered_every_time(
    visitor_client, estimates, django_assert_num_queries
):
    DataVersion.objects.all().delete()  # as a flushed test database has it
    client = visitor_client("anonymous")
    url = estimates["link"].get_absolute_url()
    client.get(url)
    with django_assert_num_queries(2):  # the missing version, then the estimate
        assert client.get(url).status_code == 200
    UserFactory()  # the next write puts the row back
    assert data_version() is not None
