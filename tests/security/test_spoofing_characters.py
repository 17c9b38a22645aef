"""Bidi controls and other invisible format characters in what one user types and another
reads are refused (issue 19), with a message naming the field: a title, notes, a profile's
name or description, a team's name, an invitation, a run's note, a username at sign-up."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from calculator.domain import services
from calculator.domain.spoofing import spoofing_characters
from calculator.models import Estimate, ModelProfile, Team, Visibility
from tests.factories import TINY_ARCHITECTURE, EstimateFactory, ModelProfileFactory

# "invoice\u202egpj.exe" reads as "invoiceexe.jpg"; an isolate, a zero-width space, a BOM, a tag
SPOOFS = ["invoice\u202egpj.exe", "a\u2066b\u2069", "ad\u200bmin", "\ufeffTeam", "x\U000e0041"]
SAID = "invisible formatting characters"


def test_it_finds_bidi_controls_and_other_invisible_format_characters():
    for code in [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C]:
        assert spoofing_characters(f"a{chr(code)}b") == [chr(code)]
    for text in SPOOFS:
        assert spoofing_characters(text)
    # what writing systems and emoji need stays: ZWNJ in Persian, ZWJ in an emoji family
    for fine in ["می\u200cخواهم", "\U0001f468\u200d\U0001f469\u200d\U0001f467", "Llama 3.1 8B"]:
        assert spoofing_characters(fine) == []


@pytest.mark.parametrize("text", SPOOFS)
def test_the_services_name_the_field(text, alice, team):
    profile = ModelProfileFactory(owner=alice)
    estimate = EstimateFactory(owner=alice)
    attempts = {
        "name": lambda: services.profile_create(
            user=alice, name=text, architecture=dict(TINY_ARCHITECTURE)
        ),
        "description": lambda: services.profile_update(
            user=alice, profile=profile, description=text
        ),
        "title": lambda: services.estimate_update(user=alice, estimate=estimate, title=text),
        "notes": lambda: services.estimate_update(user=alice, estimate=estimate, notes=text),
        "username_or_email": lambda: services.team_invite(
            actor=alice, team=team, username_or_email=text
        ),
    }
    for field, attempt in attempts.items():
        with pytest.raises(ValidationError) as raised:
            attempt()
        assert field in raised.value.message_dict, field
        assert SAID in str(raised.value.message_dict[field])
    with pytest.raises(ValidationError) as raised:
        services.team_create(user=alice, name=f"Team {text}")
    assert "name" in raised.value.message_dict
    with pytest.raises(ValidationError):
        services.profile_update(user=alice, profile=profile, name=text)
    assert not Team.objects.exclude(pk=team.pk).exists()
    assert ModelProfile.objects.get(pk=profile.pk).description == ""


def test_the_pages_show_a_form_error(client, alice, team):
    client.force_login(alice)
    response = client.post(reverse("team-list"), {"name": "Ops\u202e"})
    assert response.status_code == 400 and SAID in response.text
    response = client.post(
        reverse("profile-create"),
        {
            "name": "My\u202emodel",
            "visibility": "private",
            "default_dtype": "bfloat16",
            **{k: str(v) for k, v in TINY_ARCHITECTURE.items()},
        },
    )
    assert SAID in response.text and not ModelProfile.objects.filter(owner=alice).exists()
    estimate = EstimateFactory(owner=alice, title="Plain")
    response = client.post(
        reverse("estimate-edit", args=[estimate.public_id]),
        {"title": "Plain\u2067", "notes": "", "visibility": "private"},
    )
    assert SAID in response.text
    assert Estimate.objects.get(pk=estimate.pk).title == "Plain"
    response = client.post(
        reverse("team-member-add", args=[team.slug]),
        {"username_or_email": "bob\u200b", "role": "member"},
    )
    assert response.status_code == 400 and SAID in response.text


def test_saving_from_the_calculator_says_so(client, alice):
    client.force_login(alice)
    fields = {name: str(value) for name, value in TINY_ARCHITECTURE.items()}
    response = client.post(
        reverse("estimate-save"),
        {
            "model": "architecture",
            **fields,
            "save-title": "Tiny\u202erun",
            "save-visibility": "private",
        },
    )
    messages = " ".join(str(m) for m in get_messages(response.wsgi_request))
    assert SAID in messages or SAID in response.content.decode()
    assert not Estimate.objects.exists()


def test_sign_up_refuses_such_a_username(client, settings, db):
    settings.ALLOW_SIGNUP = True
    password = "a long and unusual passphrase 42"
    response = client.post(
        reverse("signup"),
        {"username": "admin\u202e", "password1": password, "password2": password},
    )
    assert response.status_code == 200
    assert SAID in response.text


def test_the_api_answers_400_naming_the_field(alice):
    api = APIClient()
    api.force_authenticate(alice)
    profile = ModelProfileFactory(owner=alice, visibility=Visibility.PRIVATE)
    estimate = EstimateFactory(owner=alice)
    response = api.patch(
        f"/api/v1/estimates/{estimate.pk}/", {"notes": "ok\u202ekO"}, format="json"
    )
    assert response.status_code == 400 and SAID in response.json()["notes"][0]
    response = api.patch(f"/api/v1/profiles/{profile.pk}/", {"name": "\u2066x"}, format="json")
    assert response.status_code == 400 and SAID in response.json()["name"][0]
    response = api.post(
        "/api/v1/profiles/",
        {"name": "Tiny", "description": "\u200b", "architecture": TINY_ARCHITECTURE},
        format="json",
    )
    assert response.status_code == 400 and SAID in response.json()["description"][0]
    response = api.post(
        "/api/v1/estimates/",
        {"model": {"architecture": TINY_ARCHITECTURE}, "title": "T\u202e"},
        format="json",
    )
    assert response.status_code == 400 and SAID in response.json()["title"][0]
