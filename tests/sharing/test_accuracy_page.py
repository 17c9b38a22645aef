"""/accuracy/: the measured runs on estimates the visitor may list, grouped, with errors."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from calculator.models import MeasuredRun, RunSource
from tests.factories import EstimateFactory

URL = "/accuracy/"


def _run(estimate, total, *, gpu="NVIDIA H100 80GB HBM3", source=RunSource.VLLM):
    return MeasuredRun.objects.create(
        estimate=estimate, owner=estimate.owner, source_format=source, gpu_name=gpu,
        total_bytes=total,
    )  # fmt: skip


@pytest.fixture
def runs(estimates):
    # the factory's estimates total 1,234 bytes
    return {
        "private": _run(estimates["private"], 1000),  # estimate 23.4 % high
        "team": _run(estimates["team"], 1300),  # 5.1 % low
        "link": _run(estimates["link"], 1234),
        "bob_private": _run(estimates["bob_private"], 1234),
    }


def _points(response):
    return {point.title for point in response.context["points"]}


@pytest.mark.parametrize(
    ("who", "seen"),
    [
        ("alice", {"Alice private", "Alice team", "Alice link"}),
        ("bob", {"Alice team", "Bob private"}),
        ("charlie", set()),
    ],
)
def test_it_shows_the_runs_of_what_the_visitor_may_list(visitor_client, runs, who, seen):
    response = visitor_client(who).get(URL)
    assert response.status_code == 200
    assert _points(response) == seen


def test_anonymous_visitors_are_sent_to_log_in(visitor_client):
    response = visitor_client("anonymous").get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_groups_give_the_median_and_the_worst_error(visitor_client, runs):
    response = visitor_client("alice").get(URL)
    (group,) = response.context["groups"]  # one framework, one GPU, one mode
    # errors: 1,234 / 1,000 - 1 = +23.4 %, 1,234 / 1,300 - 1 = -5.08 %, 0: median 5.1 %
    assert group.count == 3
    assert group.median_display == "5.1%"
    assert group.worst_display == "+23.4%"
    assert group.within_10_percent == 2
    assert 'id="accuracy-groups"' in response.text
    assert "<circle" in response.text  # the scatter


def test_it_filters_and_exports(visitor_client, runs, estimates):
    _run(estimates["private"], 1100, gpu="NVIDIA L4", source=RunSource.LLAMACPP)
    client = visitor_client("alice")
    assert _points(client.get(URL, {"gpu": "l4"})) == {"Alice private"}
    assert len(client.get(URL, {"framework": RunSource.LLAMACPP}).context["points"]) == 1
    assert client.get(URL, {"mode": "training"}).context["points"] == []
    # unknown values are ignored, not a 500
    assert client.get(URL, {"framework": "nope", "mode": "x", "gpu": "a\x00b"}).status_code == 200
    export = client.get(URL, {"format": "csv", "gpu": "l4"})
    assert export["Content-Type"].startswith("text/csv")
    (row,) = list(csv.DictReader(io.StringIO(export.content.decode())))
    assert (row["estimated_bytes"], row["measured_bytes"], row["error"]) == (
        "1234",
        "1100",
        "0.1218",
    )


def test_a_run_without_a_total_is_left_out(visitor_client, estimates):
    MeasuredRun.objects.create(
        estimate=estimates["private"], owner=estimates["private"].owner,
        source_format=RunSource.VLLM, weights_bytes=500,
    )  # fmt: skip
    response = visitor_client("alice").get(URL)
    assert response.context["points"] == []
    assert 'id="accuracy-empty"' in response.text


def test_a_title_a_spreadsheet_would_run_is_quoted(visitor_client, alice):
    _run(EstimateFactory(owner=alice, title="=cmd()"), 1000)
    export = visitor_client("alice").get(URL, {"format": "csv"})
    (row,) = list(csv.DictReader(io.StringIO(export.content.decode())))
    assert row["title"] == "'=cmd()"
