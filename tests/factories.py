"""factory_boy factories for the domain models; every test builds its own people and items."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from calculator.models import (
    Estimate,
    Membership,
    ModelProfile,
    ProfileSource,
    Role,
    Team,
    Visibility,
)

PASSWORD = "correct horse battery staple"

# A tiny Llama-shaped architecture (contract "architecture" fields): cheap for the engine.
TINY_ARCHITECTURE = {
    "hidden_size": 64,
    "num_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "vocab_size": 1000,
}


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.org")
    password = factory.django.Password(PASSWORD)


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    name = factory.Sequence(lambda n: f"Team {n}")
    slug = factory.Sequence(lambda n: f"team-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    team = factory.SubFactory(TeamFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER


class ModelProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelProfile

    name = factory.Sequence(lambda n: f"Profile {n}")
    owner = factory.SubFactory(UserFactory)
    visibility = Visibility.PRIVATE
    source = ProfileSource.MANUAL
    family = "llama"
    architecture = factory.LazyFunction(lambda: dict(TINY_ARCHITECTURE))
    hf_config = None


class EstimateFactory(factory.django.DjangoModelFactory):
    """A saved estimate with a plausible stored result; its numbers are not engine output and
    tests must not read them as such."""

    class Meta:
        model = Estimate

    owner = factory.SubFactory(UserFactory)
    visibility = Visibility.PRIVATE
    profile = None
    model_name = "Tiny Llama"
    title = factory.Sequence(lambda n: f"Estimate {n}")
    mode = "inference"
    method = "detailed"
    inputs = factory.LazyFunction(
        lambda: {
            "model": {"architecture": dict(TINY_ARCHITECTURE)},
            "mode": "inference",
            "method": "detailed",
            "batch_size": 1,
            "sequence_length": 2048,
        }
    )
    architecture = factory.LazyFunction(lambda: {"architecture": dict(TINY_ARCHITECTURE)})
    result = factory.LazyFunction(
        lambda: {
            "breakdown": {
                "weights": 1000,
                "kv_cache": 200,
                "activations": 30,
                "gradients": 0,
                "optimizer_states": 0,
                "runtime_overhead": 4,
            },
            "total_bytes": 1234,
        }
    )
    total_bytes = 1234
    num_gpus = 1
    engine_version = "test"
