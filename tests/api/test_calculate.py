"""POST /api/v1/calculate: the estimate contract of docs/design.md, field by field."""

from __future__ import annotations

import pytest

from calculator.models import Visibility
from tests.factories import ModelProfileFactory

URL = "/api/v1/calculate"

CONTRACT_INPUTS = {
    "model",
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
    "mixed_precision",
    "gradient_checkpointing",
    "num_gpus",
    "tensor_parallel",
    "pipeline_parallel",
    "expert_parallel",
    "context_parallel",
    "zero_stage",
    "sharding",
    "offload",
    "gradient_accumulation_steps",
    "checkpoint_every_k_layers",
    "recompute_core_attention",
    "lora_adapter_dtype",
    "inference_logits",
    "bnb_4bit_saves_inputs",
    "lora_dropout",
    "bnb_4bit_dequant_path",
    "gptq_kernel",
    "bnb_int8_matmul",
    "quantise_lm_head",
    "fused_qkv_attention",
    "previous_graph_alive",
    "cross_entropy",
    "optimizer_in_backward",
    "activation_offloading",
    "memory_view",
    "runtime_overhead_bytes",
    "images_per_request",
    "image_height",
    "image_width",
}
BREAKDOWN = {
    "weights",
    "kv_cache",
    "activations",
    "gradients",
    "optimizer_states",
    "runtime_overhead",
}

# The original calculator's worked example (shared/reference/seed-formulas.md): 7B parameters,
# hidden 4096, 32 layers, 32 heads, batch 1, sequence 2048, float16 inference.
SEED_7B = {
    "num_parameters": 7_000_000_000,
    "hidden_size": 4096,
    "num_layers": 32,
    "num_attention_heads": 32,
}


def post(client, payload):
    return client.post(URL, payload, format="json")


@pytest.mark.django_db
def test_it_reproduces_the_standard_worked_example_for_anonymous_callers(client_for):
    response = post(
        client_for(None),
        {
            "model": {"architecture": SEED_7B},
            "method": "standard",
            "mode": "inference",
            "weight_dtype": "float16",
        },
    )
    assert response.status_code == 200
    body = response.json()
    # weights 7e9 x 2 B
    assert body["breakdown"]["weights"] == 14_000_000_000
    # KV cache 2 x batch 1 x seq 2048 x 32 layers x hidden 4096 x 2 B
    assert body["breakdown"]["kv_cache"] == 2 * 2048 * 32 * 4096 * 2 == 1_073_741_824
    # activations: 1 x 2048 x 4096 x (34 + 5 x 2048 x 32 / 4096) x 4 B = 8,388,608 x 114 x 4
    assert body["breakdown"]["activations"] == 2048 * 4096 * 114 * 4 == 3_825_205_248
    assert body["breakdown"]["gradients"] == 0
    assert body["breakdown"]["optimizer_states"] == 0
    assert body["breakdown"]["runtime_overhead"] == 0  # the original had none
    assert body["total_bytes"] == 18_898_947_072  # seed-formulas.md, first row
    assert body["parameters"]["total"] == 7_000_000_000


@pytest.mark.django_db
def test_the_response_has_exactly_the_contract_shape_with_integer_bytes(client_for):
    response = post(client_for(None), {"model": {"architecture": SEED_7B}, "method": "standard"})
    body = response.json()
    assert set(body) == {
        "parameters",
        "breakdown",
        "total_bytes",
        "host_memory_bytes",
        "num_gpus",
        "inputs",
        "notes",
        "warnings",
        "checkpoint",
        "peak",
        "breakdown_bounds",
        "engine_version",
    }
    assert body["warnings"] == []
    assert set(body["parameters"]) == {
        "total",
        "active",
        "active_without_embeddings",
        "trainable",
    }
    assert body["checkpoint"] is None  # an architecture typed in has no quantization_config
    assert set(body["breakdown"]) == BREAKDOWN
    for value in [*body["breakdown"].values(), body["total_bytes"], *body["parameters"].values()]:
        assert type(value) is int
    assert body["total_bytes"] == sum(body["breakdown"].values())
    assert body["num_gpus"] == 1
    assert all(isinstance(note, str) for note in body["notes"])
    assert isinstance(body["engine_version"], str) and body["engine_version"]


