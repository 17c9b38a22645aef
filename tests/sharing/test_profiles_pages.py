"""Profile pages for the four visitors, config.json import, edit, delete and duplicate."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from calculator.models import ModelProfile, ProfileSource
from tests.factories import ModelProfileFactory
from tests.sharing.conftest import READ_BY_ADDRESS, TINY, TINY_PARAMETERS

CONFIGS = Path(__file__).resolve().parent.parent / "engine" / "fixtures" / "configs"

# (fixture file, published total parameters: safetensors totals on each model's Hugging Face
# page, as recorded with their sources in calculator/data/models.json)
REAL_CONFIGS = [
    ("openai-community--gpt2.json", 124_439_808),
    ("meta-llama--Llama-3.1-8B.json", 8_030_261_248),
    ("mistralai--Mistral-7B-v0.1.json", 7_241_732_096),
    ("google--gemma-2-9b.json", 9_241_705_984),
    ("Qwen--Qwen3-30B-A3B.json", 30_532_122_624),
]


def _catalog():
    return ModelProfileFactory(
        owner=None, source=ProfileSource.CATALOG, slug="x/c", name="Tiny catalog model"
    )


@pytest.mark.parametrize(("who", "visibility"), list(READ_BY_ADDRESS))
def test_it_shows_a_profile_as_the_table_says(who, visibility, visitor_client, profiles):
    profile = profiles[visibility]
    response = visitor_client(who).get(profile.get_absolute_url())
    assert response.status_code == READ_BY_ADDRESS[(who, visibility)]
    if response.status_code == 200:
        assert profile.name in response.text


@pytest.mark.parametrize("who", ["alice", "bob", "charlie", "anonymous"])
def test_the_list_shows_only_what_the_visitor_may_see(who, visitor_client, profiles):
    catalog = _catalog()
    response = visitor_client(who).get(reverse("profile-list"))
    assert response.status_code == 200
    listed = {p.name for p in profiles.values() if p.name in response.text}
    expected = {
        "alice": {"Alice private profile", "Alice team profile", "Alice link profile"},
        "bob": {"Alice team profile", "Bob private profile"},
        "charlie": set(),
        "anonymous": set(),
    }[who]
    assert listed == expected
    assert catalog.name in response.text


def test_the_list_searches_and_filters(visitor_client, profiles):
    client = visitor_client("alice")
    response = client.get(reverse("profile-list"), {"q": "TEAM prof"})
    assert "Alice team profile" in response.text
    assert "Alice private profile" not in response.text
    response = client.get(reverse("profile-list"), {"source": "catalog"})
    assert "Alice team profile" not in response.text


def test_the_list_filter_answers_htmx_with_the_fragment(visitor_client, profiles):
    response = visitor_client("alice").get(
        reverse("profile-list"), {"q": "link"}, headers={"HX-Request": "true"}
    )
    assert "<html" not in response.text
    assert 'id="profile-sections"' in response.text
    assert "Alice link profile" in response.text and "Alice team profile" not in response.text


@pytest.mark.parametrize("name", ["profile-create", "profile-import"])
def test_creating_needs_an_account(name, visitor_client):
    response = visitor_client("anonymous").get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


def test_it_creates_a_profile_from_typed_in_fields(visitor_client, alice):
    data = {"name": "Tiny", "visibility": "private", "default_dtype": "bfloat16", **TINY}
    data["gated_mlp"] = "on"
    response = visitor_client("alice").post(reverse("profile-create"), data)
    profile = ModelProfile.objects.get(name="Tiny")
    assert response.status_code == 302 and response["Location"] == profile.get_absolute_url()
    assert (profile.owner, profile.source) == (alice, "manual")
    assert profile.num_parameters == TINY_PARAMETERS


def test_it_says_which_typed_in_field_is_wrong(visitor_client):
    data = {"name": "Odd", "visibility": "private", "default_dtype": "bfloat16", **TINY}
    data["num_attention_heads"] = 0  # at least one head
    response = visitor_client("alice").post(reverse("profile-create"), data)
    assert response.status_code == 200
    assert response.context["form"].errors["num_attention_heads"]
    assert not ModelProfile.objects.exclude(source=ProfileSource.CATALOG).exists()


@pytest.mark.parametrize(("filename", "published"), REAL_CONFIGS)
def test_it_imports_real_config_files(filename, published, visitor_client):
    text = (CONFIGS / filename).read_text()
    upload = SimpleUploadedFile(filename, text.encode(), content_type="application/json")
    response = visitor_client("alice").post(
        reverse("profile-import"), {"visibility": "private", "config_file": upload}
    )
    assert response.status_code == 302
    profile = ModelProfile.objects.exclude(source=ProfileSource.CATALOG).get()
    assert profile.num_parameters == published
    assert profile.config_json_text == text  # kept verbatim, whitespace and all
    detail = visitor_client("alice").get(profile.get_absolute_url())
    assert f"{published:,}" in detail.text


def test_it_keeps_a_pasted_config_verbatim_and_shows_it(visitor_client):
    text = (CONFIGS / "openai-community--gpt2.json").read_text()
    response = visitor_client("alice").post(
        reverse("profile-import"), {"name": "GPT-2", "visibility": "private", "config_json": text}
    )
    profile = ModelProfile.objects.get(name="GPT-2")
    assert response["Location"] == profile.get_absolute_url()
    assert profile.config_json_text == text
    assert profile.hf_config["n_embd"] == 768
    detail = visitor_client("alice").get(profile.get_absolute_url())
    assert "&quot;summary_type&quot;: &quot;cls_index&quot;" in detail.text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"model_type": "llama",', "Not valid JSON"),
        ("[1, 2, 3]", "must be a JSON object"),
        ('{"model_type": "llama"}', "Unsupported config.json"),
        ("", "Paste a config.json or upload one"),
    ],
)
def test_it_explains_a_bad_config(text, message, visitor_client):
    response = visitor_client("alice").post(
        reverse("profile-import"), {"visibility": "private", "config_json": text}
    )
    assert response.status_code == 200
    assert any(message in error for error in response.context["form"].errors["config_json"])
    assert not ModelProfile.objects.exclude(source=ProfileSource.CATALOG).exists()


def test_it_refuses_an_upload_over_1_mb(visitor_client):
    big = b'{"model_type": "gpt2", "padding": "' + b"x" * 1_048_576 + b'"}'
    upload = SimpleUploadedFile("config.json", big, content_type="application/json")
    response = visitor_client("alice").post(
        reverse("profile-import"), {"visibility": "private", "config_file": upload}
    )
    assert response.status_code == 200
    assert "larger than 1 MB" in str(response.context["form"].errors["config_file"])


# (who, visibility) -> status for edit and delete: only writers get past the 404.
WRITE = {
    ("alice", "private"): True,
    ("alice", "team"): True,
    ("bob", "team"): False,
    ("bob", "link"): False,
    ("charlie", "link"): False,
    ("charlie", "private"): False,
}


@pytest.mark.parametrize(("who", "visibility"), list(WRITE))
def test_only_writers_edit_or_delete(who, visibility, visitor_client, profiles):
    client = visitor_client(who)
    profile = profiles[visibility]
    edit = client.get(reverse("profile-edit", args=[profile.public_id]))
    delete = client.post(reverse("profile-delete", args=[profile.public_id]))
    if WRITE[(who, visibility)]:
        assert edit.status_code == 200
        assert delete.status_code == 302
        assert not ModelProfile.objects.filter(pk=profile.pk).exists()
    else:
        assert (edit.status_code, delete.status_code) == (404, 404)
        assert ModelProfile.objects.filter(pk=profile.pk).exists()


def test_anonymous_writes_go_to_login(visitor_client, profiles):
    profile = profiles["link"]
    response = visitor_client("anonymous").post(reverse("profile-delete", args=[profile.public_id]))
    assert response.status_code == 302 and reverse("login") in response["Location"]
    assert ModelProfile.objects.filter(pk=profile.pk).exists()


def test_catalog_profiles_are_read_only_for_everyone(visitor_client, alice):
    catalog = _catalog()
    client = visitor_client("alice")
    assert client.get(reverse("profile-edit", args=[catalog.public_id])).status_code == 404
    assert client.post(reverse("profile-delete", args=[catalog.public_id])).status_code == 404
    detail = visitor_client("anonymous").get(catalog.get_absolute_url())
    assert detail.status_code == 200
    assert "/?catalog=x%2Fc" in detail.text


def test_it_duplicates_a_catalog_model_into_an_editable_copy(visitor_client, alice):
    catalog = _catalog()
    response = visitor_client("alice").post(reverse("profile-duplicate", args=[catalog.public_id]))
    copy = ModelProfile.objects.get(owner=alice)
    assert response["Location"] == copy.get_absolute_url()
    assert copy.name == "Tiny catalog model (copy)"
    assert (
        visitor_client("alice").get(reverse("profile-edit", args=[copy.public_id])).status_code
        == 200
    )


def test_it_edits_a_typed_in_profile(visitor_client, profiles):
    profile = profiles["private"]
    data = {"name": "Renamed", "visibility": "private", "default_dtype": "bfloat16", **TINY}
    data.update(num_layers=4, gated_mlp="on")
    response = visitor_client("alice").post(reverse("profile-edit", args=[profile.public_id]), data)
    assert response.status_code == 302
    profile.refresh_from_db()
    # Two more layers of 36,992 parameters each (see conftest).
    assert (profile.name, profile.num_parameters) == ("Renamed", TINY_PARAMETERS + 2 * 36_992)


def test_the_detail_lists_only_estimates_the_viewer_can_see(visitor_client, profiles, alice, bob):
    from tests.factories import EstimateFactory

    profile = profiles["team"]
    EstimateFactory(owner=alice, profile=profile, title="Alice's own run")
    EstimateFactory(
        owner=alice, profile=profile, title="Shared run", visibility="team", team=profile.team
    )
    response = visitor_client("bob").get(profile.get_absolute_url())
    assert "Shared run" in response.text and "Alice&#x27;s own run" not in response.text
    assert f"/?profile={profile.pk}" in response.text


def test_it_refuses_a_pasted_config_over_1_mb(visitor_client):
    # Django's request-body limit (DATA_UPLOAD_MAX_MEMORY_SIZE, 1 MB) answers before the form.
    text = '{"model_type": "gpt2", "padding": "' + "x" * 1_048_576 + '"}'
    response = visitor_client("alice").post(
        reverse("profile-import"), {"visibility": "private", "config_json": text}
    )
    assert response.status_code == 400
    assert not ModelProfile.objects.exclude(source=ProfileSource.CATALOG).exists()
