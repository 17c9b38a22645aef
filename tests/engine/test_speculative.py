"""Speculative decoding in a serving plan (vLLM speculative_config).

Sources:
- Leviathan, Kalman, Matias 2023, "Fast Inference from Transformers via Speculative Decoding",
  eq. 1: a step with k speculative tokens and acceptance rate a yields (1 - a^(k+1)) / (1 - a)
  tokens.
- EAGLE head (Li et al. 2024, model/cnets.py): one decoder layer of the target's shape and
  fc = nn.Linear(2 * hidden, hidden, bias=True); it shares the target's embedding and LM head
  (vllm/v1/spec_decode/eagle.py, EagleProposer.load_model).
- DeepSeek-V3 config.json (deepseek-ai/DeepSeek-V3): hidden 7168, 61 layers (3 dense), 256
  routed experts of width 2048 and 1 shared, MLA q_lora_rank 1536, kv_lora_rank 512, rope 64,
  nope 128, v 128, 128 heads, vocab 129,280, num_nextn_predict_layers 1. Its MTP module
  (vllm/model_executor/models/deepseek_mtp.py): one MoE decoder layer, eh_proj 2h -> h,
  enorm and hnorm. The published checkpoint is about 684.5B parameters against transformers'
  671,026,404,352 for the 61 main layers (the catalog entry's source note).
- Llama 3 8B: 32 layers, hidden 4096, 32 heads, 8 KV heads of 128, MLP 14,336, vocab 128,256.
  Llama 3.2 1B: 16 layers, 8 KV heads of 64, 1,235,814,400 parameters (tied embeddings).
"""

from __future__ import annotations

import pytest

from calculator.engine import EstimateError, calculate
from calculator.engine.speculative import tokens_per_step
from tests.engine.test_serving import GPUS, H100_AS_VLLM_SAW_IT, KV_PER_TOKEN, MODELS, gpu, serve

LLAMA_1B = "meta-llama/Llama-3.2-1B"
DEEPSEEK_V3 = "deepseek-ai/DeepSeek-V3"
# Llama 3 8B's decoder layer: q and o 4096 x 4096, k and v 4096 x 1024, gate/up/down
# 3 x 4096 x 14,336, two RMS norms of 4096
LLAMA_LAYER = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096
EAGLE_FC = 2 * 4096 * 4096 + 4096
# 218,112,000 + 33,558,528 less the input_layernorm EAGLE's one layer drops (4,096)
EAGLE_HEAD = LLAMA_LAYER + EAGLE_FC - 4096


@pytest.mark.parametrize(
    ("rate", "k", "expected"),
    [
        # (1 - 0.7^4) / 0.3 = (1 - 0.2401) / 0.3 = 2.533
        (0.7, 3, 2.533),
        # (1 - 0.8^2) / 0.2 = 0.36 / 0.2 = 1.8
        (0.8, 1, 1.8),
        # every token accepted: k + 1; none: the target's own token only
        (1.0, 3, 4.0),
        (0.0, 5, 1.0),
    ],
)
def test_a_step_yields_leviathans_expected_tokens(rate, k, expected):
    assert tokens_per_step(rate, k) == pytest.approx(expected, rel=1e-12)


def test_an_eagle_head_takes_one_layer_an_fc_and_one_layers_kv_cache():
    plain = serve(max_num_seqs=256, max_num_batched_tokens=8192)["memory"]
    plan = serve(
        max_num_seqs=256,
        max_num_batched_tokens=8192,
        speculative_method="eagle",
        num_speculative_tokens=3,
    )
    memory = plan["memory"]
    assert EAGLE_HEAD == 251_666_432
    assert memory["draft_parameters"] == EAGLE_HEAD
    assert memory["draft_weights_bytes"] == EAGLE_HEAD * 2  # bfloat16
    # its one attention layer: 2 x 8 KV heads x 128 x 2 bytes = 4,096 bytes a token
    assert memory["draft_kv_bytes_per_token"] == 4096
    assert memory["kv_bytes_per_token"] == KV_PER_TOKEN + 4096
    # the same budget: the blocks get what the head's weights leave
    assert memory["kv_cache_bytes"] == plain["kv_cache_bytes"] - EAGLE_HEAD * 2
    assert memory["num_blocks"] == memory["kv_cache_bytes"] // (16 * (KV_PER_TOKEN + 4096))


def test_eagle_decode_is_the_verification_and_k_draft_steps_over_the_expected_tokens():
    h100 = gpu("h100-sxm", memory_bytes=H100_AS_VLLM_SAW_IT)
    plan = serve(
        batch_size=1,
        output_tokens=192,
        gpu=h100,
        speculative_method="eagle",
        num_speculative_tokens=3,
        acceptance_rate=0.8,
    )
    step = plan["performance"]["speculative"]
    bandwidth = 3.35e12 * 0.7  # the H100's 3.35 TB/s at the default decode efficiency
    # one request at 8,096 tokens of context (8,000 prompt + half of 192): the target reads its
    # weights and KV cache once for the 4 tokens it verifies (memory-bound: 4 x 2 x 8.03e9
    # FLOPs are far below the compute roof)
    verify = (16_060_522_496 + 8096 * KV_PER_TOKEN) / bandwidth
    # a draft forward: the head, the shared LM head (128,256 x 4,096) and the head's KV cache
    draft = ((EAGLE_HEAD + 128256 * 4096) * 2 + 8096 * 4096) / bandwidth
    expected = (1 - 0.8**4) / (1 - 0.8)  # 2.952
    assert step["tokens_per_step"] == pytest.approx(expected, rel=1e-12)
    assert step["verify_s"] == pytest.approx(verify, rel=1e-9)
    assert step["draft_s"] == pytest.approx(draft, rel=1e-9)
    assert step["step_s"] == pytest.approx(verify + 3 * draft, rel=1e-9)
    tpot = (verify + 3 * draft) / expected
    assert plan["performance"]["tpot_s"] == pytest.approx(tpot, rel=1e-9)
    assert plan["performance"]["output_tokens_per_s"] == pytest.approx(1 / tpot, rel=1e-9)
    assert step["speedup"] == pytest.approx(verify / tpot, rel=1e-9)
    assert plan["curve"][0]["tpot_s"] == pytest.approx(tpot, rel=1e-9)


