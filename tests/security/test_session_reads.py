"""The session and the signed-in user are read with one plain statement each
(calculator/sessions.py, calculator/backends.py): the same rows and the same refusals as
Django's own database sessions and ModelBackend."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from calculator.backends import AccountBackend
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
