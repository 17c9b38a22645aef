"""The calculator page: full page, htmx fragment, no-JavaScript GET and bad input.

Expected numbers are worked out by hand in each test from published figures:
Llama 3.1 8B (config.json at meta-llama/Llama-3.1-8B): 32 layers, hidden 4096, 32 attention
heads, 8 key/value heads, head_dim 128, MLP 14336, vocabulary 128256, untied, bfloat16;
8,030,261,248 parameters (model card, safetensors total).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import ModelProfileFactory

LLAMA_SLUG = "meta-llama/Llama-3.1-8B"
LLAMA_PARAMETERS = 8_030_261_248
# K and V x 32 layers x 8 kv heads x 128 head dim x 2 bytes (bfloat16) = 131,072 bytes a token
LLAMA_KV_BYTES_PER_TOKEN = 2 * 32 * 8 * 128 * 2
# 2,048 tokens x 131,072 bytes = 268,435,456 bytes
LLAMA_KV_2048 = 268_435_456
# every weight in bfloat16: 8,030,261,248 x 2 bytes
LLAMA_WEIGHTS_BF16 = 16_060_522_496
# The original formulas (seed-formulas.md) for Llama 3.1 8B, bfloat16, batch 1, 2,048 tokens:
# weights 8,030,261,248 x 2 = 16,060,522,496; KV 2 x 2048 x 32 x 4096 x 2 = 1,073,741,824;
# activations 2048 x 4096 x (34 + 5 x 2048 x 32 / 4096) x 4 = 3,825,205,248
LLAMA_STANDARD_TOTAL = 16_060_522_496 + 1_073_741_824 + 3_825_205_248  # 20,959,469,568
HTMX = {"HX-Request": "true"}

# Everything a browser submits from the form untouched (GET, no JavaScript), empty fields too.
BROWSER_QUERY = (
    "model=catalog&catalog=meta-llama%2FLlama-3.1-8B&profile=&hf_config="
    "&num_parameters=&hidden_size=&num_layers=&num_attention_heads=&num_key_value_heads="
    "&head_dim=&intermediate_size=&vocab_size=&gated_mlp=&default_dtype="
    "&num_experts=&num_experts_per_token=&num_shared_experts=&moe_intermediate_size="
    "&num_dense_layers=&q_lora_rank=&kv_lora_rank=&qk_rope_head_dim=&qk_nope_head_dim="
    "&v_head_dim=&sliding_window=&num_sliding_window_layers="
    "&mode=inference&batch_size={batch}&sequence_length=2048&weight_dtype="
    "&method=detailed&kv_cache_dtype=&attention_implementation=flash&runtime_overhead_bytes="
    "&optimizer=adamw&finetuning=full&lora_rank=16&trainable_percent=100"
    "&num_gpus=1&tensor_parallel=1&pipeline_parallel=1&zero_stage=0&unit=GiB"
)


def breakdown_bytes(content: str) -> dict[str, int]:
    """The bytes column of the breakdown table, by row id."""
    rows = re.findall(
        r'<tr id="row-(\w+)">.*?<td class="num">[^<]*</td><td class="num">([\d,]+)</td>', content
    )
    return {key: int(value.replace(",", "")) for key, value in rows}


def llama_config() -> dict:
    data = Path(__file__).resolve().parents[2] / "calculator" / "data" / "models.json"
    entries = json.loads(data.read_text())
    return next(entry["config"] for entry in entries if entry["slug"] == LLAMA_SLUG)


@pytest.fixture(autouse=True)
def _catalog(catalog):
    """Every test here reads the built-in catalog."""


def test_it_renders_the_full_page_with_a_default_calculation(client):
    response = client.get("/")
    assert response.status_code == 200
    content = response.content.decode()
    assert "<html" in content
    assert 'id="results"' in content
    assert "Llama 3.1 8B" in content
    assert breakdown_bytes(content)["kv_cache"] == LLAMA_KV_2048


def test_it_wires_the_form_for_htmx_and_for_plain_get(client):
    content = client.get("/").content.decode()
    form = re.search(r"<form id=\"calculator-form\"[^>]*>", content).group(0)
    assert 'method="get"' in form
    assert 'action="/"' in form
    assert 'hx-get="/"' in form
    assert 'hx-push-url="true"' in form
    assert 'hx-target="#results"' in form
    assert 'hx-sync="this:replace"' in form
    assert "input delay:400ms" in form
    assert '<button type="submit">Calculate</button>' in content
    # htmx comes from the django-htmx package, never from a CDN
    assert re.search(r'<script src="/static/django_htmx/htmx[^"]*\.js"', content)
    assert "https://" not in "".join(re.findall(r"<script[^>]*>", content))
    assert 'hx-headers=\'{"X-CSRFToken": ' in content


def test_it_shows_hand_computed_numbers_for_llama(client):
    content = client.get(
        f"/?catalog={LLAMA_SLUG}&mode=inference&batch_size=1&sequence_length=2048"
    ).content.decode()
    rows = breakdown_bytes(content)
    assert rows["kv_cache"] == 2048 * LLAMA_KV_BYTES_PER_TOKEN == LLAMA_KV_2048
    assert rows["weights"] == LLAMA_WEIGHTS_BF16
    assert rows["gradients"] == 0
    assert rows["optimizer_states"] == 0
    assert "268,435,456" in content
    assert "8,030,261,248" in content  # the exact parameter count
    assert "8.03B" in content
    # 268,435,456 / 1024**3 = 0.25 GiB exactly
    assert '<td class="num">0.25 GiB</td><td class="num">268,435,456</td>' in content


def test_it_shows_the_other_methods_total_beside(client):
    content = client.get(f"/?catalog={LLAMA_SLUG}&batch_size=1&sequence_length=2048").content
    # 20,959,469,568 / 1024**3 = 19.5200...
    assert LLAMA_STANDARD_TOTAL == 20_959_469_568
    assert "Standard (original formulas):" in content.decode()
    assert "19.52 GiB</a>" in content.decode()


def test_it_shows_the_standard_method_with_the_detailed_total_beside(client):
    content = client.get(
        f"/?catalog={LLAMA_SLUG}&method=standard&batch_size=1&sequence_length=2048"
    ).content.decode()
    rows = breakdown_bytes(content)
    assert rows["kv_cache"] == 1_073_741_824
    assert rows["activations"] == 3_825_205_248
    assert sum(rows.values()) == LLAMA_STANDARD_TOTAL
    assert "Detailed:" in content


def test_it_renders_only_the_fragment_for_htmx(client):
    response = client.get(f"/?catalog={LLAMA_SLUG}&batch_size=1", headers=HTMX)
    assert response.status_code == 200
    content = response.content.decode()
    assert "<html" not in content
    assert "<form" not in content
    assert content.strip().startswith('<section id="results"')
    assert breakdown_bytes(content)["kv_cache"] == LLAMA_KV_2048


def test_it_pushes_the_shortest_link_to_the_calculation(client):
    response = client.get("/?" + BROWSER_QUERY.format(batch=4), headers=HTMX)
    assert response["HX-Push-Url"] == (
        "/?catalog=meta-llama/Llama-3.1-8B&mode=inference&method=detailed"
        "&batch_size=4&sequence_length=2048"
    )


def test_it_gives_the_same_numbers_without_javascript(client):
    full = client.get("/?" + BROWSER_QUERY.format(batch=4))
    fragment = client.get("/?" + BROWSER_QUERY.format(batch=4), headers=HTMX)
    pushed = client.get(fragment["HX-Push-Url"])
    assert full.status_code == fragment.status_code == pushed.status_code == 200
    rows = breakdown_bytes(full.content.decode())
    # batch 4: four sequences of 2,048 tokens each hold their own KV cache
    assert rows["kv_cache"] == 4 * LLAMA_KV_2048 == 1_073_741_824
    assert rows == breakdown_bytes(fragment.content.decode())
    assert rows == breakdown_bytes(pushed.content.decode())


def test_it_keeps_the_inputs_in_the_form(client):
    content = client.get("/?" + BROWSER_QUERY.format(batch=4)).content.decode()
    assert re.search(r'<input type="number" name="batch_size" value="4"', content)
    assert '<option value="meta-llama/Llama-3.1-8B" selected>' in content


def test_it_shows_decimal_gigabytes_when_asked(client):
    content = client.get(f"/?catalog={LLAMA_SLUG}&unit=GB").content.decode()
    # 268,435,456 / 10**9 = 0.268 GB; 16,060,522,496 / 10**9 = 16.06 GB
    assert '<td class="num">0.27 GB</td><td class="num">268,435,456</td>' in content
    assert '<td class="num">16.06 GB</td><td class="num">16,060,522,496</td>' in content


def test_it_calculates_a_pasted_config_json(client):
    response = client.get("/", {"model": "hf_config", "hf_config": json.dumps(llama_config())})
    rows = breakdown_bytes(response.content.decode())
    assert rows["kv_cache"] == LLAMA_KV_2048
    assert rows["weights"] == LLAMA_WEIGHTS_BF16


def test_it_calculates_an_architecture_typed_by_hand(client):
    query = {
        "model": "architecture",
        "hidden_size": "4096",
        "num_layers": "32",
        "num_attention_heads": "32",
        "num_key_value_heads": "8",
        "intermediate_size": "14336",
        "vocab_size": "128256",
    }
    content = client.get("/", query).content.decode()
    # embeddings and LM head 2 x 128256 x 4096 = 1,050,673,152; per layer q, o 4096 x 4096,
    # k, v 4096 x 1024, gate/up/down 3 x 4096 x 14336, two norms 2 x 4096 = 218,112,000;
    # x 32 layers = 6,979,584,000; final norm 4096: 8,030,261,248
    assert (
        LLAMA_PARAMETERS
        == 2 * 128256 * 4096
        + 32 * (2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096)
        + 4096
    )
    assert "8,030,261,248" in content
    rows = breakdown_bytes(content)
    assert rows["kv_cache"] == LLAMA_KV_2048
    assert rows["weights"] == LLAMA_WEIGHTS_BF16


def test_it_reproduces_the_original_apps_training_example(client):
    # seed-formulas.md worked example: 7 B parameters, hidden 4096, 32 layers, 32 heads,
    # float16, AdamW, 100 % trainable, batch 1, 2,048 tokens: 102,898,947,072 bytes (95.83 GiB)
    query = {
        "num_parameters": "7000000000",
        "hidden_size": "4096",
        "num_layers": "32",
        "num_attention_heads": "32",
        "method": "standard",
        "mode": "training",
        "weight_dtype": "float16",
        "optimizer": "adamw",
    }
    content = client.get("/", query).content.decode()
    rows = breakdown_bytes(content)
    assert rows["weights"] == 14_000_000_000
    assert rows["kv_cache"] == 1_073_741_824
    assert rows["activations"] == 3_825_205_248
    assert rows["optimizer_states"] == 56_000_000_000
    assert rows["gradients"] == 28_000_000_000
    assert sum(rows.values()) == 102_898_947_072
    assert "95.83 GiB" in content


def test_it_links_training_fields_only_in_training_mode(client):
    query = BROWSER_QUERY.format(batch=1).replace("mode=inference", "mode=training")
    query = query.replace("finetuning=full", "finetuning=lora")
    response = client.get("/?" + query, headers=HTMX)
    assert response.status_code == 200
    assert response["HX-Push-Url"] == (
        "/?catalog=meta-llama/Llama-3.1-8B&mode=training&method=detailed"
        "&batch_size=1&sequence_length=2048&finetuning=lora"
    )
    inference = client.get("/?" + BROWSER_QUERY.format(batch=1), headers=HTMX)
    assert "finetuning" not in inference["HX-Push-Url"]


def test_it_reads_lora_targets_from_repeated_parameters(client):
    response = client.get(
        f"/?catalog={LLAMA_SLUG}&mode=training&finetuning=lora"
        "&lora_target_modules=q_proj&lora_target_modules=v_proj",
        headers=HTMX,
    )
    assert response.status_code == 200
    assert "lora_target_modules=q_proj&lora_target_modules=v_proj" in response["HX-Push-Url"]
    # LoRA rank 16 on q_proj (4096 -> 4096) and v_proj (4096 -> 1024) in 32 layers:
    # 32 x 16 x ((4096 + 4096) + (4096 + 1024)) = 6,815,744 trainable parameters
    assert "6,815,744" in response.content.decode()


def test_it_ignores_stale_values_in_panels_not_in_use(client):
    response = client.get(f"/?model=catalog&catalog={LLAMA_SLUG}&hidden_size=abc&hf_config=[")
    assert breakdown_bytes(response.content.decode())["kv_cache"] == LLAMA_KV_2048


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("batch_size=0", "Ensure this value is greater than or equal to 1."),
        ("batch_size=abc", "Enter a whole number."),
        ("batch_size=", "This field is required."),
        ("sequence_length=-5", "Ensure this value is greater than or equal to 1."),
        ("weight_dtype=bogus", "Select a valid choice. bogus is not one of the available"),
        ("mode=%3Cscript%3E", "Select a valid choice. &lt;script&gt; is not one of"),
        ("model=hf_config&hf_config=not-json", "Not valid JSON (line 1, column 1"),
        ("model=hf_config&hf_config=%5B1%2C2%5D", "config.json must be a JSON object"),
        ("model=hf_config&hf_config=%7B%7D", '<a href="#id_hf_config">config.json</a>'),
        ("catalog=nobody%2Fnothing", "No catalog model"),
        ("tensor_parallel=3&num_gpus=3", "must divide the model&#x27;s 32 attention heads"),
        ("model=architecture&hidden_size=4096", "Layers"),
        # a visitor: saved profiles need an account, whichever id the link holds
        ("model=profile&profile=999999", "saved profiles are for signed-in users"),
        ("profile=abc", "saved profiles are for signed-in users"),
    ],
)
def test_it_shows_errors_in_the_fragment_never_a_500(client, query, message):
    for headers in (HTMX, {}):
        response = client.get(f"/?{query}", headers=headers)
        assert response.status_code == 200
        content = response.content.decode()
        assert 'role="alert"' in content
        assert message in content
        assert 'id="row-kv_cache"' not in content


def test_it_names_the_field_of_an_engine_error(client):
    content = client.get("/?tensor_parallel=3&num_gpus=3", headers=HTMX).content.decode()
    assert '<a href="#id_tensor_parallel">Tensor parallel</a>' in content


def test_it_does_not_push_a_url_for_invalid_input(client):
    response = client.get("/?batch_size=0", headers=HTMX)
    assert response["HX-Push-Url"] == "false"  # the address bar keeps the last good link


def test_it_uses_a_profile_its_owner_may_see(client, alice, charlie):
    profile = ModelProfileFactory(owner=alice, name="Alice's tiny model")
    client.force_login(alice)
    content = client.get(f"/?profile={profile.pk}").content.decode()
    assert "Alice&#x27;s tiny model" in content
    assert 'id="row-kv_cache"' in content
    client.force_login(charlie)
    content = client.get(f"/?profile={profile.pk}").content.decode()
    assert "No profile with this id that you can see." in content
    assert "Alice&#x27;s tiny model" not in content


def test_a_visitor_opening_a_profile_link_is_asked_to_log_in(client, alice):
    profile = ModelProfileFactory(owner=alice, name="Alice's tiny model")
    url = f"/?profile={profile.pk}&batch_size=2"
    page = client.get(url).content.decode()
    notice = page.split('id="profile-sign-in"', 1)[1].split("</p>", 1)[0]
    assert "saved profiles are for signed-in users" in notice
    assert f'href="/accounts/login/?next={quote(url)}"' in notice
    assert "Alice&#x27;s tiny model" not in page and 'id="row-kv_cache"' not in page
    # the live update says it too, in the results
    fragment = client.get(url, headers=HTMX).content.decode()
    assert "saved profiles are for signed-in users: log in to use it." in fragment
    # signed in (as its owner), the same link opens the profile
    client.force_login(alice)
    page = client.get(url).content.decode()
    assert 'id="profile-sign-in"' not in page
    assert "Alice&#x27;s tiny model" in page and 'id="row-kv_cache"' in page


def test_a_signed_in_user_is_told_of_a_profile_they_cannot_see(client, charlie):
    client.force_login(charlie)
    content = client.get("/?model=profile&profile=999999").content.decode()
    assert "No profile with this id that you can see." in content
    assert 'id="profile-sign-in"' not in content


def test_it_answers_other_methods_with_405(client):
    assert client.put("/").status_code == 405
    assert client.delete("/").status_code == 405


def test_a_post_needs_the_csrf_token(db):
    # the live update posts long inputs; a cross-site form must not be able to
    assert Client(enforce_csrf_checks=True).post("/", {"batch_size": "2"}).status_code == 403


def test_it_narrows_the_catalog_select_to_a_search(client):
    response = client.get(
        "/catalog/options/", {"catalog_search": "qwen3", "catalog": LLAMA_SLUG}, headers=HTMX
    )
    assert response.status_code == 200
    content = response.content.decode()
    assert "<html" not in content
    assert content.strip().startswith('<div class="field" id="catalog-field">')
    assert 'value="Qwen/Qwen3-8B"' in content
    assert 'value="Qwen/Qwen3-30B-A3B"' in content
    assert 'value="google/gemma-2-9b-it"' not in content
    # the current choice stays, so narrowing the list never changes the calculation
    assert f'<option value="{LLAMA_SLUG}" selected>' in content


def test_it_says_when_no_model_matches(client):
    content = client.get(
        "/catalog/options/", {"catalog_search": "no-such-model", "catalog": LLAMA_SLUG}
    ).content.decode()
    assert "No other model matches “no-such-model”" in content
    assert f'<option value="{LLAMA_SLUG}" selected>' in content


@pytest.mark.parametrize("search", ["llama 8b", "8B LLAMA", "meta 3.1 8b"])
def test_the_catalog_search_matches_words_in_any_order(client, search):
    content = client.get(
        "/catalog/options/", {"catalog_search": search, "catalog": "Qwen/Qwen3-8B"}
    ).content.decode()
    assert f'value="{LLAMA_SLUG}"' in content
    assert 'value="meta-llama/Meta-Llama-3-70B-Instruct"' not in content  # 70B, not 8B
    assert 'value="mistralai/Mistral-7B-v0.1"' not in content


def test_the_catalog_groups_by_the_names_people_use(client):
    content = client.get(
        "/catalog/options/", {"catalog_search": "gemma 3", "catalog": LLAMA_SLUG}
    ).content.decode()
    assert '<optgroup label="Gemma 3">' in content
    assert "gemma3_text" not in content
    assert 'value="google/gemma-2-9b-it"' not in content  # Gemma 2 holds no "3"


def test_it_narrows_the_select_without_javascript_too(client):
    content = client.get(f"/?catalog={LLAMA_SLUG}&catalog_search=gemma").content.decode()
    assert 'value="google/gemma-3-1b-it"' in content
    assert 'value="mistralai/Mistral-7B-v0.1"' not in content
    assert breakdown_bytes(content)["kv_cache"] == LLAMA_KV_2048


QUERY_NAMES = [
    "model",
    "catalog",
    "profile",
    "hf_config",
    "hidden_size",
    "num_layers",
    "num_attention_heads",
    "num_parameters",
    "mode",
    "method",
    "batch_size",
    "sequence_length",
    "weight_dtype",
    "kv_cache_dtype",
    "attention_implementation",
    "optimizer",
    "finetuning",
    "trainable_percent",
    "lora_rank",
    "lora_target_modules",
    "num_gpus",
    "tensor_parallel",
    "pipeline_parallel",
    "zero_stage",
    "runtime_overhead_bytes",
    "unit",
]
QUERY_VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "0",
            "1",
            "-1",
            "3",
            "1e9",
            "99999999999999999999",
            "nan",
            "training",
            "standard",
            "nf4",
            "qlora",
            "lora",
            "eager",
            "architecture",
            "hf_config",
            "profile",
            "{}",
            "[]",
            '{"model_type": "llama"}',
            "on",
            "GB",
            LLAMA_SLUG,
        ]
    ),
    st.text(max_size=20),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    query=st.dictionaries(st.sampled_from(QUERY_NAMES), QUERY_VALUES, max_size=6),
    htmx=st.booleans(),
)
def test_it_never_answers_an_error_status_to_any_query(client, query, htmx):
    response = client.get("/", query, headers=HTMX if htmx else {})
    assert response.status_code == 200


@pytest.mark.django_db
def test_a_config_json_with_an_integer_too_long_for_python_is_a_form_error(client):
    # Python refuses to read integers of more than 4,300 digits (a ValueError, not a
    # JSONDecodeError); found by the hypothesis run of the calculator page.
    config = '{"hidden_size": ' + "1" * 5000 + "}"
    response = client.get("/", {"model": "hf_config", "hf_config": config}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b"Not valid JSON" in response.content


def test_the_live_update_may_post_long_inputs_and_still_gets_its_link(client, catalog):
    from tests.browser.test_trust_browser import KV_PASTED, pasted_config

    response = client.post(
        "/", {"model": "hf_config", "hf_config": pasted_config(padding=16)}, headers=HTMX
    )
    assert response.status_code == 200
    assert f'<td class="num">{KV_PASTED}</td>' in response.text
    link = response["HX-Push-Url"]
    assert link.startswith("/?hf_config=")
    # the link renders the same calculation on its own
    assert f'<td class="num">{KV_PASTED}</td>' in client.get(link).text


def test_inputs_too_long_for_a_link_are_answered_without_one(client, catalog):
    from calculator.web.views.calculator import MAX_LINK_LENGTH
    from tests.browser.test_trust_browser import KV_PASTED, pasted_config

    config = pasted_config(padding=80)
    assert len(config) > MAX_LINK_LENGTH
    response = client.post("/", {"model": "hf_config", "hf_config": config}, headers=HTMX)
    assert f'<td class="num">{KV_PASTED}</td>' in response.text
    assert response["HX-Push-Url"] == "false"
    assert "too long for a link" in response.text


def test_it_shows_the_published_checkpoint_and_a_way_to_override_it(client):
    # gpt-oss model card: MoE weights in MXFP4, the rest BF16; 60.8 GiB for gpt-oss-120b
    content = client.get("/?catalog=openai/gpt-oss-120b&batch_size=1").content.decode()
    line = re.search(r'<p class="checkpoint" id="published-checkpoint">(.*?)</p>', content, re.S)
    assert line is not None
    assert "Published checkpoint: MXFP4 (experts), bfloat16 elsewhere" in line.group(1)
    assert "<strong>mxfp4</strong>" in line.group(1)
    assert "weight_dtype=bfloat16" in line.group(1)
    headline = re.search(r'id="gpu-headline">([^<]*)<', content)
    assert headline is not None
    assert headline.group(1).startswith("fits 1 × NVIDIA H100")  # the default GPU holds it
    overridden = client.get(
        "/?catalog=openai/gpt-oss-120b&batch_size=1&weight_dtype=bfloat16"
    ).content.decode()
    assert "<strong>bfloat16</strong>" in overridden
    assert "weight_dtype=mxfp4" in overridden
    # every one of the 116,829,156,672 parameters in bfloat16: 2 bytes each
    assert breakdown_bytes(overridden)["weights"] == 116_829_156_672 * 2
    assert "Active, without embeddings" in content


def test_a_model_without_a_quantised_checkpoint_shows_no_checkpoint_line(client):
    content = client.get(f"/?catalog={LLAMA_SLUG}&batch_size=1").content.decode()
    assert 'id="published-checkpoint"' not in content
    # untied: active without embeddings = 8,030,261,248 - 128,256 x 4,096 = 7,504,924,672
    assert "7,504,924,672" in content


def test_the_sharding_framework_is_a_form_choice(client):
    query = f"/?catalog={LLAMA_SLUG}&mode=training&num_gpus=8&zero_stage=3&batch_size=1"
    content = client.get(query + "&sharding=fsdp").content.decode()
    assert "FSDP FULL_SHARD, one unit per decoder layer" in content
    assert '<option value="fsdp" selected>' in content
    # the default names DeepSpeed's own buckets
    assert "DeepSpeed ZeRO-3 (its defaults)" in client.get(query).content.decode()
    bad = client.get(query + "&sharding=megatron").content.decode()
    assert "Select a valid choice. megatron is not one of the available choices." in bad


def test_the_serving_tab_shows_the_engines_plan(client):
    content = client.get(
        f"/?catalog={LLAMA_SLUG}&mode=serving&sequence_length=8192&batch_size=16"
    ).content.decode()
    headline = re.search(r'id="serving-headline">([^<]*)<', content)
    assert headline is not None
    # the default GPU (H100 80GB) holds 16,060,522,496 bytes of weights, vLLM's rotary cache of
    # 131,072 x 128 x 2 = 33,554,432 bytes with them, and many 8k requests
    assert headline.group(1).startswith("vLLM starts on 1 × NVIDIA H100 SXM 80GB:")
    assert f"{16_060_522_496 + 33_554_432:,}" in content  # the weights line of the plan
    assert 'id="serving-performance"' in content
    assert "Per million output tokens" in content


def test_a_serving_plan_without_a_gpu_says_what_is_missing(client):
    content = client.get(f"/?catalog={LLAMA_SLUG}&mode=serving&gpu=").content.decode()
    assert "a serving plan needs a GPU: choose one" in content
    assert 'id="serving-headline"' not in content


def test_a_too_small_gpu_will_not_start(client):
    content = client.get(f"/?catalog={LLAMA_SLUG}&mode=serving&gpu=t4").content.decode()
    assert "vLLM would not start: No available memory for the cache blocks" in content


def test_offloaded_state_is_shown_as_host_ram(client):
    query = (
        f"/?catalog={LLAMA_SLUG}&mode=training&num_gpus=8&zero_stage=2&batch_size=1"
        "&mixed_precision=on&offload=optimizer"
    )
    content = client.get(query).content.decode()
    line = re.search(r'id="host-memory">(.*?)</p>', content)
    assert line is not None
    # 16 B a parameter / 8 ranks: 8,030,261,248 x 2 = 16,060,522,496 B = 14.96 GiB
    assert "<strong>14.96 GiB</strong>" in line.group(1)
    refused = client.get(query.replace("zero_stage=2", "zero_stage=0")).content.decode()
    assert "offloading runs through ZeRO or FSDP" in refused


def test_a_training_result_says_where_its_peak_is(client):
    content = client.get(
        f"/?catalog={LLAMA_SLUG}&mode=training&batch_size=1&sequence_length=128"
    ).content.decode()
    line = re.search(r'id="peak-phase">(.*?)</p>', content)
    assert line is not None and line.group(1).startswith("The peak is at the optimizer step")
    assert 'id="peak-phase"' not in client.get(f"/?catalog={LLAMA_SLUG}").content.decode()


def test_each_line_says_how_far_it_can_be_trusted(client):
    content = client.get(f"/?catalog={LLAMA_SLUG}&batch_size=1").content.decode()
    # the weights are counted exactly; the activations are modelled, with their range
    weights = re.search(r'<tr id="row-weights">.*?<td class="basis">([^<]*)</td>', content)
    assert weights is not None and weights.group(1) == "exact"
    activations = re.search(r'<tr id="row-activations">.*?<td class="basis">([^<]*)</td>', content)
    assert activations is not None and activations.group(1).startswith("modelled: ")
    bounds = re.search(r'id="result-bounds">([^<]*)<', content)
    assert bounds is not None and "published inference measurements" in bounds.group(1)


def test_an_invalid_live_update_keeps_the_last_result_and_names_the_field(client):
    response = client.get(f"/?catalog={LLAMA_SLUG}&batch_size=0", headers=HTMX)
    assert response.status_code == 200
    # nothing is swapped: the last good result stays (the page marks it stale)
    assert response["HX-Reswap"] == "none"
    errors = json.loads(response["HX-Trigger"])["calculator-invalid"]["errors"]
    assert [error["anchor"] for error in errors] == ["id_batch_size"]
    assert "greater than or equal to 1" in errors[0]["message"]
    valid = client.get(f"/?catalog={LLAMA_SLUG}&batch_size=2", headers=HTMX)
    assert "HX-Reswap" not in valid and "HX-Trigger" not in valid


def test_the_serving_plan_draws_speed_against_concurrency(client):
    from calculator.presenters.serving_display import curve_chart

    content = client.get(
        f"/?catalog={LLAMA_SLUG}&mode=serving&sequence_length=8192&batch_size=16"
    ).content.decode()
    assert 'id="serving-chart"' in content
    # the chart's geometry, by hand: x from 0 to 10 (nice step 2), y from 0 to 1,000 (step 200)
    curve = [
        {"concurrency": 1, "output_tokens_per_s": 100.0},
        {"concurrency": 10, "output_tokens_per_s": 900.0},
    ]
    chart = curve_chart(curve, width=560, height=220)
    assert chart is not None
    # plot 72..544 wide, 12..184 high: (1, 100) at 72 + 472 x 1/10 = 119.2, 184 - 172 x 0.1
    assert chart.polyline == "119.2,166.8 544.0,29.2"
    assert chart.limit_x == 544.0 and chart.limit_label == "limit: 10"
    assert curve_chart(curve[:1]) is None


def test_the_serving_tab_sizes_speculative_decoding_and_links_to_it(client):
    query = (
        f"/?catalog={LLAMA_SLUG}&mode=serving&sequence_length=8192&batch_size=1"
        "&speculative_method=eagle&num_speculative_tokens=3&acceptance_rate=0.8"
    )
    response = client.get(query, headers=HTMX)
    content = response.content.decode()
    # the EAGLE head: one Llama 3.1 8B layer (218,112,000) less its input norm (4,096) and fc
    # 2 x 4096 x 4096 + 4096 (33,558,528) = 251,666,432 parameters x 2 bytes
    assert f"{251_666_432 * 2:,}" in content
    # (1 - 0.8^4) / (1 - 0.8) = 2.952 tokens a step
    assert "eagle, k = 3, acceptance 0.8: 2.95 tokens a step" in content
    pushed = response["HX-Push-Url"]
    assert "speculative_method=eagle" in pushed and "num_speculative_tokens=3" in pushed
    assert "acceptance_rate=0.8" in pushed
    assert client.get(pushed).status_code == 200


def test_a_bad_speculative_field_is_shown_beside_it(client):
    content = client.get(
        f"/?catalog={LLAMA_SLUG}&mode=serving&speculative_method=eagle&acceptance_rate=2"
    ).content.decode()
    assert "Ensure this value is less than or equal to 1." in content
    missing = client.get(
        f"/?catalog={LLAMA_SLUG}&mode=serving&speculative_method=draft_model"
        "&num_speculative_tokens=2&draft_model=no/such-model"
    ).content.decode()
    assert "No catalog model &#x27;no/such-model&#x27;." in missing


def test_a_llamacpp_plan_shows_its_buffers_and_host_ram(client):
    query = (
        f"/?catalog={LLAMA_SLUG}&mode=serving&sequence_length=8192&batch_size=1"
        "&engine=llama.cpp&weight_dtype=gguf_q4_k_m&n_gpu_layers=20&cache_type_k=q8_0"
    )
    content = client.get(query).content.decode()
    headline = re.search(r'id="serving-headline">([^<]*)<', content)
    assert headline is not None
    # -ngl 20 of 32 layers: the output layer stays on the CPU, "offloaded 20/33"
    assert headline.group(1).startswith("llama.cpp starts on 1 × NVIDIA H100 SXM 80GB:")
    assert "offloaded 20/33 layers" in headline.group(1)
    assert "Host RAM in all" in content
    # f16 V, q8_0 K: 8192 tokens x 20 layers x (1024 x 2 + 32 x 34) bytes on the GPU
    assert f"{8192 * 20 * (2048 + 1088):,}" in content
    # the permalink carries the llama.cpp fields
    pushed = client.get(query, headers=HTMX)["HX-Push-Url"]
    assert "engine=llama.cpp" in pushed and "n_gpu_layers=20" in pushed
    assert "cache_type_k=q8_0" in pushed
    bad = client.get(query.replace("q8_0", "q3_k")).content.decode()
    assert "Select a valid choice. q3_k is not one of the available choices." in bad


def test_a_plain_mlp_typed_by_hand_keeps_its_mlp_in_the_pushed_link(client):
    # The pushed address wrote gated_mlp= (blank), which the form reads as the gated default:
    # reloading it sized a SwiGLU MLP (3 matrices) instead of the plain one (2).
    query = (
        "/?model=architecture&hidden_size=64&num_layers=2&num_attention_heads=4"
        "&intermediate_size=128&vocab_size=1000&gated_mlp=no&tie_word_embeddings=on"
    )
    pushed = client.get(query, headers=HTMX)["HX-Push-Url"]
    assert "gated_mlp=no" in pushed and "tie_word_embeddings=on" in pushed
    # per layer: attention 4 x 64 x 64 + plain MLP 2 x 64 x 128 + two norms of 64 = 32,896;
    # 2 layers + tied embeddings 1000 x 64 + the final norm 64 = 129,856
    reloaded = client.get(pushed)
    assert reloaded.context["results"]["result"]["parameters"]["total"] == 129_856


@pytest.mark.django_db
def test_the_page_run_holds_the_other_method_and_the_sweep(catalog):
    # issue 17: one call computes what the page shows; each part is what its own call gives
    from calculator.domain.calculations import calculation_run, calculator_page_run
    from calculator.engine import sweep

    payload = {"model": {"catalog": "meta-llama/Llama-3.1-8B"}, "sequence_length": 1000}
    page = calculator_page_run(user=None, payload=payload)
    chosen = calculation_run(user=None, payload=payload).result
    assert page.calculation.result["total_bytes"] == chosen["total_bytes"]
    assert chosen["inputs"]["method"] == "detailed"
    assert page.other_method == "standard"
    standard = calculation_run(user=None, payload={**payload, "method": "standard"}).result
    assert page.other_total_bytes == standard["total_bytes"]
    assert page.other_error is None
    # 24 lengths evenly up to twice the chosen one: 2000 * i / 24 for i = 1..24, and 1000
    assert page.sweep_lengths[:3] == [83, 167, 250]
    assert page.sweep_lengths[-1] == 2000 and 1000 in page.sweep_lengths
    engine_model = page.calculation.resolved.engine_model
    assert page.sweep_totals == sweep(
        {**payload, "model": engine_model}, "sequence_length", page.sweep_lengths
    )
    assert page.sweep_totals[page.sweep_lengths.index(1000)] == chosen["total_bytes"]


@pytest.mark.django_db
def test_each_form_has_its_own_choices(catalog):
    # the choice fields copy their choices per form (forms/contract.py _CopiedChoices) instead
    # of deep-copying them: one form's new choices must still leave the others' alone
    from django.http import QueryDict

    from calculator.web.forms.calculator import CalculatorForm

    first = CalculatorForm.from_query(QueryDict("gpu="))
    second = CalculatorForm.from_query(QueryDict("gpu="))
    first.fields["gpu"].choices = [("", "None"), ("only-one", "Only one")]
    first.fields["mode"].widget.attrs["data-x"] = "1"
    assert len(second.fields["gpu"].choices) > 2
    assert second.fields["gpu"].widget.choices == second.fields["gpu"].choices
    assert first.fields["gpu"].widget.choices == [("", "None"), ("only-one", "Only one")]
    assert "data-x" not in second.fields["mode"].widget.attrs
    assert "data-x" not in CalculatorForm.base_fields["mode"].widget.attrs
    assert first.fields["mode"].choices == CalculatorForm.base_fields["mode"].choices
    assert first.fields["mode"].choices is not CalculatorForm.base_fields["mode"].choices


def test_a_recurrent_models_llamacpp_plan_shows_its_rs_buffer(client):
    # The RS buffer was in the GPU total but had no row: the table did not add up
    query = {
        "model": "hf_config",
        "hf_config": json.dumps({"model_type": "mamba2"}),
        "mode": "serving",
        "engine": "llama.cpp",
        "weight_dtype": "gguf_q4_k_m",
        "sequence_length": "4096",
        "n_parallel": "2",
    }
    content = client.get("/", query).content.decode()
    # Mamba2Config's defaults: 64 layers, r (4 - 1) x (8,192 + 2 x 8 x 128) and s 128 x 8,192
    # float32 values a layer and cell, 2 cells (tests/engine/test_serving_llamacpp.py)
    assert "CUDA0 RS buffer (recurrent states)" in content
    assert f"{2 * 64 * (3 * (8192 + 2 * 8 * 128) * 4 + 128 * 8192 * 4):,}" in content


def test_a_hybrid_models_vllm_plan_says_how_its_blocks_hold_the_state(client):
    from tests.engine.test_serving import QWEN3_NEXT  # noqa: PLC0415

    query = {
        "model": "hf_config",
        "hf_config": json.dumps(QWEN3_NEXT),
        "mode": "serving",
        "sequence_length": "32768",
        "gpu": "h200",
        "gpu_count": "4",
    }
    content = client.get("/", query).content.decode()
    # 36 Gated DeltaNet and 12 attention layers (tests/engine/test_serving.py works the pages)
    assert "36 state layers beside 12 attention layers" in content
