from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from tests.factories import PASSWORD

NEW_PASSWORD = "another long passphrase 42"


@pytest.mark.django_db
def test_it_signs_up_and_logs_in(client):
    response = client.post(
        "/accounts/signup/",
        {"username": "dora", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert get_user_model().objects.filter(username="dora").exists()
    page = client.get("/")
    assert "Welcome, dora: your account is ready." in page.text
    assert page.context["user"].is_authenticated
    # signed in on every later request too, not only on the one that shows the welcome
    assert client.get("/history/").status_code == 200
    assert "Log out" in client.get("/").text


@pytest.mark.django_db
def test_it_rejects_mismatched_passwords(client):
    response = client.post(
        "/accounts/signup/",
        {"username": "dora", "password1": NEW_PASSWORD, "password2": "something else 99"},
    )
    assert response.status_code == 200
    assert not get_user_model().objects.filter(username="dora").exists()
    assert "password fields didn" in response.content.decode()


@pytest.mark.django_db
def test_it_hides_signup_when_turned_off(client, settings):
    settings.ALLOW_SIGNUP = False
    assert client.get("/accounts/signup/").status_code == 404
    response = client.post(
        "/accounts/signup/",
        {"username": "dora", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 404
    assert not get_user_model().objects.filter(username="dora").exists()
    assert 'href="/accounts/signup/"' not in client.get("/accounts/login/").content.decode()


@pytest.mark.django_db
def test_it_links_signup_when_on(client):
    assert 'href="/accounts/signup/"' in client.get("/accounts/login/").content.decode()


def test_it_logs_in(client, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_it_refuses_a_wrong_password(client, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_it_logs_out_with_post_only(client, alice):
    client.force_login(alice)
    assert client.get("/accounts/logout/").status_code == 405
    assert "_auth_user_id" in client.session
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_it_shows_a_logout_form_that_posts(client, alice):
    client.force_login(alice)
    content = client.get("/").content.decode()
    assert 'method="post" action="/accounts/logout/"' in content


def test_it_changes_the_password(client, alice):
    client.force_login(alice)
    assert client.get("/accounts/password/").status_code == 200
    response = client.post(
        "/accounts/password/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/password/done/"
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)


def test_it_asks_anonymous_users_to_log_in_before_changing_a_password(client, db):
    response = client.get("/accounts/password/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_serves_the_admin_to_staff(client, alice):
    alice.is_staff = True
    alice.is_superuser = True
    alice.save()
    client.force_login(alice)
    for path in (
        "/admin/",
        "/admin/calculator/gpu/",
        "/admin/calculator/modelprofile/",
        "/admin/calculator/estimate/",
        "/admin/calculator/team/",
        "/admin/calculator/membership/",
    ):
        assert client.get(path).status_code == 200, path
