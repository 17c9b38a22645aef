"""The catalogs are read once per process, and read again after a catalog row is saved."""

from __future__ import annotations

import pytest

from calculator.domain.calculations import calculation_run, gpu_catalog
from calculator.engine import EstimateError
from calculator.models import Gpu, ModelProfile, ProfileSource

SLUG = "meta-llama/Llama-3.1-8B"


def test_a_catalog_model_is_read_once(db, django_assert_num_queries):
    calculation_run(user=None, payload={"model": {"catalog": SLUG}})
    with django_assert_num_queries(0):
        calculation_run(user=None, payload={"model": {"catalog": SLUG}, "batch_size": 2})


def test_saving_a_catalog_model_is_seen_at_once(db):
    assert calculation_run(user=None, payload={"model": {"catalog": SLUG}}).resolved.name == (
        "Llama 3.1 8B"
    )
    profile = ModelProfile.objects.get(source=ProfileSource.CATALOG, slug=SLUG)
    profile.name = "Llama 3.1 8B (renamed)"
    profile.save()
    resolved = calculation_run(user=None, payload={"model": {"catalog": SLUG}}).resolved
    assert resolved.name == "Llama 3.1 8B (renamed)"


def test_gpu_prices_edited_in_the_admin_are_seen_at_once(db, django_assert_num_queries):
    gpu = Gpu.objects.order_by("slug").first()
    gpu_catalog()
    with django_assert_num_queries(0):
        gpu_catalog()
    gpu.price_per_hour_usd = 1.25
    gpu.save()
    (fields,) = [fields for fields in gpu_catalog() if fields["slug"] == gpu.slug]
    assert fields["price_per_hour_usd"] == 1.25


def test_an_unknown_slug_is_not_kept(db, django_assert_num_queries):
    for _ in range(2):
        with django_assert_num_queries(1), pytest.raises(EstimateError) as error:
            calculation_run(user=None, payload={"model": {"catalog": "no/such-model"}})
        assert error.value.field == "model.catalog"