def test_a_draft_model_brings_its_weights_and_its_own_kv_cache():
    plain = serve()["memory"]
    plan = serve(
        speculative_method="draft_model",
        num_speculative_tokens=4,
        draft_model={"hf_config": MODELS[LLAMA_1B]["config"]},
    )
    memory = plan["memory"]
    assert memory["draft_weights_bytes"] == 1_235_814_400 * 2
    # 2 x 16 layers x 8 KV heads x 64 x 2 bytes = 32,768 bytes a token
    assert memory["draft_kv_bytes_per_token"] == 32768
    assert memory["kv_bytes_per_token"] == KV_PER_TOKEN + 32768
    assert memory["kv_cache_bytes"] == plain["kv_cache_bytes"] - 1_235_814_400 * 2


def test_deepseek_v3s_mtp_module_is_one_moe_layer_and_its_projection():
    h200 = {name: GPUS["h200"][name] for name in gpu("h200")}
    payload = {
        "model": {"hf_config": MODELS[DEEPSEEK_V3]["config"]},
        "mode": "serving",
        "sequence_length": 8192,
        "gpu": h200,
        "num_gpus": 8,
        "speculative_method": "mtp",
    }
    result = calculate(payload)
    memory = result["serving"]["memory"]
    # num_speculative_tokens defaults to num_nextn_predict_layers (1), as in vLLM
    assert result["inputs"]["num_speculative_tokens"] == 1
    attention = (
        7168 * 1536  # q_a_proj
        + 1536  # q_a_layernorm
        + 1536 * 128 * (128 + 64)  # q_b_proj
        + 7168 * (512 + 64)  # kv_a_proj_with_mqa
        + 512  # kv_a_layernorm
        + 512 * 128 * (128 + 128)  # kv_b_proj
        + 128 * 128 * 7168  # o_proj
    )
    moe = 256 * 3 * 7168 * 2048 + 3 * 7168 * 2048 + 256 * 7168  # routed, shared, gate
    layer = attention + moe + 2 * 7168  # and its two RMS norms
    mtp = layer + 2 * 7168 * 7168 + 2 * 7168  # eh_proj, enorm and hnorm
    assert memory["draft_parameters"] == mtp == 11_610_060_800
    # with its own embedding and head copies (2 x 129,280 x 7,168) it is the checkpoint's extra
    # ~13.5B: 684.5B published less transformers' 671.03B
    assert abs(mtp + 2 * 129280 * 7168 - (684.5e9 - 671_026_404_352)) < 0.1e9
    # its MLA layer caches the 512 latent + 64 rope values a token in bfloat16
    assert memory["draft_kv_bytes_per_token"] == (512 + 64) * 2
    assert result["serving"]["performance"]["speculative"]["tokens_per_step"] == pytest.approx(
        1 + 0.7, rel=1e-12
    )


def test_ngram_lookup_has_no_weights_and_no_draft_time():
    plan = serve(speculative_method="ngram", num_speculative_tokens=2, acceptance_rate=0.5)
    assert plan["memory"]["draft_weights_bytes"] == 0
    assert plan["memory"]["draft_kv_bytes_per_token"] == 0
    step = plan["performance"]["speculative"]
    assert step["draft_s"] == 0
    # (1 - 0.5^3) / 0.5 = 1.75 tokens for one verification
    assert plan["performance"]["tpot_s"] == pytest.approx(step["verify_s"] / 1.75, rel=1e-12)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"speculative_method": "medusa"}, "speculative_method"),
        ({"speculative_method": "eagle"}, "num_speculative_tokens"),
        ({"speculative_method": "eagle", "num_speculative_tokens": 0}, "num_speculative_tokens"),
        ({"speculative_method": "eagle", "num_speculative_tokens": 2.5}, "num_speculative_tokens"),
        ({"speculative_method": "mtp"}, "speculative_method"),  # Llama 3 has no MTP layers
        (
            {"speculative_method": "ngram", "num_speculative_tokens": 2, "acceptance_rate": 1.5},
            "acceptance_rate",
        ),  # noqa: E501
        ({"acceptance_rate": 0.5}, "acceptance_rate"),
        ({"speculative_method": "draft_model", "num_speculative_tokens": 2}, "draft_model"),
        (
            {
                "speculative_method": "eagle",
                "num_speculative_tokens": 2,
                "draft_model": {"hf_config": {}},
            },
            "draft_model",
        ),  # noqa: E501
        (
            {"speculative_method": "draft_model", "num_speculative_tokens": 2, "draft_model": "x"},
            "draft_model",
        ),  # noqa: E501
        (
            {"engine": "sglang", "speculative_method": "ngram", "num_speculative_tokens": 2},
            "speculative_method",
        ),  # noqa: E501
    ],
)
def test_bad_speculative_fields_name_the_field(fields, field):
    with pytest.raises(EstimateError) as error:
        serve(**fields)
    assert error.value.field == field
