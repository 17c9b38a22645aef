"""The detailed method, checked against hand arithmetic and published figures.

Shapes come from the models' published config.json files (tests/engine/fixtures/configs); every
expected number is worked out in the test from those shapes, or is a cited published figure.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calculator.engine import EstimateError, calculate
from calculator.engine.dtypes import linear_weight_bytes

CONFIGS = Path(__file__).parent / "fixtures" / "configs"
GIB = 1024**3


def config(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text())


LLAMA_31_8B = {"hf_config": config("meta-llama--Llama-3.1-8B")}
MISTRAL_7B = {"hf_config": config("mistralai--Mistral-7B-v0.1")}
FALCON_7B = {"hf_config": config("tiiuae--falcon-7b")}
DEEPSEEK_V3 = {"hf_config": config("deepseek-ai--DeepSeek-V3")}
GEMMA_2_9B = {"hf_config": config("google--gemma-2-9b")}

# Llama-3.1-8B by hand: hidden 4096, 32 layers, 32 heads, 8 KV heads of 128, MLP 14336,
# vocab 128256, untied LM head
LLAMA_PARAMETERS = 8_030_261_248  # memory-model.md (published count)
LLAMA_EMBEDDINGS = 128_256 * 4096  # 525,336,576, and the same again for the LM head
LLAMA_NORMS = 2 * 32 * 4096 + 4096  # 266,240
# per layer: q 4096x4096, k and v 4096x1024, o 4096x4096, gate/up 4096x14336, down 14336x4096
LLAMA_LAYER_LINEAR = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336  # 218,103,808
LLAMA_LINEAR = 32 * LLAMA_LAYER_LINEAR  # 6,979,321,856
assert 2 * LLAMA_EMBEDDINGS + LLAMA_NORMS + LLAMA_LINEAR == LLAMA_PARAMETERS


def run(model: dict, **fields) -> dict:
    return calculate({"model": model, **fields})


# --- KV cache ------------------------------------------------------------------------------


def test_it_counts_131072_kv_bytes_per_token_for_llama_31_8b():
    # Hugging Face Llama 3.1 blog: 2 * 32 layers * 8 KV heads * 128 * 2 bytes = 131,072 B/token
    result = run(LLAMA_31_8B, sequence_length=1)
    assert result["breakdown"]["kv_cache"] == 131_072


def test_it_matches_the_llama_31_blog_for_128k_tokens():
    # HF blog: 128,000 tokens of Llama-3.1-8B cache at 16-bit = 15.62 GB (GiB)
    result = run(LLAMA_31_8B, sequence_length=128_000)
    assert result["breakdown"]["kv_cache"] == 128_000 * 131_072
    assert f"{result['breakdown']['kv_cache'] / GIB:.2f}" == "15.62"


def test_its_kv_cache_equals_the_original_formula_for_multi_head_attention():
    # KV heads == heads and head_dim == hidden / heads: 2 * b * s * L * h * bytes (seed-formulas)
    model = {
        "architecture": {
            "num_parameters": 7_000_000_000,
            "hidden_size": 4096,
            "num_layers": 32,
            "num_attention_heads": 32,
        }
    }
    detailed = run(model, weight_dtype="float16", batch_size=3, sequence_length=1000)
    standard = run(
        model, method="standard", weight_dtype="float16", batch_size=3, sequence_length=1000
    )
    assert detailed["breakdown"]["kv_cache"] == 2 * 3 * 1000 * 32 * 4096 * 2
    assert detailed["breakdown"]["kv_cache"] == standard["breakdown"]["kv_cache"]


def test_it_keeps_one_kv_head_for_multi_query_attention():
    # falcon-7b: multi_query, one KV head of 64, 32 layers: 2 * 32 * 1 * 64 * 2 = 8,192 B/token
    result = run(FALCON_7B, sequence_length=2048, batch_size=2)
    assert result["breakdown"]["kv_cache"] == 2 * 2048 * 8_192


def test_it_caches_the_mla_latent_of_deepseek_v3():
    # DeepSeek-V3: kv_lora_rank 512 + qk_rope_head_dim 64 = 576 values per layer, 61 layers
    result = run(DEEPSEEK_V3, sequence_length=1, weight_dtype="float8")
    assert result["breakdown"]["kv_cache"] == 576 * 61 * 2
    assert any("compressed latent (576 values" in note for note in result["notes"])


SLIDING_NOTE = "hold at most 4,095 tokens (the window less the token being generated)"


def test_it_caps_sliding_window_layers_at_the_window():
    # Mistral-7B-v0.1: every layer has a 4096-token window; transformers' DynamicSlidingWindowLayer
    # keeps the last 4096 - 1 = 4095 tokens (cache_utils.py `-self.sliding_window + 1 :`), the
    # token being generated completes the window. Per token 2 * 32 layers * 8 KV heads * 128 * 2 B
    per_token = 2 * 32 * 8 * 128 * 2
    assert per_token == 131_072
    result = run(MISTRAL_7B, sequence_length=8192)
    assert result["breakdown"]["kv_cache"] == 4095 * per_token
    assert f"Sliding window: 32 of 32 layers {SLIDING_NOTE}" in result["notes"]
    at_window = run(MISTRAL_7B, sequence_length=4096)
    assert at_window["breakdown"]["kv_cache"] == 4095 * per_token
    assert f"Sliding window: 32 of 32 layers {SLIDING_NOTE}" in at_window["notes"]
    within = run(MISTRAL_7B, sequence_length=4095)
    assert within["breakdown"]["kv_cache"] == 4095 * per_token
    assert not any(note.startswith("Sliding window") for note in within["notes"])


def test_it_caps_only_the_sliding_layers_of_gemma_2():
    # gemma-2-9b: 42 layers alternate sliding (4096) and global; 8 KV heads of 256, 16-bit cache
    per_layer_token = 2 * 8 * 256 * 2  # 8,192 bytes
    # the 21 global layers hold all 10,000 tokens, the 21 sliding ones the window less one, 4095
    result = run(GEMMA_2_9B, weight_dtype="bfloat16", sequence_length=10_000)
    assert result["breakdown"]["kv_cache"] == (21 * 10_000 + 21 * 4095) * per_layer_token
    assert f"Sliding window: 21 of 42 layers {SLIDING_NOTE}" in result["notes"]


def test_it_stores_kv_in_bfloat16_beside_quantised_weights():
    result = run(LLAMA_31_8B, weight_dtype="nf4", sequence_length=1)
    assert result["inputs"]["kv_cache_dtype"] == "bfloat16"
    assert result["breakdown"]["kv_cache"] == 131_072
    assert "KV cache in bfloat16 because the weights are quantised (nf4)" in result["notes"]


def test_it_scales_the_kv_cache_with_its_dtype():
    result = run(LLAMA_31_8B, kv_cache_dtype="float8", sequence_length=1)
    assert result["breakdown"]["kv_cache"] == 131_072 // 2


def test_it_has_no_kv_cache_in_training():
    result = run(LLAMA_31_8B, mode="training")
    assert result["breakdown"]["kv_cache"] == 0
    assert "No KV cache in training (use_cache is off)" in result["notes"]


# --- weights -------------------------------------------------------------------------------


def test_it_counts_16_bit_weights_exactly():
    result = run(LLAMA_31_8B, weight_dtype="bfloat16")
    assert result["breakdown"]["weights"] == 2 * LLAMA_PARAMETERS  # 16,060,522,496
    assert result["parameters"] == {
        "total": LLAMA_PARAMETERS,
        "active": LLAMA_PARAMETERS,
        # untied: less the 128,256 x 4,096 input embedding table = 7,504,924,672
        "active_without_embeddings": LLAMA_PARAMETERS - 128_256 * 4_096,
        "trainable": 0,
    }


def test_it_keeps_embeddings_16_bit_beside_int8_linear_layers():
    # LLM.int8: 1 byte per linear weight + fp32 scale per output row; embeddings, LM head and
    # norms in 16-bit. Output rows per layer: 4096 + 1024 + 1024 + 4096 + 2 * 14336 + 4096
    rows = 32 * (4096 + 1024 + 1024 + 4096 + 14336 + 14336 + 4096)  # 1,376,256
    expected = LLAMA_LINEAR + 4 * rows + 2 * (2 * LLAMA_EMBEDDINGS + LLAMA_NORMS)
    assert expected == 9_086_705_664
    assert run(LLAMA_31_8B, weight_dtype="int8")["breakdown"]["weights"] == expected


def test_it_counts_nf4_blocks_and_double_quantisation():
    # bitsandbytes NF4: n/2 bytes + 1 byte per 64-block + 4 bytes per 256 blocks, per matrix
    def nf4(n: int) -> int:
        blocks = n // 64
        return n // 2 + blocks + 4 * (blocks // 256)

    q = nf4(4096 * 4096)  # 8,388,608 + 262,144 + 4,096 = 8,654,848
    kv = nf4(4096 * 1024)  # 2,097,152 + 65,536 + 1,024 = 2,163,712
    mlp = nf4(4096 * 14336)  # 29,360,128 + 917,504 + 14,336 = 30,291,968
    assert (q, kv, mlp) == (8_654_848, 2_163_712, 30_291_968)
    expected = 32 * (2 * q + 2 * kv + 3 * mlp) + 2 * (2 * LLAMA_EMBEDDINGS + LLAMA_NORMS)
    result = run(LLAMA_31_8B, weight_dtype="nf4")
    assert result["breakdown"]["weights"] == expected
    # QLoRA paper: about 4.127 bits per quantised parameter
    bits = 8 * (expected - 2 * (2 * LLAMA_EMBEDDINGS + LLAMA_NORMS)) / LLAMA_LINEAR
    assert bits == pytest.approx(4.127, abs=0.001)


def test_bitsandbytes_leaves_fused_experts_in_16_bit():
    # transformers 5 replace_with_bnb_linear swaps nn.Linear modules only; TINY_MIXTRAL's fused
    # experts (2 layers x 4 x (128 x 512 + 256 x 128)) and routers (2 x 128 x 4) are parameters
    nf4 = run(TINY_MIXTRAL, weight_dtype="nf4", runtime_overhead_bytes=0)
    bf16 = run(TINY_MIXTRAL, weight_dtype="bfloat16", runtime_overhead_bytes=0)
    experts_and_routers = 2 * 4 * (128 * 512 + 256 * 128) + 2 * 128 * 4

    # the attention projections per layer: q and o 128 x 128, k and v 128 x 64, quantised to NF4
    # (n/2 + n/64 absmax bytes + 4 bytes per 256 blocks, rounded up)
    def nf4_bytes(n: int) -> int:
        blocks = -(-n // 64)
        return n // 2 + blocks + 4 * -(-blocks // 256)

    attention = 2 * (2 * nf4_bytes(128 * 128) + 2 * nf4_bytes(128 * 64))
    rest = 2 * (2 * 500 * 128 + 2 * 2 * 128 + 128)  # embeddings, LM head, norms in bf16
    assert nf4["breakdown"]["weights"] == attention + 2 * experts_and_routers + rest
    # bf16: all 2 * (experts and routers + attention 2 * (2*128*128 + 2*128*64)) + the rest
    assert bf16["breakdown"]["weights"] == 2 * (experts_and_routers + 2 * 49_152) + rest
    assert any("fused MoE experts and routers stay in 16-bit" in note for note in nf4["notes"])


def test_it_counts_gptq_groups_of_128():
    # 4096 x 4096: qweight 8,388,608 B; 32 groups x 4096 fp16 scales = 262,144 B;
    # 32 x 512 int32 packed zeros = 65,536 B; g_idx 4096 int32 = 16,384 B
    assert linear_weight_bytes("gptq_int4", 4096, 4096) == 8_388_608 + 262_144 + 65_536 + 16_384
    assert linear_weight_bytes("awq_int4", 4096, 4096) == 8_388_608 + 262_144 + 65_536


def test_it_counts_gguf_q8_0_blocks():
    # ggml block_q8_0: 34 bytes per 32 weights (8.5 bits per weight)
    assert linear_weight_bytes("gguf_q8_0", 4096, 4096) == 4096 * 4096 // 32 * 34


def test_it_uses_the_llama_cpp_average_for_q4_k_m():
    # llama.cpp tools/quantize: Q4_K_M of Llama-3-8B is 4.58 GiB; the engine's 4.9 bits per
    # weight on everything but the float32 norms lands on it
    result = run(LLAMA_31_8B, weight_dtype="gguf_q4_k_m", runtime_overhead_bytes=0)
    assert round(result["breakdown"]["weights"] / GIB, 2) == 4.58


# --- training: parameters, gradients, optimizer states -------------------------------------


def test_it_counts_lora_parameters_for_all_linear_layers():
    # r = 16: r * (in + out) per matrix; per layer q 16*(4096+4096) = 131,072,
    # k and v 16*(4096+1024) = 81,920 each, o 131,072, gate/up/down 16*(4096+14336) = 294,912
    per_layer = 131_072 + 2 * 81_920 + 131_072 + 3 * 294_912
    assert per_layer == 1_310_720
    result = run(LLAMA_31_8B, mode="training", finetuning="lora", lora_rank=16)
    assert result["parameters"]["trainable"] == 32 * per_layer  # 41,943,040
    # float32 adapters: 4 B gradients, AdamW 2 x 4 B states
    assert result["breakdown"]["gradients"] == 4 * 32 * per_layer
    assert result["breakdown"]["optimizer_states"] == 8 * 32 * per_layer
    # frozen bf16 base + fp32 adapters
    assert result["breakdown"]["weights"] == 2 * LLAMA_PARAMETERS + 4 * 32 * per_layer


def test_it_counts_lora_on_named_modules_only():
    result = run(
        LLAMA_31_8B, mode="training", finetuning="lora", lora_target_modules=["v_proj", "q_proj"]
    )
    assert result["parameters"]["trainable"] == 32 * (131_072 + 81_920)
    assert result["inputs"]["lora_target_modules"] == ["q_proj", "v_proj"]


# A tiny Mixtral: 2 layers, hidden 128, 4 heads of 32 (2 KV heads), 4 experts of width 256, top-2
TINY_MIXTRAL = {
    "hf_config": {
        "model_type": "mixtral",
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 500,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "torch_dtype": "bfloat16",
    }
}


def test_lora_on_fused_experts_matches_peft():
    # transformers 5.24 + peft 0.21, LoraConfig(r=8, target_modules="all-linear") on this config:
    # print_trainable_parameters() says 122,944. By hand, per layer: q and o 8*(128+128),
    # k and v 8*(128+64), router 8*(128+4), fused experts gate_up_proj rank 2r: 4*16*(128+512),
    # down_proj 4*8*(256+128)
    per_layer = 2 * 2048 + 2 * 1536 + 1056 + 40_960 + 12_288
    result = run(TINY_MIXTRAL, mode="training", finetuning="lora", lora_rank=8)
    assert result["parameters"]["trainable"] == 2 * per_layer == 122_944


def test_lora_on_fused_experts_saves_the_merged_weights():
    # PEFT target_parameters saves W + BA of each fused expert parameter for backward
    # (saved_tensors_hooks on TINY_MIXTRAL: (4, 128, 512) and (4, 256, 128) bf16 per layer);
    # attention-only LoRA has none of it, nor the router's adapter input (2*64 tokens x (128+8) x 4)
    fields = {"mode": "training", "finetuning": "lora", "lora_rank": 8, "batch_size": 2}

    # The activations line is what is saved beyond the gradients (the peak holds the larger of
    # the two), so saved = activations + gradients here, where the saved tensors are the larger
    def saved(**more) -> int:
        breakdown = run(TINY_MIXTRAL, sequence_length=64, **fields, **more)["breakdown"]
        assert breakdown["activations"] > 0
        return breakdown["activations"] + breakdown["gradients"]

    all_linear = saved()
    attention = saved(lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    merged = 2 * (4 * 128 * 512 + 4 * 256 * 128) * 2
    router_inputs = 2 * 128 * (128 + 8) * 4
    assert all_linear - attention == merged + router_inputs


def test_it_puts_the_qlora_base_in_nf4():
    result = run(LLAMA_31_8B, mode="training", finetuning="qlora")
    nf4_only = run(LLAMA_31_8B, weight_dtype="nf4")
    assert result["inputs"]["weight_dtype"] == "nf4"
    assert result["breakdown"]["weights"] == (
        nf4_only["breakdown"]["weights"] + 4 * result["parameters"]["trainable"]
    )


def test_mixed_precision_costs_18_bytes_per_parameter():
    # transformers "model memory anatomy": 4 master + 2 copy + 4 gradients + 8 AdamW = 18 B/param
    result = run(LLAMA_31_8B, mode="training", mixed_precision=True, weight_dtype="bfloat16")
    breakdown = result["breakdown"]
    assert breakdown["weights"] + breakdown["gradients"] + breakdown["optimizer_states"] == (
        18 * LLAMA_PARAMETERS
    )
    # float32 weights under autocast: the 16-bit copy covers the matmul weights only (the layers'
    # linear matrices and the LM head), not embed_tokens nor the norms (validation case
    # llama-train-b2-s512-adamw-bf16mixed-sdpa: measured copies = 2 x (all - embed_tokens - norms))
    fp32 = run(LLAMA_31_8B, mode="training", mixed_precision=True, weight_dtype="float32")
    b = fp32["breakdown"]
    assert b["weights"] == 4 * LLAMA_PARAMETERS + 2 * (LLAMA_LINEAR + LLAMA_EMBEDDINGS)
    assert b["weights"] + b["gradients"] + b["optimizer_states"] == (
        18 * LLAMA_PARAMETERS - 2 * (LLAMA_EMBEDDINGS + LLAMA_NORMS)
    )


def test_pure_bf16_training_keeps_gradients_and_states_in_bf16():
    # torch.optim AdamW: exp_avg and exp_avg_sq are zeros_like(param): 2 + 2 bytes
    breakdown = run(LLAMA_31_8B, mode="training", weight_dtype="bfloat16")["breakdown"]
    assert breakdown["gradients"] == 2 * LLAMA_PARAMETERS
    assert breakdown["optimizer_states"] == 4 * LLAMA_PARAMETERS


@pytest.mark.parametrize(("optimizer", "states"), [("sgd", 0), ("sgd_momentum", 1)])
def test_sgd_keeps_zero_or_one_state(optimizer, states):
    result = run(LLAMA_31_8B, mode="training", mixed_precision=True, optimizer=optimizer)
    assert result["breakdown"]["optimizer_states"] == states * 4 * LLAMA_PARAMETERS


def test_8_bit_adamw_adds_block_absmax():
    # 2 uint8 states + one fp32 absmax per 2048 values per state; 8,030,261,248 / 2048 =
    # 3,921,026 blocks (rounded up)
    blocks = -(-LLAMA_PARAMETERS // 2048)
    assert blocks == 3_921_026
    result = run(LLAMA_31_8B, mode="training", mixed_precision=True, optimizer="adamw_8bit")
    assert result["breakdown"]["optimizer_states"] == 2 * LLAMA_PARAMETERS + 2 * 4 * blocks


def test_partial_fine_tuning_trains_a_share():
    result = run(
        LLAMA_31_8B,
        mode="training",
        finetuning="partial",
        trainable_percent=10,
        mixed_precision=True,
    )
    trainable = 803_026_125  # 8,030,261,248 / 10 = 803,026,124.8, to the nearest
    assert result["parameters"]["trainable"] == trainable
    assert result["breakdown"]["gradients"] == round(4 * LLAMA_PARAMETERS / 10)
    # 16-bit weights for all, fp32 master for the trained tenth
    assert result["breakdown"]["weights"] == 2 * LLAMA_PARAMETERS + round(4 * LLAMA_PARAMETERS / 10)


# --- activations ---------------------------------------------------------------------------


def test_inference_activations_are_one_layer_and_the_last_logits():
    # prefill of 2048 tokens, bf16, in a layer after the first: MLP phase = tokens * ((2 hidden
    # copies + the embedding output LlamaModel.forward keeps + the layer's input the loop keeps)
    # * 4096 + 3 * 14336 intermediates) * 2 B = 2048 * 59,392 * 2 = 243,269,632, larger than
    # attention (2048 * (3 * 4096 + q 4096 + k 1024 + v 1024 + rotary 5120 + out 4096) * 2 =
    # 113,246,208); logits of the last position: 128,256 * (2 + 4 fp32 copy) = 769,536
    result = run(LLAMA_31_8B, sequence_length=2048)
    assert result["breakdown"]["activations"] == 243_269_632 + 769_536


def test_nf4_prefill_dequantises_the_largest_matrix():
    # bitsandbytes matmul_4bit dequantises to 16-bit for more than one token: the largest matrix
    # is gate/up/down, 4096 x 14336 x 2 B = 117,440,512 on top of the bf16 prefill peak above
    result = run(LLAMA_31_8B, weight_dtype="nf4", sequence_length=2048)
    assert result["breakdown"]["activations"] == 243_269_632 + 769_536 + 117_440_512
    one_token = run(LLAMA_31_8B, weight_dtype="nf4", sequence_length=1)
    bf16_one_token = run(LLAMA_31_8B, sequence_length=1)
    assert one_token["breakdown"]["activations"] == bf16_one_token["breakdown"]["activations"]


def test_training_activations_store_every_layer_and_the_loss_logits():
    # bf16, flash, batch 1 x 2048 tokens. Per layer, per token:
    #   two RMSNorms: 4096 * (4 fp32 input + 2 normalised + 2 output) * 2 = 65,536
    #   attention: (q 4096 + k 1024 + v 1024 + out 4096) * 2 = 20,480
    #   gated MLP: 4 * 14336 * 2 = 114,688
    # plus logsumexp 32 heads * 2048 * 4 = 262,144 per layer
    # The loss: three fp32 b*s*V tensors (log_softmax's saved output, the NLL gradient into it,
    # its own gradient), no bf16 logits: validation qwen3-train-b2-s512-adamw-bf16-sdpa, peak
    # while LogSoftmaxBackward0 runs (docs/accuracy.md).
    # The peak holds max(saved activations, gradients) above weights + optimizer (no gradient is
    # allocated when backward starts: llama-train-b2-s256-adamw-fp32-sdpa), shown as the
    # activations beyond the bf16 gradients, 2 B x 8,030,261,248.
    tokens = 2048
    per_layer = tokens * (65_536 + 20_480 + 114_688) + 262_144
    final_norm = tokens * 4096 * (4 + 2 + 2)
    logits = tokens * 128_256 * 3 * 4
    saved = 32 * per_layer + final_norm + logits
    # 32 * 411,303,936 + 67,108,864 + 3,152,019,456
    assert saved == 16_380_854_272
    result = run(LLAMA_31_8B, mode="training", sequence_length=2048)
    assert result["breakdown"]["gradients"] == 2 * LLAMA_PARAMETERS
    assert result["breakdown"]["activations"] == saved - 2 * LLAMA_PARAMETERS


def test_lora_keeps_adapter_inputs_not_frozen_projection_inputs():
    # Llama-3.1-8B, LoRA r=16 on all linear layers, bf16 base, 2048 tokens. Per layer, per token:
    #   frozen RMSNorms keep only their fp32 input: 2 * 4096 * 4 = 32,768
    #   attention q, k, v, out: 20,480 (+ logsumexp 32 * 2048 * 4 per layer)
    #   frozen gated MLP: gate out, act out, up out (no down_proj input): 3 * 14336 * 2 = 86,016
    #   PEFT casts each adapted layer's input to fp32 for lora_A, lora_B keeps the r outputs:
    #     q, k, v: 3 * (4096 + 16) * 4; o, gate, up: 3 * (4096 + 16) * 4; down: (14336 + 16) * 4
    lora = 6 * (4096 + 16) * 4 + (14336 + 16) * 4
    assert lora == 156_096
    tokens = 2048
    per_layer = tokens * (32_768 + 20_480 + 86_016 + lora) + 32 * 2048 * 4
    # frozen final norm; the loss's three fp32 b*s*V tensors (validation
    # llama-train-b2-s512-lora-bf16-sdpa)
    final = tokens * 4096 * 4 + tokens * 128_256 * 12
    result = run(LLAMA_31_8B, mode="training", finetuning="lora", sequence_length=tokens)
    # shown beyond the fp32 adapter gradients (the peak holds the larger of the two)
    gradients = 4 * result["parameters"]["trainable"]
    assert result["breakdown"]["gradients"] == gradients
    assert result["breakdown"]["activations"] == 32 * per_layer + final - gradients


def test_moe_activations_follow_the_routed_experts():
    # Mixtral-8x7B (8 experts, top-2, expert MLP 14336), bf16 training, 16 x 1024 tokens
    # (enough for the saved tensors to exceed the gradients). Per token:
    #   norms 2 * 4096 * 8 = 65,536; attention 20,480; router fp32 softmax 8 * 4 = 32;
    #   per routed (token, expert) pair: gathered input and expert output 4096 * (2 + 2) plus
    #   4 gated-MLP intermediates 4 * 14336 * 2: 2 pairs * (16,384 + 114,688) = 262,144
    tokens = 16 * 1024
    per_layer = tokens * (65_536 + 20_480 + 32 + 262_144) + 32 * tokens * 4
    # final norm; the loss's three fp32 b*s*V tensors (validation
    # mixtral-train-b2-s256-adamw-fp32-sdpa)
    final = tokens * 4096 * 8 + tokens * 32_000 * 12
    mixtral = {"hf_config": config("mistralai--Mixtral-8x7B-v0.1")}
    result = run(mixtral, mode="training", batch_size=16, sequence_length=1024)
    # the activations line is what is saved beyond the bf16 gradients (46,702,792,704 x 2 B)
    saved = 32 * per_layer + final
    # 32 * 5,706,874,880 + 536,870,912 + 6,291,456,000
    assert saved == 189_448_323_072
    assert result["breakdown"]["gradients"] == 2 * 46_702_792_704
    assert result["breakdown"]["activations"] == saved - 2 * 46_702_792_704


def test_gradient_checkpointing_keeps_layer_inputs_and_one_layer():
    # 16 x 2048 tokens, so that what is kept exceeds the bf16 gradients (2 B x 8,030,261,248),
    # which the activations line is shown beyond; logsumexp 16 * 32 heads * 2048 * 4
    tokens = 16 * 2048
    one_layer = tokens * (65_536 + 20_480 + 114_688) + 16 * 262_144
    inputs = 32 * tokens * 4096 * 2
    final = tokens * 4096 * 8 + tokens * 128_256 * 12  # final norm; three fp32 loss tensors
    result = run(LLAMA_31_8B, mode="training", gradient_checkpointing=True, batch_size=16)
    # the layer is recomputed only when backward reaches it, once the loss tensors are freed:
    # the larger of the two (the loss, 50.4 GB, against one layer's 6.7 GB), not their sum
    assert final > one_layer
    saved = inputs + final
    assert saved > 2 * LLAMA_PARAMETERS
    assert result["breakdown"]["activations"] == saved - 2 * LLAMA_PARAMETERS


def test_checkpointing_recomputes_a_layer_after_the_loss_is_freed():
    # llama-train-b8-s512-adamw-fp32-ckpt-sdpa (validation/cases.py: hidden 512, MLP 1536,
    # 8 heads of 64, 2 KV heads, 4 layers, vocab 32,000), float32: step 2's backward peaked at
    # 1,556.3 MiB above weights and optimizer states (validation/results/, torch 2.13 CPU,
    # transformers 5.25), the kept inputs + final norm + loss, with no recomputed layer beside
    tokens = 8 * 512
    inputs = 4 * tokens * 512 * 4  # each layer's input, float32: 33,554,432
    # final RMSNorm: its float32 input + the normalised input + its output, 4 B each
    final_norm = tokens * 512 * (4 + 2 * 4)  # 25,165,824
    loss = tokens * 32_000 * 3 * 4  # log_softmax output, NLL gradient, its gradient: 1.57 GB
    # one layer's saved set: two norms (12 B per element each), q 512 + k 128 + v 128 + output
    # 512 (float32), the logsumexp (8 heads x 4 B per token), gate/up/act/product 4 x 1536 x 4
    one_layer = tokens * (2 * 512 * 12 + (512 + 128 + 128 + 512) * 4 + 8 * 4 + 4 * 1536 * 4)
    assert one_layer == 172_097_536  # 164.1 MiB, the estimate's excess before
    from validation.cases import FAMILY_CONFIGS

    config = FAMILY_CONFIGS["llama"]
    fields = {"mode": "training", "gradient_checkpointing": True, "weight_dtype": "float32"}
    result = run({"hf_config": config}, batch_size=8, sequence_length=512, **fields)
    gradients = result["breakdown"]["gradients"]
    assert result["breakdown"]["activations"] + gradients == inputs + final_norm + loss
    assert (inputs + final_norm + loss) / 2**20 == 1556.0  # measured 1,556.3 MiB

    # with a vocabulary of 512 the recomputed layer is the larger: kept inputs + one layer (and
    # the final norm's saved tensors, counted throughout backward as without checkpointing).
    # Later, backward recomputes layer 0 beside every gradient but the input embeddings' (their
    # backward comes last): 12,587,520 parameters (embeddings and LM head 2 x 512 x 512, 4
    # layers of 3,015,680, the final norm 512) x 4 B = 50,350,080, less 512 x 512 x 4
    small = run(
        {"hf_config": {**config, "vocab_size": 512}}, batch_size=8, sequence_length=512, **fields
    )
    assert tokens * 512 * 12 < one_layer
    breakdown = small["breakdown"]
    assert breakdown["gradients"] == 12_587_520 * 4
    loss_phase = inputs + final_norm + one_layer  # 230,817,792
    recompute_phase = 50_350_080 - 512 * 512 * 4 + one_layer + tokens * 512 * 4  # 229,787,648
    total = breakdown["activations"] + breakdown["gradients"]
    assert total == max(loss_phase, recompute_phase) == loss_phase


def test_checkpointing_recomputes_the_first_layer_beside_the_gradients():
    # Llama-3.1-8B, bf16, 1 x 8192 tokens: before backward's first gradient, the kept inputs (32
    # x 8192 x 4096 x 2), the final norm and the loss, 15.02 GB, are less than the gradients
    # (2 B x 8,030,261,248 = 16.06 GB). Backward recomputes layer 0 last, with every gradient
    # allocated but the input embeddings' (128,256 x 4096 x 2 B, untied, their backward comes
    # after): the layer's saved set (per token 65,536 + 20,480 + 114,688 B, and the logsumexp
    # 32 heads x 8192 x 4 B) and its kept input beside them, shown beyond the gradients
    tokens = 8192
    one_layer = tokens * (65_536 + 20_480 + 114_688) + 32 * tokens * 4
    kept_input = tokens * 4096 * 2
    embedding_gradients = 128_256 * 4096 * 2
    loss_phase = 32 * kept_input + tokens * 4096 * 8 + tokens * 128_256 * 12
    assert loss_phase == 15_023_996_928 < 2 * LLAMA_PARAMETERS
    fields = {"mode": "training", "gradient_checkpointing": True}
    result = run(LLAMA_31_8B, sequence_length=tokens, **fields)
    assert result["breakdown"]["gradients"] == 2 * LLAMA_PARAMETERS
    beyond = one_layer + kept_input - embedding_gradients
    assert result["breakdown"]["activations"] == beyond == 661_651_456
    assert result["peak"]["phase"] == "backward"
    assert result["peak"]["text"].startswith("The peak is late in backward: gradient checkpointing")
    # at 2048 tokens the layer and its input (0.43 GB) are less than the embeddings' gradients
    # (1.05 GB): the optimizer step, with every gradient, stays the peak
    short = run(LLAMA_31_8B, sequence_length=2048, **fields)
    assert short["breakdown"]["activations"] == 0
    assert short["peak"]["phase"] == "optimizer_step"


def test_eager_attention_adds_the_score_matrices():
    # eager training adds per layer: b * heads * s^2 * (4 fp32 softmax + 2 bf16 cast) and stores
    # k and v repeated to 32 heads instead of 8 (+ 2 * 3072 values per token), minus logsumexp.
    # Batch 4, so that both exceed the gradients the activations line is shown beyond.
    b, s = 4, 1024
    fields = {"mode": "training", "batch_size": b, "sequence_length": s}
    flash = run(LLAMA_31_8B, **fields)["breakdown"]["activations"]
    eager = run(LLAMA_31_8B, attention_implementation="eager", **fields)["breakdown"]
    assert flash > 0 and eager["gradients"] == 2 * LLAMA_PARAMETERS
    per_layer = b * 32 * s * s * 6 + b * s * 2 * 3072 * 2 - b * 32 * s * 4
    assert eager["activations"] - flash == 32 * per_layer


def test_activations_grow_with_batch_and_sequence():
    # LoRA: the adapter gradients are small, so the activations line is above them at 512 tokens
    fields = {"mode": "training", "finetuning": "lora"}
    small = run(LLAMA_31_8B, batch_size=1, sequence_length=512, **fields)
    assert small["breakdown"]["activations"] > 0
    assert (
        run(LLAMA_31_8B, batch_size=2, sequence_length=512, **fields)["total_bytes"]
        > small["total_bytes"]
    )
    assert (
        run(LLAMA_31_8B, batch_size=1, sequence_length=1024, **fields)["total_bytes"]
        > small["total_bytes"]
    )


def test_llama_eager_prefill_holds_10_bytes_per_score_element_in_bfloat16():
    # eager_attention_forward: bf16 scores, + mask (a new tensor), then softmax(dtype=float32),
    # which ATen (aten/src/ATen/native/SoftMax.cpp softmax(input, dim, dtype)) runs on a float32
    # copy, `input_.toType(dtype)`, of a bfloat16 input: 2 + 4 + 4 = 10 B per element alive at
    # once (then the bf16 cast, 2 + 4 + 2). Validation deepseek_v2-infer-b4-s1024-bf16-eager's
    # live-tensor snapshot: 64 + 128 + 128 MiB on 33.6 M score elements. Llama-3.1-8B, 2048
    # tokens, per token: residual, normalised input and the embedding output LlamaModel keeps
    # 3 * 4096, q 4096, k 1024, v 1024, rotary q and k 5120, out 4096, K/V repeated to 32 heads
    # 2 * 4096, all * 2 B = 71,680 B; scores 32 heads * 2048^2 * 10; the 4-D bf16 mask 2048^2 * 2
    attention = 2048 * 71_680 + 32 * 2048 * 2048 * 10 + 2048 * 2048 * 2
    assert attention == 1_497_366_528  # more than the MLP's 243,269,632
    logits = 128_256 * (2 + 4)
    result = run(LLAMA_31_8B, sequence_length=2048, attention_implementation="eager")
    assert result["breakdown"]["activations"] == attention + logits
    # float16 takes the fused half_to_float kernel on a CUDA GPU: no float32 copy, 2 + 4 + 2 B
    fp16 = run(
        LLAMA_31_8B, weight_dtype="float16", sequence_length=2048, attention_implementation="eager"
    )
    assert result["breakdown"]["activations"] - fp16["breakdown"]["activations"] == (
        32 * 2048 * 2048 * (10 - 8)
    )


def test_falcon_eager_prefill_keeps_the_softmax_and_the_previous_layers_probabilities():
    # transformers 5.25 modeling_falcon.py calls eager_attention_forward (line 229): the bf16
    # masked scores, their float32 copy and the float32 softmax, 2 + 4 + 4 B per element; the
    # decoder layer returns the probabilities and FalconModel's loop keeps `outputs` until the
    # next layer returns: one more 2 B tensor from the second layer on.
    # falcon-7b: hidden 4544, 71 heads of 64, one KV head, 32 layers; per token (2 B each):
    # residual, normalised input and the kept embedding output 3 * 4544, q 4544, k 64, v 64,
    # rotary 4608, out 4544, K/V repeated to all heads 2 * 4544: 36,544 values = 73,088 B; the
    # bf16 mask 2048^2 * 2
    elements = 71 * 2048 * 2048  # one score-sized tensor: 297,795,584 elements
    attention = 2048 * 73_088 + elements * (10 + 2) + 2048 * 2048 * 2
    assert attention == 3_731_619_840
    logits = 65_024 * (2 + 4)
    falcon = config("tiiuae--falcon-7b")
    result = run({"hf_config": falcon}, sequence_length=2048, attention_implementation="eager")
    assert result["breakdown"]["activations"] == attention + logits
    # a one-layer falcon has no previous layer and its input is the embedding output itself:
    # no carried probabilities, two hidden copies (64,000 B per token)
    one_layer = {"hf_config": {**falcon, "num_hidden_layers": 1}}
    single = run(one_layer, sequence_length=2048, attention_implementation="eager")
    alone = 2048 * 64_000 + elements * 10 + 2048 * 2048 * 2
    assert single["breakdown"]["activations"] == alone + logits


GPT2 = {"hf_config": config("openai-community--gpt2")}
GPT2_PARAMETERS = 124_439_808  # memory-model.md (published count)


def test_gpt2_eager_prefill_holds_two_compute_dtype_score_tensors():
    # modeling_gpt2.py eager_attention_forward (lines 59-67): `matmul(q, k^T) * scaling`, then
    # `+ attention_mask`, then softmax, each a new tensor made while only its input lives, and
    # `.type(value.dtype)` a no-op: two score-sized bf16 tensors at once (2 x 2 B per element);
    # the block drops the probabilities (`attn_output, _ = self.attn(...)`), nothing is carried.
    # GPT-2 small in bf16, 1 x 1024 tokens, per token (2 B each): residual, normalised input and
    # the kept embedding output 3 * 768, q k v 3 * 768, rotary q and k 2 * 768, out 768, K/V
    # repeated 2 * 768: 8,448 values = 16,896 B; 12 heads; the bf16 mask 1024^2 * 2
    attention = 1024 * 16_896 + 12 * 1024 * 1024 * 2 * 2 + 1024 * 1024 * 2
    assert attention == 69_730_304
    # more than the MLP: (4 * 768 + (2 + 2) * 3072) * 2 B = 30,720 B per token, 31,457,280 B
    logits = 50_257 * (2 + 4)  # the last position's bf16 logits and the fp32 copy
    result = run(
        GPT2,
        weight_dtype="bfloat16",
        sequence_length=1024,
        attention_implementation="eager",
    )
    assert result["breakdown"]["activations"] == attention + logits


def test_gelu_new_holds_two_more_mlp_tensors_in_prefill():
    # NewGELUActivation (transformers 5.25 activations.py) is a chain of pow/mul/add/tanh: in a
    # prefill it holds its input, `0.5 * input` and two chain temporaries at once, two more
    # tokens x 4h tensors than a fused activation's input and output (live-tensor snapshot at
    # the peak of validation gpt2-infer-b4-s512-fp32-sdpa: c_fc's addmm, pow and two mul
    # outputs in mlp.act, 4 x 16 MiB). GPT-2 small fp32, 4 x 512 tokens, per token: residual,
    # normalised input, the kept embedding output and the layer's input 4 * 768 * 4, MLP
    # (2 + 2) * 3072 * 4: 61,440 B (attention: 9,216 + (2304 + 1536 + 768) * 4 = 27,648)
    mlp = 2048 * 61_440
    logits = 4 * 50_257 * (4 + 4)  # the last position's fp32 logits and the fp32 copy
    result = run(GPT2, weight_dtype="float32", batch_size=4, sequence_length=512)
    assert result["breakdown"]["activations"] == mlp + logits


def test_prefill_keeps_the_embedding_output_and_the_layer_input():
    # llama-infer-b16-s512-bf16-sdpa (validation/cases.py llama: hidden 512, MLP 1536, 4
    # layers, vocab 32,000): the live-tensor snapshot at its peak, in layer 3's MLP, holds the
    # three MLP-wide tensors (act, up, their product: 3 x 24 MiB) and four hidden-wide ones of
    # 8 MiB: the embedding output (LlamaModel.forward's `inputs_embeds`), layer 2's output (the
    # layer's input, kept by the loop), the post-attention residual and the normalised input
    from validation.cases import FAMILY_CONFIGS

    tokens = 16 * 512
    mlp = tokens * (4 * 512 + 3 * 1536) * 2
    # 104 MiB; measured 104.3 MiB above the weights and the KV cache (validation/results/)
    assert mlp == 104 * 2**20
    logits = 16 * 32_000 * (2 + 4)
    config = {"hf_config": FAMILY_CONFIGS["llama"]}
    result = run(config, weight_dtype="bfloat16", batch_size=16, sequence_length=512)
    assert result["breakdown"]["activations"] == mlp + logits
    # a one-layer model: its input is the embedding output, kept by the loop: three copies
    one_layer = {"hf_config": {**FAMILY_CONFIGS["llama"], "num_hidden_layers": 1}}
    single = run(one_layer, weight_dtype="bfloat16", batch_size=16, sequence_length=512)
    assert single["breakdown"]["activations"] == mlp - tokens * 512 * 2 + logits


def test_gpt2_training_saves_layer_norm_gelu_new_and_three_fp32_loss_tensors():
    # GPT-2 small, fp32, flash, 1 x 1024 tokens. Per layer, per token (validation
    # gpt2-train-b4-s256-adamw-fp32-sdpa, saved_tensors):
    #   two LayerNorms: input and (for the projection reading it) output, 2 * 768 * 2 * 4 = 12,288
    #   attention q, k, v, out: 4 * 768 * 4 = 12,288; logsumexp 12 heads * 4 = 48
    #   MLP: fc1 out and act out + 3 inside gelu_new: 5 * 3072 * 4 = 61,440
    # 12 layers: 12 * 86,064 = 1,032,768; final LayerNorm 768 * 2 * 4 = 6,144; the loss's three
    # fp32 tensors 50,257 * 12 = 603,084: 1,641,996 per token
    saved = 1024 * 1_641_996
    gradients = 4 * GPT2_PARAMETERS
    result = run(GPT2, mode="training", weight_dtype="float32", sequence_length=1024)
    assert result["breakdown"]["gradients"] == gradients
    # shown beyond the gradients (the peak holds the larger of the two)
    assert result["breakdown"]["activations"] == saved - gradients == 1_183_644_672


def test_autocast_copies_the_tied_lm_head_once_and_no_biases_or_position_table():
    # GPT-2 small under autocast: 16-bit copies of c_attn 768x2304, attn c_proj 768x768, c_fc
    # 768x3072, mlp c_proj 3072x768 (7,077,888 per layer, 12 layers) and the tied wte matrix
    # 50,257 x 768 once; not wpe, biases or LayerNorms (validation
    # gpt2-train-b2-s256-adamw-bf16mixed-eager: measured autocast copies)
    copies = 12 * 7_077_888 + 50_257 * 768
    assert copies == 123_532_032
    result = run(GPT2, mode="training", weight_dtype="float32", mixed_precision=True)
    assert result["breakdown"]["weights"] == 4 * GPT2_PARAMETERS + 2 * copies


def test_deepseek_routers_stay_float32():
    # _keep_in_fp32_modules_strict: the 26 MoE layers' routers, 64 x 2048 each, at 4 B in a bf16
    # model (validation deepseek_v2-infer-b2-s512-bf16-eager: weights exact with it)
    deepseek = {"hf_config": config("deepseek-ai--DeepSeek-V2-Lite")}
    result = run(deepseek, sequence_length=1)
    routers = 26 * 64 * 2048
    assert result["breakdown"]["weights"] == 2 * result["parameters"]["total"] + 2 * routers


def test_gemma2_soft_cap_keeps_one_more_logit_tensor_in_training():
    # final_logit_softcapping: tanh saves its bf16 b*s*V output (validation
    # gemma2-train-b1-s512-lora-bf16-eager); Gemma-2-9B vocab 256,000, 512 tokens, LoRA
    fields = {
        "mode": "training",
        "finetuning": "lora",
        "sequence_length": 512,
        "weight_dtype": "bfloat16",
    }
    capped = run(GEMMA_2_9B, **fields)["breakdown"]
    uncapped_config = {
        "hf_config": {**config("google--gemma-2-9b"), "final_logit_softcapping": None}
    }
    uncapped = run(uncapped_config, **fields)["breakdown"]
    assert uncapped["activations"] > 0
    assert capped["activations"] - uncapped["activations"] == 512 * 256_000 * 2


def test_gradients_with_more_bytes_than_the_activations_leave_no_activations_line():
    # Llama-3.1-8B bf16, 1 x 128 tokens: the saved tensors (32 layers * 128 * 200,704 + ... <
    # 1 GiB) are far below the 2 B x 8,030,261,248 gradients, which set the peak
    result = run(LLAMA_31_8B, mode="training", sequence_length=128)
    breakdown = result["breakdown"]
    assert breakdown["activations"] == 0
    assert breakdown["gradients"] == 2 * LLAMA_PARAMETERS
    assert result["total_bytes"] == sum(breakdown.values())
    assert any("beyond the gradients" in note for note in result["notes"])


# --- parallelism ---------------------------------------------------------------------------


def test_tensor_parallel_splits_weights_and_kv_heads():
    result = run(LLAMA_31_8B, num_gpus=2, tensor_parallel=2, sequence_length=1)
    # linear layers and (vocab-parallel) embeddings halve; norms are replicated
    expected = 2 * (LLAMA_LINEAR + 2 * LLAMA_EMBEDDINGS) // 2 + 2 * LLAMA_NORMS
    assert result["breakdown"]["weights"] == expected
    assert result["breakdown"]["kv_cache"] == 131_072 // 2  # 4 of 8 KV heads per GPU
    assert result["num_gpus"] == 2


def test_tensor_parallel_beyond_kv_heads_replicates_them():
    # tp 16 > 8 KV heads: each GPU keeps one KV head: 2 * 32 * 1 * 128 * 2 = 16,384 B/token
    result = run(LLAMA_31_8B, num_gpus=16, tensor_parallel=16, sequence_length=1)
    assert result["breakdown"]["kv_cache"] == 16_384
    assert any("one replicated KV head" in note for note in result["notes"])


def test_zero_stages_shard_optimizer_gradients_and_parameters():
    fields = {"mode": "training", "mixed_precision": True, "num_gpus": 8}
    p = LLAMA_PARAMETERS
    zero1 = run(LLAMA_31_8B, zero_stage=1, **fields)["breakdown"]
    assert zero1["optimizer_states"] == 8 * p // 8
    assert zero1["weights"] == 2 * p + 4 * p // 8  # fp32 master weights are sharded too
    assert zero1["gradients"] == 4 * p
    zero2 = run(LLAMA_31_8B, zero_stage=2, **fields)["breakdown"]
    # DeepSpeed's default reduce_bucket_size, 5e8 elements of bf16 gradients, through backward
    bucket = 500_000_000 * 2
    assert zero2["gradients"] == 4 * p // 8 + bucket
    zero3 = run(LLAMA_31_8B, zero_stage=3, **fields)["breakdown"]
    # parameters sharded; at the turn to backward DeepSpeed keeps what it reuses within
    # stage3_max_reuse_distance (1e9): the last 5e8 parameters, plus the module being computed,
    # at most the largest weight (the embeddings), gathered whole in bf16
    gathered = 500_000_000 + LLAMA_EMBEDDINGS
    assert zero3["weights"] == round(2 * p / 8 + 2 * gathered + 4 * p / 8)
    assert zero3["gradients"] == round(4 * p / 8) + 2 * LLAMA_EMBEDDINGS + bucket


def test_the_hf_trainers_auto_buckets_are_hidden_size_squared():
    fields = {"mode": "training", "mixed_precision": True, "num_gpus": 8, "zero_stage": 3}
    p = LLAMA_PARAMETERS
    auto = run(LLAMA_31_8B, sharding="deepspeed_hf_auto", **fields)["breakdown"]
    # transformers integrations/deepspeed.py: reduce_bucket_size "auto" = hidden_size**2
    assert auto["gradients"] == round(4 * p / 8) + 2 * LLAMA_EMBEDDINGS + 2 * 4096**2


def test_fsdp_gathers_the_root_unit_and_two_decoder_layers():
    fields = {"mode": "training", "mixed_precision": True, "num_gpus": 8}
    p = LLAMA_PARAMETERS
    full = run(LLAMA_31_8B, sharding="fsdp", zero_stage=3, **fields)["breakdown"]
    # FULL_SHARD: embeddings and the (untied) LM head stay gathered, one layer computes and the
    # next is prefetched, all bf16; one layer's bf16 gradient is whole before its reduce-scatter
    root = 2 * LLAMA_EMBEDDINGS
    assert full["weights"] == round(2 * p / 8 + 2 * (root + 2 * LLAMA_LAYER_LINEAR) + 4 * p / 8)
    assert full["gradients"] == round(4 * p / 8 + 2 * LLAMA_LAYER_LINEAR)
    grad_op = run(LLAMA_31_8B, sharding="fsdp", zero_stage=2, **fields)["breakdown"]
    # SHARD_GRAD_OP: whole parameters, sharded gradients but the one layer's being reduced
    assert grad_op["weights"] == 2 * p + 4 * p // 8
    assert grad_op["gradients"] == round(4 * p / 8 + 2 * LLAMA_LAYER_LINEAR)


def test_fsdp_has_no_stage_1():
    with pytest.raises(EstimateError, match="FSDP has no stage 1"):
        run(LLAMA_31_8B, mode="training", num_gpus=8, zero_stage=1, sharding="fsdp")


def test_pipeline_parallel_reports_the_busiest_stage():
    # pp 4: 8 layers per stage; the first stage holds the embeddings, the last the LM head
    result = run(LLAMA_31_8B, num_gpus=4, pipeline_parallel=4, sequence_length=1)
    # each stage: 8 layers' matrices, a quarter of the norms (266,240 / 4 = 66,560) and the
    # embeddings (first) or the equally large LM head (last), all in bf16
    stage = 8 * LLAMA_LAYER_LINEAR + LLAMA_NORMS // 4 + LLAMA_EMBEDDINGS
    assert result["breakdown"]["weights"] == 2 * stage
    assert result["breakdown"]["kv_cache"] == 131_072 // 4


# --- runtime overhead and notes ------------------------------------------------------------


def test_runtime_overhead_defaults_to_one_gib_and_can_be_removed():
    assert run(LLAMA_31_8B)["breakdown"]["runtime_overhead"] == GIB
    assert run(LLAMA_31_8B, runtime_overhead_bytes=0)["breakdown"]["runtime_overhead"] == 0
    assert run(LLAMA_31_8B, runtime_overhead_bytes=123)["breakdown"]["runtime_overhead"] == 123


def test_the_total_is_the_sum_of_the_breakdown():
    result = run(LLAMA_31_8B, mode="training", finetuning="lora")
    assert result["total_bytes"] == sum(result["breakdown"].values())


def test_it_notes_last_position_logits():
    notes = run(LLAMA_31_8B)["notes"]
    assert any("last position's logits in float32" in note for note in notes)


def test_it_rejects_lora_targets_the_model_lacks():
    # falcon's projections are query_key_value, dense, dense_h_to_4h, dense_4h_to_h
    with pytest.raises(EstimateError) as error:
        run(FALCON_7B, mode="training", finetuning="lora", lora_target_modules=["q_proj"])
    assert error.value.field == "lora_target_modules"
    assert "query_key_value" in error.value.message


def test_zero_offload_moves_the_optimizer_step_to_host_ram():
    fields = {"mode": "training", "mixed_precision": True, "num_gpus": 8, "zero_stage": 2}
    p = LLAMA_PARAMETERS
    result = run(LLAMA_31_8B, offload="optimizer", **fields)
    breakdown = result["breakdown"]
    # on the GPU: the bf16 weights and DeepSpeed's 5e8-element bf16 gradient bucket only
    assert breakdown["weights"] == 2 * p
    assert breakdown["optimizer_states"] == 0
    assert breakdown["gradients"] == 500_000_000 * 2
    # on the host, each rank's eighth of: AdamW's two float32 states (8 B), the float32 master
    # weights (4 B) and the float32 gradients (4 B) = 16 B a parameter / 8
    assert result["host_memory_bytes"] == 16 * p // 8
    assert result["total_bytes"] == sum(breakdown.values())  # the host is not in the total


def test_offloading_parameters_leaves_the_gpu_the_gathered_working_set():
    fields = {"mode": "training", "mixed_precision": True, "num_gpus": 8, "zero_stage": 3}
    p = LLAMA_PARAMETERS
    result = run(LLAMA_31_8B, offload="optimizer_and_parameters", **fields)
    # the bf16 parameter shards (2 B / 8) join the optimizer state on the host
    assert result["host_memory_bytes"] == round(16 * p / 8 + 2 * p / 8)
    # what ZeRO-3 gathers at the turn to backward stays: 5e8 + the embeddings, in bf16
    assert result["breakdown"]["weights"] == 2 * (500_000_000 + LLAMA_EMBEDDINGS)
    assert run(LLAMA_31_8B, mode="training")["host_memory_bytes"] == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mode": "inference"}, "offload moves training state"),
        ({"mode": "training", "num_gpus": 8}, "set zero_stage"),
        ({"mode": "training", "num_gpus": 8, "zero_stage": 2, "sharding": "fsdp"}, "FSDP"),
    ],
)
def test_offload_is_refused_where_no_framework_offers_it(fields, message):
    with pytest.raises(EstimateError, match=message):
        run(LLAMA_31_8B, offload="optimizer", **fields)


def test_the_peak_phase_says_why_activations_read_zero():
    # full training, batch 1 x 128 tokens: the bf16 gradients (8,030,261,248 x 2 bytes) outweigh
    # any layer's saved activations, so the peak is where every gradient exists
    result = run(LLAMA_31_8B, mode="training", batch_size=1, sequence_length=128)
    assert result["breakdown"]["activations"] == 0
    peak = result["peak"]
    assert peak["phase"] == "optimizer_step"
    assert peak["gradients_bytes"] == 2 * LLAMA_PARAMETERS
    assert 0 < peak["activation_peak_bytes"] < 2 * LLAMA_PARAMETERS
    assert "gradient checkpointing or a smaller batch cannot lower it" in peak["text"]
    # a long batch: the activations set the peak in backward
    long = run(LLAMA_31_8B, mode="training", batch_size=8, sequence_length=4096)["peak"]
    assert long["phase"] == "backward"
    assert long["activation_peak_bytes"] > long["gradients_bytes"]
    assert run(LLAMA_31_8B)["peak"] is None  # inference
