"""Measured runs follow the estimate's access table (docs/design.md): whoever may read the
estimate sees its runs; only those who may write it (its owner, a team owner for a team item)
attach one; only a run's owner deletes it. Checked on the page and the API, for the owner, a
teammate, an outsider and anonymous visitors, and again after a queryset `.update()` of the
rows that decide access and after a deactivation."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from calculator.api.tokens import api_token_create
from calculator.domain import evidence, services
from calculator.models import Estimate, MeasuredRun, Membership, Role, Visibility
from tests.factories import EstimateFactory
from tests.runs.test_parsers import VLLM_V0_LOG
from tests.security.test_object_access import VISIBILITIES, api, browser, people, readers


def _run(estimate: Estimate, owner) -> MeasuredRun:
    return services.measured_run_attach(
        user=owner, estimate=estimate, measured=evidence.parse(VLLM_V0_LOG), raw_text=VLLM_V0_LOG
    )


def _reads(user, estimate: Estimate, run: MeasuredRun) -> tuple[int, int, int, bool]:
    page = browser(user).get(f"/e/{estimate.public_id}/")
    return (
        browser(user).get(f"/e/{estimate.public_id}/runs/{run.pk}/").status_code,
        api(user).get(f"/api/v1/estimates/{estimate.public_id}/runs/").status_code,
        api(user).get(f"/api/v1/estimates/{estimate.public_id}/runs/{run.pk}/").status_code,
        page.status_code == 200 and f'id="run-{run.pk}"' in page.content.decode(),
    )


def _attach(user, estimate: Estimate) -> tuple[int, int]:
    """(page status, API status) of attaching the vLLM log."""
    page = browser(user).post(
        f"/e/{estimate.public_id}/runs/new/", {"source_format": "auto", "text": VLLM_V0_LOG}
    )
    response = api(user).post(
        f"/api/v1/estimates/{estimate.public_id}/runs/", {"text": VLLM_V0_LOG}, format="json"
    )
    return page.status_code, response.status_code


@pytest.mark.parametrize("visibility", VISIBILITIES)
def test_whoever_reads_the_estimate_sees_its_runs(world, visibility):
    estimate = world.estimates[visibility]
    run = _run(estimate, world.alice)
    assert _reads(world.alice, estimate, run) == (200, 200, 200, True)
    for who, user in people(world).items():
        if readers(world, visibility)[who]:
            assert _reads(user, estimate, run) == (200, 200, 200, True), who
        else:
            assert _reads(user, estimate, run) == (404, 404, 404, False), who


@pytest.mark.parametrize("visibility", VISIBILITIES)
def test_only_writers_attach(world, visibility):
    estimate = world.estimates[visibility]
    assert _attach(world.alice, estimate) == (302, 201)
    for who, user in people(world).items():
        page, response = _attach(user, estimate)
        if who == "anonymous":
            assert (page, response) == (302, 401)  # the login page; before any lookup
            assert (
                browser(None)
                .post(f"/e/{estimate.public_id}/runs/new/")
                .url.startswith("/accounts/login/")
            )
        elif readers(world, visibility)[who]:
            assert (page, response) == (404, 403), who  # readable: the API may say "not yours"
        else:
            assert (page, response) == (404, 404), who
    assert estimate.runs.count() == 2  # Alice's two
    assert set(estimate.runs.values_list("owner__username", flat=True)) == {"alice"}


def test_a_team_owner_attaches_to_a_member_s_team_estimate(world):
    estimate = EstimateFactory(owner=world.bob, visibility=Visibility.TEAM, team=world.team)
    assert _attach(world.alice, estimate) == (302, 201)  # Alice owns the team
    assert _attach(world.charlie, estimate) == (404, 404)
    assert estimate.runs.filter(owner=world.alice).count() == 2


def test_only_the_run_s_owner_deletes_it(world):
    estimate = EstimateFactory(owner=world.bob, visibility=Visibility.TEAM, team=world.team)
    run = _run(estimate, world.alice)  # the team owner's run on Bob's estimate
    url = f"/e/{estimate.public_id}/runs/{run.pk}/delete/"
    api_url = f"/api/v1/estimates/{estimate.public_id}/runs/{run.pk}/"
    assert browser(world.bob).post(url).status_code == 404  # the estimate's owner, not the run's
    assert api(world.bob).delete(api_url).status_code == 403
    assert api(world.charlie).delete(api_url).status_code == 404
    assert api(None).delete(api_url).status_code == 401
    assert browser(None).post(url).status_code == 302
    assert MeasuredRun.objects.filter(pk=run.pk).exists()
    assert browser(world.alice).post(url).status_code == 302
    assert not MeasuredRun.objects.filter(pk=run.pk).exists()


def test_an_estimate_made_private_by_queryset_update_hides_its_runs_at_once(world):
    estimate = world.estimates[Visibility.TEAM]
    run = _run(estimate, world.alice)
    assert _reads(world.bob, estimate, run) == (200, 200, 200, True)
    Estimate.objects.filter(pk=estimate.pk).update(visibility=Visibility.PRIVATE, team=None)
    assert _reads(world.bob, estimate, run) == (404, 404, 404, False)
    assert _reads(world.alice, estimate, run) == (200, 200, 200, True)


def test_a_team_owner_demoted_by_queryset_update_no_longer_attaches(world):
    estimate = EstimateFactory(owner=world.bob, visibility=Visibility.TEAM, team=world.team)
    assert _attach(world.alice, estimate) == (302, 201)
    Membership.objects.filter(user=world.alice, team=world.team).update(role=Role.MEMBER)
    assert _attach(world.alice, estimate) == (404, 403)
    Membership.objects.filter(user=world.alice, team=world.team).delete()
    assert _attach(world.alice, estimate) == (404, 404)
    assert estimate.runs.count() == 2


def test_a_deactivated_owner_neither_attaches_nor_deletes(world):
    estimate = world.estimates[Visibility.PRIVATE]
    run = _run(estimate, world.alice)
    _, key = api_token_create(user=world.alice, name="launcher")
    by_token = APIClient()
    by_token.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    page = browser(world.alice)
    runs_url = f"/api/v1/estimates/{estimate.public_id}/runs/"
    assert page.get(f"/e/{estimate.public_id}/runs/new/").status_code == 200
    assert by_token.get(runs_url).status_code == 200
    get_user_model().objects.filter(pk=world.alice.pk).update(is_active=False)
    response = page.post(f"/e/{estimate.public_id}/runs/new/", {"text": VLLM_V0_LOG})
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")
    response = page.post(f"/e/{estimate.public_id}/runs/{run.pk}/delete/")
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")
    assert by_token.post(runs_url, {"text": VLLM_V0_LOG}, format="json").status_code == 401
    assert by_token.delete(f"{runs_url}{run.pk}/").status_code == 401
    assert estimate.runs.count() == 1