@pytest.mark.django_db
def test_inputs_echo_every_contract_field_with_the_defaults_filled_in(client_for):
    model = {"architecture": SEED_7B}
    body = post(client_for(None), {"model": model}).json()
    inputs = body["inputs"]
    assert set(inputs) == CONTRACT_INPUTS
    assert inputs["model"] == model  # as given
    # docs/design.md's defaults: detailed method, flash attention, adamw, full fine-tuning, one GPU
    assert inputs["mode"] == "inference"
    assert inputs["method"] == "detailed"
    assert inputs["batch_size"] == 1
    assert inputs["sequence_length"] == 2048  # the original app's default
    assert inputs["attention_implementation"] == "flash"
    assert inputs["optimizer"] == "adamw"
    assert inputs["finetuning"] == "full"
    assert inputs["lora_target_modules"] == "all-linear"
    assert inputs["mixed_precision"] is False
    assert inputs["gradient_checkpointing"] is False
    assert (inputs["num_gpus"], inputs["tensor_parallel"], inputs["pipeline_parallel"]) == (1, 1, 1)
    assert inputs["zero_stage"] == 0
    assert inputs["sharding"] == "deepspeed"
    assert inputs["runtime_overhead_bytes"] is None
    assert (inputs["images_per_request"], inputs["image_height"], inputs["image_width"]) == (
        0,
        None,
        None,
    )
    # A manual architecture's default dtype is bfloat16; the KV cache follows the weights.
    assert inputs["weight_dtype"] == "bfloat16"
    assert inputs["kv_cache_dtype"] == "bfloat16"


@pytest.mark.django_db
def test_it_resolves_a_catalog_slug(client_for, catalog):
    response = post(
        client_for(None),
        {
            "model": {"catalog": "meta-llama/Llama-3.1-8B"},
            "sequence_length": 4096,
            "weight_dtype": "bfloat16",
        },
    )
    assert response.status_code == 200
    body = response.json()
    # Llama 3.1 8B: 2 (K and V) x 32 layers x 8 KV heads x 128 head dim x 2 B = 131,072 B per
    # token (Hugging Face "Llama 3.1" blog), x 4,096 tokens
    assert body["breakdown"]["kv_cache"] == 2 * 32 * 8 * 128 * 2 * 4096 == 536_870_912
    # model card: 8,030,261,248 parameters (shared/reference/memory-model.md)
    assert body["parameters"]["total"] == 8_030_261_248
    assert body["inputs"]["model"] == {"catalog": "meta-llama/Llama-3.1-8B"}


@pytest.mark.django_db
def test_a_profile_model_is_resolved_only_for_callers_who_can_see_it(
    client_for, alice, charlie, tiny_architecture
):
    profile = ModelProfileFactory(owner=alice, architecture=tiny_architecture)
    payload = {"model": {"profile": profile.pk}}
    assert post(client_for(alice), payload).status_code == 200
    for outsider in (client_for(charlie), client_for(None)):
        response = post(outsider, payload)
        assert response.status_code == 400
        assert set(response.json()) == {"model.profile"}


@pytest.mark.django_db
def test_a_link_profile_is_not_usable_by_id_for_outsiders(client_for, alice, charlie):
    profile = ModelProfileFactory(owner=alice, visibility=Visibility.LINK)
    response = post(client_for(charlie), {"model": {"profile": profile.pk}})
    assert response.status_code == 400


