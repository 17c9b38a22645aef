"""Alice owns things, Bob is her teammate (member of Alice's team), Charlie is an outsider.

The people and the team come from tests/conftest.py; here: their saved things, and a client
for each of the four visitors.
"""

from __future__ import annotations

import pytest

from calculator.models import Visibility
from tests.factories import TINY_ARCHITECTURE, EstimateFactory, ModelProfileFactory, UserFactory

# A tiny Llama-shaped model (the contract's "architecture" fields): cheap for the engine.
# Parameters by hand: embeddings 1000*64 = 64,000; untied lm_head 64,000; per layer
# q 64*64 + k 64*32 + v 64*32 + o 64*64 = 12,288, gated MLP 3*64*128 = 24,576, two RMSNorms
# 2*64 = 128, so 36,992 a layer, 73,984 for two; final norm 64. Total 202,048.
TINY = TINY_ARCHITECTURE
TINY_PARAMETERS = 64_000 + 64_000 + 2 * (12_288 + 24_576 + 128) + 64
# bfloat16 weights: 2 bytes a parameter.
TINY_WEIGHT_BYTES = 2 * TINY_PARAMETERS
# KV cache at batch 1, 2048 tokens, bfloat16: K and V x 2 layers x 2 kv heads x head dim 16
# (64 / 4) x 2048 tokens x 2 bytes.
TINY_KV_CACHE_BYTES = 2 * 2 * 2 * 16 * 2048 * 2

# (who, visibility) -> status of an item's page reached by its address (permalink or profile
# page), from docs/design.md's access table: private items are Alice's alone, team items her team's,
# link items anyone's with the address.
READ_BY_ADDRESS = {
    ("alice", "private"): 200,
    ("alice", "team"): 200,
    ("alice", "link"): 200,
    ("bob", "private"): 404,
    ("bob", "team"): 200,
    ("bob", "link"): 200,
    ("charlie", "private"): 404,
    ("charlie", "team"): 404,
    ("charlie", "link"): 200,
    ("anonymous", "private"): 404,
    ("anonymous", "team"): 404,
    ("anonymous", "link"): 200,
}

VISITORS = ("alice", "bob", "charlie", "anonymous")


@pytest.fixture
def visitor_client(client, alice, bob, charlie):
    """visitor_client("bob") is a test client logged in as Bob; "anonymous" logs nobody in."""
    people = {"alice": alice, "bob": bob, "charlie": charlie, "anonymous": None}

    def login(name: str):
        client.logout()
        if people[name] is not None:
            client.force_login(people[name])
        return client

    return login


@pytest.fixture
def dave(db):
    """Another member of Alice's team who is added by tests that need a second member."""
    return UserFactory(username="dave")


@pytest.fixture
def estimates(alice, bob, team):
    """One estimate per sharing choice, Alice's, and a private one of Bob's."""
    return {
        "private": EstimateFactory(owner=alice, title="Alice private"),
        "team": EstimateFactory(
            owner=alice, title="Alice team", visibility=Visibility.TEAM, team=team
        ),
        "link": EstimateFactory(owner=alice, title="Alice link", visibility=Visibility.LINK),
        "bob_private": EstimateFactory(owner=bob, title="Bob private"),
    }


@pytest.fixture
def profiles(alice, bob, team):
    return {
        "private": ModelProfileFactory(owner=alice, name="Alice private profile"),
        "team": ModelProfileFactory(
            owner=alice, name="Alice team profile", visibility=Visibility.TEAM, team=team
        ),
        "link": ModelProfileFactory(
            owner=alice, name="Alice link profile", visibility=Visibility.LINK
        ),
        "bob_private": ModelProfileFactory(owner=bob, name="Bob private profile"),
    }
