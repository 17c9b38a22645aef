"""expert_parallel on the calculator page: the field, its errors and the pushed link."""

from __future__ import annotations

import pytest

from tests.web.test_calculator import HTMX, breakdown_bytes

MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
QUERY = (
    f"catalog={MIXTRAL}&mode=inference&method=detailed&batch_size=1&sequence_length=1"
    "&num_gpus=8&tensor_parallel=1&pipeline_parallel=1&expert_parallel=8"
)


@pytest.fixture(autouse=True)
def _catalog(catalog):
    """The built-in catalog holds Mixtral-8x7B."""


def test_the_page_offers_expert_parallel_in_the_parallel_fields(client):
    content = client.get("/").content.decode()
    assert 'name="expert_parallel"' in content
    assert "Expert parallel" in content


def test_expert_parallel_round_trips_through_the_pushed_link(client):
    fragment = client.get(f"/?{QUERY}", headers=HTMX)
    assert fragment.status_code == 200
    pushed = fragment["HX-Push-Url"]
    assert "expert_parallel=8" in pushed
    rows = breakdown_bytes(fragment.content.decode())
    # Mixtral-8x7B: 46,702,792,704 parameters, 45,097,156,608 of them routed experts (32 layers x
    # 8 experts x 3 x 4096 x 14336); EP 8 keeps one expert in eight: 7,242,780,672 x 2 bytes
    assert rows["weights"] == 2 * (46_702_792_704 - 45_097_156_608 * 7 // 8)
    page = client.get(pushed)
    assert page.status_code == 200
    assert breakdown_bytes(page.content.decode()) == rows
    assert 'name="expert_parallel" value="8"' in page.content.decode()


def test_expert_parallel_left_at_one_stays_out_of_the_link(client):
    query = QUERY.replace("expert_parallel=8", "expert_parallel=1")
    fragment = client.get(f"/?{query}", headers=HTMX)
    assert "expert_parallel" not in fragment["HX-Push-Url"]


def test_an_invalid_expert_parallel_is_shown_beside_the_field(client):
    content = client.get(
        f"/?{QUERY.replace('expert_parallel=8', 'expert_parallel=3')}", headers=HTMX
    ).content.decode()
    assert 'role="alert"' in content
    assert '<a href="#id_expert_parallel">Expert parallel</a>' in content
    assert "use 8, or 1" in content
