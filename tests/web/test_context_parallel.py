"""context_parallel on the calculator page: the field, the pushed link and the layout label."""

from __future__ import annotations

import pytest

from tests.web.test_calculator import HTMX, breakdown_bytes

LLAMA = "meta-llama/Llama-3.1-8B"
QUERY = (
    f"catalog={LLAMA}&mode=training&method=detailed&batch_size=1&sequence_length=8192"
    "&num_gpus=8&tensor_parallel=2&pipeline_parallel=1&context_parallel=4"
)


@pytest.fixture(autouse=True)
def _catalog(catalog):
    """The built-in catalog holds Llama-3.1-8B."""


def test_the_page_offers_context_parallel_in_the_parallel_fields(client):
    content = client.get("/").content.decode()
    assert 'name="context_parallel"' in content
    assert "Context parallel" in content


def test_context_parallel_round_trips_through_the_pushed_link(client):
    fragment = client.get(f"/?{QUERY}", headers=HTMX)
    assert fragment.status_code == 200
    pushed = fragment["HX-Push-Url"]
    assert "context_parallel=4" in pushed
    rows = breakdown_bytes(fragment.content.decode())
    # the weights are replicated over the context-parallel ranks: as on TP 2 alone
    alone = client.get(
        f"/?{QUERY.replace('num_gpus=8', 'num_gpus=2').replace('&context_parallel=4', '')}",
        headers=HTMX,
    )
    assert breakdown_bytes(alone.content.decode())["weights"] == rows["weights"]
    page = client.get(pushed)
    assert page.status_code == 200
    assert breakdown_bytes(page.content.decode()) == rows
    assert 'name="context_parallel" value="4"' in page.content.decode()


def test_the_gpu_answer_names_the_layout(client):
    content = client.get(f"/?{QUERY}&gpu=h100-sxm&gpu_count=8", headers=HTMX).content.decode()
    assert "TP 2 × CP 4" in content


def test_an_invalid_context_parallel_is_shown_beside_the_field(client):
    content = client.get(
        f"/?{QUERY.replace('sequence_length=8192', 'sequence_length=8190')}", headers=HTMX
    ).content.decode()
    assert 'role="alert"' in content
    assert '<a href="#id_context_parallel">Context parallel</a>' in content
    assert "sequence_length 8,184 or 8,192" in content
