"""The session and the signed-in user are read with one plain statement each
(calculator/sessions.py, calculator/auth.py): the same rows and the same refusals as
Django's own database sessions and ModelBackend."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import HASH_SESSION_KEY, get_user_model
from django.contrib.auth.models import Permission
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from calculator.auth import AccountBackend, get_user
from calculator.pagecache import data_version
from calculator.sessions import SessionStore


def _history(client: Client) -> int:
    return client.get(reverse("history")).status_code


def test_a_live_session_signs_the_user_in(alice):
    client = Client()
    client.force_login(alice)
    assert _history(client) == 200


def test_an_expired_session_is_not_read(alice):
    client = Client()
    client.force_login(alice)
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    assert _history(client) == 302  # to the login page


def test_an_unknown_session_key_is_dropped(db):
    store = SessionStore(session_key="x" * 32)
    assert store.load() == {}
    assert store.session_key is None  # a new key is made on save, as Django's store does


def test_a_session_s_data_round_trips(alice):
    store = SessionStore()
    store["answer"] = 42
    store.save()
    assert SessionStore(session_key=store.session_key).load() == {"answer": 42}


def test_the_backend_reads_the_whole_user(alice):
    alice.is_staff = True
    alice.email = "alice@example.com"
    alice.save()
    expected = get_user_model().objects.get(pk=alice.pk)
    user = AccountBackend().get_user(alice.pk)
    fields = [field.attname for field in get_user_model()._meta.concrete_fields]
    assert [getattr(user, name) for name in fields] == [getattr(expected, name) for name in fields]
    assert user._state.adding is False and user._state.db == "default"


def test_the_session_is_read_with_the_data_version(alice):
    store = SessionStore()
    store["answer"] = 42
    store.save()
    reread = SessionStore(session_key=store.session_key)
    reread.load()
    assert reread.data_version == data_version()


def test_the_backend_refuses_inactive_missing_and_malformed_users(alice):
    alice.is_active = False
    alice.save()
    backend = AccountBackend()
    assert backend.get_user(alice.pk) is None
    assert backend.get_user(alice.pk + 1000) is None
    assert backend.get_user("not-a-key") is None


def test_logging_out_ends_the_session_for_every_later_request(alice):
    client = Client()
    client.force_login(alice)
    cookie = client.cookies["sessionid"].value
    client.post(reverse("logout"))
    replay = Client()
    replay.cookies["sessionid"] = cookie  # the old cookie, sent again
    assert _history(replay) == 302


# --- users kept per data version (calculator/auth.py) ------------------------------------------


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_verified_user_is_not_read_again_under_the_same_version(alice, django_assert_num_queries):
    client = _signed_in(alice)
    client.get(reverse("profile-list"))
    with CaptureQueriesContext(connection) as first:
        client.get(reverse("profile-list"))
    reads = [query["sql"] for query in first.captured_queries]
    assert not any('FROM "auth_user"' in sql for sql in reads)
    alice.first_name = "Alicia"
    alice.save()  # a new data version: the next request reads the user again
    with CaptureQueriesContext(connection) as after_change:
        client.get(reverse("profile-list"))
    assert any('FROM "auth_user"' in query["sql"] for query in after_change.captured_queries)


def test_a_password_changed_elsewhere_signs_the_old_session_out(alice):
    client = _signed_in(alice)
    assert _history(client) == 200
    alice.set_password("a-new-long-password")
    alice.save()
    assert _history(client) == 302


def test_a_session_whose_hash_no_longer_matches_is_not_given_the_kept_user(alice):
    client = _signed_in(alice)
    assert _history(client) == 200  # alice is kept now
    store = SessionStore(session_key=client.cookies["sessionid"].value)
    store[HASH_SESSION_KEY] = "0" * 64
    store.save()
    assert _history(client) == 302


def test_permissions_are_read_afresh_although_the_user_is_kept(alice):
    alice.is_staff = True
    alice.save()
    client = _signed_in(alice)
    assert "Estimates" not in client.get(reverse("admin:index")).text
    # a permission link is not a write of the user row: the data version stays
    alice.user_permissions.add(Permission.objects.get(codename="view_estimate"))
    assert "Estimates" in client.get(reverse("admin:index")).text


def test_each_request_gets_its_own_copy_of_a_kept_user(alice):
    client = _signed_in(alice)
    session_key = client.cookies["sessionid"].value

    def request_user():
        request = RequestFactory().get("/")
        request.session = SessionStore(session_key=session_key)
        return get_user(request)

    request_user()  # verifies alice and keeps her
    first, second = request_user(), request_user()  # both given the kept user
    assert first.pk == second.pk == alice.pk
    first.note = "set in one request"
    assert first is not second and not hasattr(second, "note")