@pytest.mark.django_db
def test_an_hf_config_model_is_accepted(client_for, catalog):
    from calculator.domain.selectors import catalog_get

    config = catalog_get(slug="meta-llama/Llama-3.1-8B").hf_config
    body = post(client_for(None), {"model": {"hf_config": config}, "batch_size": 2}).json()
    # 131,072 B per token x 2,048 tokens x batch 2 (HF Llama 3.1 blog's per-token figure)
    assert body["breakdown"]["kv_cache"] == 131_072 * 2048 * 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"model": {"architecture": SEED_7B}, "batch_size": 0}, "batch_size"),
        ({"model": {"architecture": SEED_7B}, "batch_size": "abc"}, "batch_size"),
        ({"model": {"architecture": SEED_7B}, "batch_size": True}, "batch_size"),
        ({"model": {"architecture": SEED_7B}, "sequence_length": 1.5}, "sequence_length"),
        ({"model": {"architecture": SEED_7B}, "weight_dtype": "float13"}, "weight_dtype"),
        ({"model": {"architecture": SEED_7B}, "mode": "streaming"}, "mode"),
        ({"model": {"architecture": SEED_7B}, "zero_stage": 4}, "zero_stage"),
        ({"model": {"catalog": "no/such-model"}}, "model.catalog"),
        ({"model": {"profile": "seven"}}, "model.profile"),
        ({"model": {"catalog": "a", "profile": 1}}, "model"),
        ({"mode": "inference"}, "model"),
        ({"model": {"architecture": {"hidden_size": 64}}}, "model.architecture.num_layers"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(client_for, catalog, payload, field):
    response = post(client_for(None), payload)
    assert response.status_code == 400
    body = response.json()
    assert list(body) == [field]
    assert isinstance(body[field], list) and all(isinstance(m, str) for m in body[field])


@pytest.mark.django_db
def test_unknown_fields_are_rejected_by_name(client_for):
    response = post(client_for(None), {"model": {"architecture": SEED_7B}, "batchsize": 4})
    assert response.status_code == 400
    assert "batchsize" in str(response.json())


@pytest.mark.django_db
def test_the_path_has_no_trailing_slash_and_is_not_redirected(client_for):
    client = client_for(None)
    assert post(client, {"model": {"architecture": SEED_7B}}).status_code == 200
    assert client.post(URL + "/", {}, format="json").status_code == 404


@pytest.mark.django_db
def test_only_post_is_allowed(client_for):
    response = client_for(None).get(URL)
    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "GET" not allowed.'}


@pytest.mark.django_db
def test_with_a_gpu_the_response_adds_fit_capacity_throughput_and_cost(client_for, catalog):
    from calculator.models import Gpu

    h100 = Gpu.objects.get(slug="h100-sxm")
    body = post(
        client_for(None),
        {
            "model": {"catalog": "meta-llama/Llama-3.1-8B"},
            "weight_dtype": "bfloat16",
            "gpu": "h100-sxm",
            "gpu_count": 4,
            "price_per_hour": 2.5,
        },
    ).json()
    assert {"fit", "capacity", "throughput", "cost"} <= set(body)
    assert body["inputs"]["gpu"] == "h100-sxm"  # as given
    assert body["inputs"]["gpu_count"] == 4
    (row,) = [r for r in body["fit"] if r["gpu"] == "h100-sxm"]
    assert row["memory_bytes"] == h100.memory_bytes
    assert row["fits_on_one"] is (row["required_bytes"] <= row["usable_bytes"])
    # Llama 3.1 8B at 16 bits: 131,072 bytes of KV cache per token (HF Llama 3.1 blog); on 4
    # GPUs in tensor parallel each holds 2 of the 8 KV heads: a quarter of it
    assert body["capacity"]["configuration"]["tensor_parallel"] == 4
    assert body["capacity"]["kv_cache"]["bytes_per_token"] == 131_072 // 4
    # 4 GPUs at $2.50 per GPU-hour
    assert body["cost"]["per_hour"] == 4 * 2.5
    assert body["cost"]["gpu_count"] == 4


@pytest.mark.django_db
def test_without_a_gpu_the_response_has_no_gpu_answers(client_for):
    body = post(client_for(None), {"model": {"architecture": SEED_7B}}).json()
    assert not {"fit", "capacity", "throughput", "cost"} & set(body)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("gpu", "field"),
    [("no-such-gpu", "gpu"), ({"memory_bytes": 10**10}, "gpu.memory_bandwidth_bytes_per_s")],
)
def test_a_bad_gpu_is_a_400_naming_the_field(client_for, catalog, gpu, field):
    response = post(client_for(None), {"model": {"architecture": SEED_7B}, "gpu": gpu})
    assert response.status_code == 400
    assert list(response.json()) == [field]


