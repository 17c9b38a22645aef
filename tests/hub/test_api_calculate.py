"""POST /api/v1/calculate and /api/v1/estimates/ with `model: {"hub": "org/name"}`, against the
stand-in Hub: counts from the safetensors headers, dtypes of quantised checkpoints, and every
failure a 400 naming `model.hub`."""

from __future__ import annotations

import time

import pytest
from rest_framework.test import APIClient

from calculator.models import Estimate
from tests.hub.standin import (
    TINY_LLAMA,
    TINY_LLAMA_PARAMETERS,
    gptq_tiny_llama_tensors,
    model_repo,
    tiny_llama_tensors,
)

pytestmark = pytest.mark.django_db

GPTQ_CONFIG = {
    **TINY_LLAMA,
    "torch_dtype": "float16",
    "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 32},
}


def calculate(model: dict, **fields) -> tuple[int, dict]:
    response = APIClient().post("/api/v1/calculate", {"model": model, **fields}, format="json")
    return response.status_code, response.json()


def test_it_sizes_a_public_model_by_its_id(hub):
    repo = hub.repos["acme/tiny"] = model_repo(TINY_LLAMA, tiny_llama_tensors())
    status, body = calculate({"hub": "acme/tiny"})
    assert status == 200, body
    assert body["parameters"]["total"] == TINY_LLAMA_PARAMETERS
    # bfloat16, as config.json says: 106,816 x 2 bytes
    assert body["breakdown"]["weights"] == 213_632
    assert body["inputs"]["model"] == {"hub": "acme/tiny", "revision": "main"}
    assert body["hub"]["sha"] == repo.sha
    facts = body["hub"]["safetensors"]
    assert facts["parameters"] == TINY_LLAMA_PARAMETERS
    assert facts["parameters_by_dtype"] == {"BF16": TINY_LLAMA_PARAMETERS}
    assert facts["stored_bytes"] == 213_632
    # 1 embedding + 2 x (7 linear + 2 norms) + the final norm + the LM head
    assert facts["num_tensors"] == 21
    assert body["hub"]["parameter_difference"] == 0


def test_it_reads_headers_with_range_requests_only(hub):
    hub.repos["acme/tiny"] = model_repo(TINY_LLAMA, tiny_llama_tensors())
    assert calculate({"hub": "acme/tiny"})[0] == 200
    weights = [
        headers
        for method, path, headers in hub.requests
        if method == "GET" and path.endswith(".safetensors")
    ]
    assert weights
    assert all({key.lower() for key in headers} >= {"range"} for headers in weights)


def test_it_reads_every_shard_of_a_sharded_checkpoint(hub):
    hub.repos["acme/sharded"] = model_repo(TINY_LLAMA, tiny_llama_tensors(), shards=2)
    status, body = calculate({"hub": "acme/sharded"})
    assert status == 200, body
    facts = body["hub"]["safetensors"]
    assert facts["sharded"] is True
    assert facts["num_files"] == 2
    assert facts["parameters"] == TINY_LLAMA_PARAMETERS == body["parameters"]["total"]


def test_it_sizes_a_gptq_checkpoint_from_what_it_stores(hub):
    hub.repos["acme/tiny-gptq"] = model_repo(GPTQ_CONFIG, gptq_tiny_llama_tensors())
    status, body = calculate({"hub": "acme/tiny-gptq"})
    assert status == 200, body
    assert body["inputs"]["weight_dtype"] == "gptq_int4"
    facts = body["hub"]["safetensors"]
    # The linear layers' qweights pack 8 weights an int32: per layer 4,096 + 2 x 2,048 + 4,096
    # + 3 x 8,192 = 36,864, two layers 73,728; embeddings, LM head and 5 norms stay fp16:
    # 2 x 16,384 + 5 x 64 = 33,088. Zeros, scales and g_idx are not parameters.
    assert facts["parameters_by_dtype"] == {"F16": 33_088, "I32": 73_728}
    assert facts["parameters"] == TINY_LLAMA_PARAMETERS == body["parameters"]["total"]


