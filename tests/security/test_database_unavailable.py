"""While the database is down, pages answer a short 503 page and the API a 503 JSON body, with
Retry-After and no traceback; the next request after it returns is served normally."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.db import InterfaceError, OperationalError, ProgrammingError, connection
from django.test import Client

from tests.factories import EstimateFactory


@contextmanager
def database_down(error: type[Exception] = OperationalError):
    """Every query fails as it does while PostgreSQL is stopped."""

    def refuse(execute, sql, params, many, context):
        raise error('connection to server at "127.0.0.1", port 5432 failed: Connection refused')

    with connection.execute_wrapper(refuse):
        yield


@pytest.mark.django_db
@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_a_page_is_a_503_page_without_a_traceback(alice, client, error):
    estimate = EstimateFactory(owner=alice)
    client.force_login(alice)
    with database_down(error):
        response = client.get(f"/e/{estimate.public_id}/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "Back in a moment" in page
    assert "Traceback" not in page and "Connection refused" not in page
    # The database is back: the same request works.
    assert client.get(f"/e/{estimate.public_id}/").status_code == 200


@pytest.mark.django_db
def test_the_api_is_a_503_json_body(catalog):
    client = Client()
    with database_down():
        response = client.get("/api/v1/gpus/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json() == {
        "detail": "The database is unavailable for a moment. Try again in a few seconds."
    }
    assert client.get("/api/v1/gpus/").status_code == 200


@pytest.mark.django_db
def test_the_calculator_with_a_catalog_model_is_a_503_too(catalog, client):
    with database_down():
        response = client.get("/", {"catalog": "meta-llama/Llama-3.1-8B"})
    assert response.status_code == 503


@pytest.mark.django_db
def test_other_database_errors_are_not_dressed_up_as_an_outage(alice, client):
    # A broken query is a bug and stays a 500: only losing the connection is a 503.
    def broken(execute, sql, params, many, context):
        raise ProgrammingError('relation "calculator_estimate" does not exist')

    client.force_login(alice)
    client.raise_request_exception = False
    with connection.execute_wrapper(broken):
        response = client.get("/history/")
    assert response.status_code == 500


class LoseTheDatabaseAfterTheView:
    """A middleware that meets the outage after the view has answered (as a session save or a
    signal handler would)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        self.get_response(request)
        raise OperationalError("server closed the connection unexpectedly")


@pytest.mark.django_db
def test_an_outage_met_outside_the_view_is_a_503_too(client, settings):
    settings.MIDDLEWARE = [f"{__name__}.LoseTheDatabaseAfterTheView", *settings.MIDDLEWARE]
    client.raise_request_exception = False
    page = client.get("/healthz")
    api = client.get("/api/v1/gpus/")
    assert page.status_code == 503
    assert page["Retry-After"] == "5"
    assert "Back in a moment" in page.content.decode()
    assert api.status_code == 503
    assert api.json()["detail"].startswith("The database is unavailable")


@pytest.mark.django_db
def test_other_errors_outside_the_view_stay_a_500(client, settings):
    settings.MIDDLEWARE = [f"{__name__}.BreakAfterTheView", *settings.MIDDLEWARE]
    client.raise_request_exception = False
    assert client.get("/healthz").status_code == 500


class BreakAfterTheView(LoseTheDatabaseAfterTheView):
    def __call__(self, request):
        self.get_response(request)
        raise RuntimeError("a bug")