@pytest.mark.django_db
def test_a_serving_plan_through_the_api(client_for, catalog):
    # vLLM on the catalog's H100 SXM (80 GiB): usable 0.9 x 85,899,345,920 = 77,309,411,328
    response = post(
        client_for(None),
        {
            "model": {"catalog": "meta-llama/Llama-3.1-8B"},
            "mode": "serving",
            "sequence_length": 8192,
            "gpu": "h100-sxm",
        },
    )
    assert response.status_code == 200
    serving = response.json()["serving"]
    memory = serving["memory"]
    assert memory["usable_bytes"] == 77_309_411_328
    # the parameters and vLLM's rotary cos_sin_cache, 131,072 positions x 128 in bfloat16
    assert memory["weights_bytes"] == 8_030_261_248 * 2 + 131_072 * 128 * 2
    assert memory["kv_bytes_per_token"] == 2 * 32 * 8 * 128 * 2
    assert memory["starts"] is True
    assert serving["engine"] == "vllm"
    assert response.json()["inputs"]["max_num_seqs"] == 1024


@pytest.mark.django_db
def test_a_serving_plan_needs_a_gpu(client_for):
    response = post(client_for(None), {"model": {"architecture": SEED_7B}, "mode": "serving"})
    assert response.status_code == 400
    assert response.json() == {"gpu": ["a serving plan needs a GPU: choose one"]}


@pytest.mark.django_db
@pytest.mark.parametrize("optimizer", ["paged_adamw", "paged_adamw_8bit"])
def test_the_standard_method_refuses_an_optimizer_it_has_no_formula_for(client_for, optimizer):
    # the original app's table has AdamW, quantised AdamW and SGD only: this was a KeyError (500)
    payload = {"model": {"architecture": SEED_7B}, "mode": "training", "method": "standard"}
    response = post(client_for(None), {**payload, "optimizer": optimizer})
    assert response.status_code == 400
    assert "size " + optimizer + " with the detailed method" in response.json()["optimizer"][0]


@pytest.mark.django_db
def test_a_speculative_draft_model_is_a_catalog_slug(client_for, catalog):
    payload = {
        "model": {"catalog": "meta-llama/Llama-3.1-8B"},
        "mode": "serving",
        "sequence_length": 8192,
        "gpu": "h100-sxm",
        "speculative_method": "draft_model",
        "num_speculative_tokens": 4,
        "draft_model": "meta-llama/Llama-3.2-1B",
    }
    response = post(client_for(None), payload)
    assert response.status_code == 200, response.json()
    body = response.json()
    memory = body["serving"]["memory"]
    # Llama 3.2 1B: 1,235,814,400 parameters x 2 bytes; 2 x 16 layers x 8 x 64 x 2 bytes a token
    assert memory["draft_weights_bytes"] == 1_235_814_400 * 2
    assert memory["kv_bytes_per_token"] == 2 * 32 * 8 * 128 * 2 + 2 * 16 * 8 * 64 * 2
    assert body["inputs"]["draft_model"] == "meta-llama/Llama-3.2-1B"
    assert body["serving"]["performance"]["speculative"]["num_speculative_tokens"] == 4
    bad = post(client_for(None), {**payload, "draft_model": "no/such-model"})
    assert bad.status_code == 400
    assert list(bad.json()) == ["draft_model"]
    rate = post(client_for(None), {**payload, "acceptance_rate": 1.5})
    assert rate.status_code == 400
    assert list(rate.json()) == ["acceptance_rate"]