def test_a_given_weight_dtype_wins_over_the_checkpoint(hub):
    hub.repos["acme/tiny-gptq"] = model_repo(GPTQ_CONFIG, gptq_tiny_llama_tensors())
    status, body = calculate({"hub": "acme/tiny-gptq"}, weight_dtype="float16")
    assert status == 200, body
    assert body["inputs"]["weight_dtype"] == "float16"


def test_it_shows_a_difference_from_the_headers(hub):
    # The checkpoint lacks the LM head (256 x 64 = 16,384) that config.json says is untied.
    tensors = tiny_llama_tensors()
    del tensors["lm_head.weight"]
    hub.repos["acme/odd"] = model_repo(TINY_LLAMA, tensors)
    status, body = calculate({"hub": "acme/odd"})
    assert status == 200, body
    assert body["hub"]["safetensors"]["parameters"] == 90_432
    assert body["hub"]["parameter_difference"] == 16_384
    assert any("+16,384" in note for note in body["notes"])


def test_a_repo_without_safetensors_is_counted_from_its_config(hub):
    hub.repos["acme/bin-only"] = model_repo(TINY_LLAMA)
    status, body = calculate({"hub": "acme/bin-only"})
    assert status == 200, body
    assert body["hub"]["safetensors"] is None
    assert body["parameters"]["total"] == TINY_LLAMA_PARAMETERS


def test_a_second_import_asks_the_hub_nothing(hub):
    hub.repos["acme/tiny"] = model_repo(TINY_LLAMA, tiny_llama_tensors())
    assert calculate({"hub": "acme/tiny"})[0] == 200
    hub.requests.clear()
    assert calculate({"hub": "acme/tiny"}, batch_size=4)[0] == 200
    assert hub.requests == []


def test_it_takes_a_revision(hub):
    repo = hub.repos["acme/tiny"] = model_repo(TINY_LLAMA, tiny_llama_tensors())
    status, body = calculate({"hub": "acme/tiny", "revision": repo.sha})
    assert status == 200, body
    assert body["inputs"]["model"] == {"hub": "acme/tiny", "revision": repo.sha}
    status, body = calculate({"hub": "acme/tiny", "revision": "v9"})
    assert status == 400
    assert body == {"model.hub": ["acme/tiny has no revision 'v9' (a branch, tag or commit)."]}


def test_a_missing_repo_is_a_400(hub):
    status, body = calculate({"hub": "acme/nope"})
    assert status == 400
    assert list(body) == ["model.hub"]
    assert body["model.hub"][0].startswith("No model acme/nope on the Hub")


@pytest.mark.parametrize("repo_id", ["no-slash", "a/b/c", "../etc", "", 7])
def test_a_malformed_id_is_a_400(hub, repo_id):
    status, body = calculate({"hub": repo_id})
    assert status == 400
    assert "organisation/name" in body["model.hub"][0]
    assert hub.requests == []


def test_an_unknown_key_beside_hub_is_a_400(hub):
    status, body = calculate({"hub": "acme/tiny", "catalog": "x"})
    assert status == 400
    assert "model.catalog" in body


def test_a_gated_model_without_a_token_says_what_to_do(hub):
    hub.repos["meta/gated"] = model_repo(
        TINY_LLAMA, tiny_llama_tensors(), gated=True, tokens={"hf_granted"}
    )
    status, body = calculate({"hub": "meta/gated"})
    assert status == 400
    message = body["model.hub"][0]
    assert "meta/gated is gated" in message
    assert "accept its terms" in message
    assert "Hugging Face token" in message


def test_a_gated_model_with_the_servers_token(hub, settings):
    settings.HF_TOKEN = "hf_granted"
    hub.repos["meta/gated"] = model_repo(
        TINY_LLAMA, tiny_llama_tensors(), gated=True, tokens={"hf_granted"}
    )
    status, body = calculate({"hub": "meta/gated"})
    assert status == 200, body
    assert body["parameters"]["total"] == TINY_LLAMA_PARAMETERS
    assert "hf_granted" not in str(body)


def test_a_gated_model_with_a_token_without_access(hub, settings):
    settings.HF_TOKEN = "hf_other"
    hub.repos["meta/gated"] = model_repo(
        TINY_LLAMA, tiny_llama_tensors(), gated=True, tokens={"hf_granted"}
    )
    status, body = calculate({"hub": "meta/gated"})
    assert status == 400
    assert "the token used has no access" in body["model.hub"][0]


