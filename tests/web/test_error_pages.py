from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_it_shows_a_friendly_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert b"Not found" in response.content
    assert b"Back to the calculator" in response.content


def test_it_shows_a_friendly_400_for_a_body_over_one_megabyte(client, alice):
    client.force_login(alice)
    # DATA_UPLOAD_MAX_MEMORY_SIZE is 1 MB (1,048,576 bytes): one byte more is refused.
    response = client.post("/estimates/save/", {"title": "x" * 1_048_577})
    assert response.status_code == 400
    assert b"limited to 1 MB" in response.content


def test_it_renders_the_500_page_without_a_request_context():
    from django.template.loader import get_template

    html = get_template("500.html").render()
    assert "Something went wrong" in html