def test_a_private_model_needs_a_token(hub, settings):
    hub.repos["acme/private"] = model_repo(
        TINY_LLAMA, tiny_llama_tensors(), private=True, tokens={"hf_acme"}
    )
    status, body = calculate({"hub": "acme/private"})
    assert status == 400
    assert "If it is private, add a Hugging Face token" in body["model.hub"][0]
    settings.HF_TOKEN = "hf_acme"
    status, body = calculate({"hub": "acme/private"})
    assert status == 200, body


def test_a_slow_hub_times_out_without_holding_the_worker(hub, settings):
    settings.HUB_TIMEOUT_SECONDS = 0.3
    hub.repos["acme/slow"] = model_repo(TINY_LLAMA, tiny_llama_tensors(), delay=3)
    started = time.monotonic()
    status, body = calculate({"hub": "acme/slow"})
    assert time.monotonic() - started < 2.5
    assert status == 400
    assert "did not answer in time" in body["model.hub"][0]


def test_a_huge_config_is_refused(hub):
    config = {**TINY_LLAMA, "padding": "x" * 1_100_000}
    hub.repos["acme/huge"] = model_repo(config, tiny_llama_tensors())
    status, body = calculate({"hub": "acme/huge"})
    assert status == 400
    assert body == {"model.hub": ["acme/huge's config.json is larger than 1 MB."]}
    assert not any("config.json" in path for _, path, _ in hub.requests)  # never downloaded


def test_a_repo_without_config_json(hub):
    repo = model_repo(TINY_LLAMA, tiny_llama_tensors())
    del repo.files["config.json"]
    hub.repos["acme/weights-only"] = repo
    status, body = calculate({"hub": "acme/weights-only"})
    assert status == 400
    assert "acme/weights-only has no config.json" in body["model.hub"][0]


def test_a_model_that_is_not_a_causal_lm(hub):
    config = {**TINY_LLAMA, "architectures": ["BertForMaskedLM"], "model_type": "bert"}
    hub.repos["acme/bert"] = model_repo(config)
    status, body = calculate({"hub": "acme/bert"})
    assert status == 400
    assert "not a causal language model" in body["model.hub"][0]
    assert "BertForMaskedLM" in body["model.hub"][0]


def test_imports_are_limited_per_caller(hub, settings):
    settings.HUB_IMPORTS_PER_MINUTE = 2
    for name in ("one", "two"):
        hub.repos[f"acme/{name}"] = model_repo(TINY_LLAMA, tiny_llama_tensors())
    assert calculate({"hub": "acme/one"})[0] == 200  # two Hub round trips: info, then files
    status, body = calculate({"hub": "acme/two"})
    assert status == 400
    assert "More than 2 imports from the Hub in a minute" in body["model.hub"][0]
    assert calculate({"hub": "acme/one"})[0] == 200  # kept: asks the Hub nothing


def test_it_is_refused_when_turned_off(hub, settings):
    settings.HUB_IMPORT = False
    hub.repos["acme/tiny"] = model_repo(TINY_LLAMA, tiny_llama_tensors())
    status, body = calculate({"hub": "acme/tiny"})
    assert status == 400
    assert body == {"model.hub": ["Import from the Hugging Face Hub is turned off on this server."]}
    assert hub.requests == []


def test_a_saved_estimate_keeps_the_config_and_the_commit(hub, alice):
    repo = hub.repos["acme/tiny"] = model_repo(TINY_LLAMA, tiny_llama_tensors())
    client = APIClient()
    client.force_authenticate(alice)
    response = client.post(
        "/api/v1/estimates/", {"model": {"hub": "acme/tiny"}, "title": "tiny"}, format="json"
    )
    assert response.status_code == 201, response.json()
    estimate = Estimate.objects.get()
    assert estimate.architecture == {"hf_config": TINY_LLAMA}
    assert estimate.model_name == "acme/tiny"
    assert estimate.result["hub"]["sha"] == repo.sha
    assert estimate.inputs["model"] == {"hub": "acme/tiny", "revision": "main"}
