"""Context parallelism in training: each sequence split over context_parallel GPUs.

The model follows Megatron-Core with TransformerEngine's ring attention (NVIDIA/Megatron-LM
d98e8a6, NVIDIA/TransformerEngine d0067d0):
- megatron/training/arguments.py: world_size = tp x pp x cp x dp, and
  `assert args.seq_length % (args.context_parallel_size * 2) == 0` (the sequence is cut into
  2 x cp chunks, rank i keeping chunks i and 2cp - 1 - i: megatron/core/utils.py
  get_batch_on_this_cp_rank);
- transformer_engine/pytorch/attention/dot_product_attention/context_parallel.py,
  AttnFuncWithCPAndKVP2P: forward keeps all cp_size K/V receive buffers (`p2p_comm_buffers`) until
  the layer's attention returns; backward allocates two (2, *kv.shape) buffers (K/V and dK/dV,
  double-buffered) and dq_buffer = empty_like(q);
- megatron/core/optimizer/__init__.py: the distributed optimizer shards over intra_dp_cp_group
  (data x context parallel ranks); weights and gradients are replicated over cp.
Every expected number below is worked out by hand from the tiny model's shape.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calculator.engine import EstimateError, calculate
from calculator.presenters.gpu_display import layout_label

CONFIGS = Path(__file__).parent / "fixtures" / "configs"
GIB = 1024**3

# A tiny Llama: 2 layers, hidden 128, 4 heads of 32 (2 KV heads), MLP 256, vocab 500, untied
TINY_LLAMA = {
    "hf_config": {
        "model_type": "llama",
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 500,
        "torch_dtype": "bfloat16",
    }
}
# the same with a 16-token vocabulary: the loss's logits are smaller than the ring's buffers
TINY_VOCAB_16 = {"hf_config": {**TINY_LLAMA["hf_config"], "vocab_size": 16}}
# parameters: embeddings and LM head 2 x 500 x 128 = 128,000; per layer q, o 128x128, k, v
# 128x64, gate, up, down 128x256 (147,456) and two norms (256); final norm 128
TINY_PARAMETERS = 128_000 + 2 * (147_456 + 256) + 128  # 423,552

# Saved activations per token of one CP rank (batch 1, pure bf16, flash attention, tp 1):
# per layer two RMSNorms 128 x 2 x (4 fp32 input + 2 x 2 B) = 2,048; q, k, v (128 + 64 + 64) x 2
# = 512, the attention output 128 x 2 = 256, the logsumexp 4 heads x 4 B = 16; the gated MLP's
# four 256-wide tensors 256 x 4 x 2 = 2,048: 4,880 per layer, 9,760 for both
LAYERS_PER_TOKEN = 2 * (2_048 + 512 + 256 + 16 + 2_048)
# the final norm 128 x 8 = 1,024; the loss's three float32 logits per vocabulary entry
FINAL_NORM_PER_TOKEN = 1_024
LOSS_PER_TOKEN = 3 * 4  # x vocab_size
# ring attention: one rank's K and V chunk, (64 + 64) x 2 B = 256 per token; its q, 128 x 2 = 256
KV_CHUNK_PER_TOKEN = 256
Q_CHUNK_PER_TOKEN = 256


def train(model: dict, **fields) -> dict:
    return calculate({"model": model, "mode": "training", "runtime_overhead_bytes": 0, **fields})


def test_each_rank_keeps_the_activations_of_its_share_of_the_sequence():
    # 4,096 tokens over cp 4: 1,024 tokens per GPU
    tokens = 1_024
    expected = tokens * (LAYERS_PER_TOKEN + FINAL_NORM_PER_TOKEN + LOSS_PER_TOKEN * 500)
    assert expected == 17_186_816
    split = train(TINY_LLAMA, sequence_length=4_096, num_gpus=4, context_parallel=4)
    assert split["peak"]["activation_peak_bytes"] == expected
    # the same as one GPU training 1,024-token sequences (the loss's 6,000 B per token
    # outweigh the ring's buffers, 4 x 256 + 256 = 1,280 B per token)
    alone = train(TINY_LLAMA, sequence_length=1_024)
    assert alone["peak"]["activation_peak_bytes"] == expected
    assert split["inputs"]["context_parallel"] == 4
    assert any(
        "keeps the activations of 1,024 of each sequence's 4,096" in n for n in split["notes"]
    )


def test_weights_and_gradients_are_replicated_over_context_parallel_ranks():
    split = train(TINY_LLAMA, sequence_length=4_096, num_gpus=4, context_parallel=4)
    # pure bf16: weights and gradients 2 B per parameter, AdamW's two states 2 B each, on
    # every CP rank alike (no ZeRO)
    assert split["breakdown"]["weights"] == 2 * TINY_PARAMETERS == 847_104
    assert split["breakdown"]["gradients"] == 2 * TINY_PARAMETERS
    assert split["breakdown"]["optimizer_states"] == 4 * TINY_PARAMETERS


def test_zero_shards_over_data_times_context_parallel_ranks():
    # 8 GPUs: cp 4 x dp 2; ZeRO-1 shards AdamW's states (4 B per parameter) over 8 ranks
    result = train(TINY_LLAMA, sequence_length=4_096, num_gpus=8, context_parallel=4, zero_stage=1)
    assert result["breakdown"]["optimizer_states"] == 4 * TINY_PARAMETERS // 8 == 211_776
    assert any(
        "ZeRO shards over data x context parallel ranks (2 x 4)" in n for n in result["notes"]
    )
    # ZeRO over the context-parallel ranks alone (dp 1) is a valid run
    alone = train(TINY_LLAMA, sequence_length=4_096, num_gpus=4, context_parallel=4, zero_stage=1)
    assert alone["breakdown"]["optimizer_states"] == 4 * TINY_PARAMETERS // 4


def test_ring_buffers_set_the_peak_when_larger_than_the_logits():
    # vocab 16: the loss keeps 16 x 12 = 192 B per token; cp 4: backward's K/V and dK/dV
    # double-buffered plus dQ, 4 x 256 + 256 = 1,280 B per token, beat forward's 4 x 256
    tokens = 1_024
    ring_backward = tokens * (4 * KV_CHUNK_PER_TOKEN + Q_CHUNK_PER_TOKEN)
    assert ring_backward == 1_310_720
    result = train(TINY_VOCAB_16, sequence_length=4_096, num_gpus=4, context_parallel=4)
    stored = tokens * (LAYERS_PER_TOKEN + FINAL_NORM_PER_TOKEN)
    assert result["peak"]["activation_peak_bytes"] == stored + ring_backward == 12_353_536
    assert any("backward 1.25 MiB" in note for note in result["notes"])
    # cp 8: forward holds all 8 ranks' K/V chunks, 8 x 256 = 2,048 B per token
    wide = train(TINY_VOCAB_16, sequence_length=8_192, num_gpus=8, context_parallel=8)
    ring_forward = tokens * 8 * KV_CHUNK_PER_TOKEN
    assert wide["peak"]["activation_peak_bytes"] == stored + ring_forward == 13_139_968


def test_tensor_parallel_splits_the_ring_buffers_with_the_kv_heads():
    # tp 2 x cp 4: a rank keeps one of the two KV heads, so its K/V chunk is 128 B per token;
    # backward 4 x 128 + q's 128 = 640 B per token of 1,024 tokens
    ring_backward = 1_024 * (4 * 128 + 128)  # 655,360 B
    result = train(
        TINY_VOCAB_16, sequence_length=4_096, num_gpus=8, tensor_parallel=2, context_parallel=4
    )
    assert any(f"backward {ring_backward / 2**20:.2f} MiB" in note for note in result["notes"])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        # Megatron: seq_length % (2 x cp) == 0; 4,100 is not a multiple of 8
        (
            {"sequence_length": 4_100, "num_gpus": 4, "context_parallel": 4},
            "must be a multiple of 8: the nearest valid context_parallel are 2, or use "
            "sequence_length 4,096 or 4,104",
        ),
        # an odd length splits over no cp > 1
        (
            {"sequence_length": 4_097, "num_gpus": 4, "context_parallel": 2},
            "the nearest valid context_parallel are 1, or use sequence_length 4,096 or 4,100",
        ),
        ({"mode": "inference", "num_gpus": 2, "context_parallel": 2}, "modelled for training"),
        ({"method": "standard", "num_gpus": 2, "context_parallel": 2}, "standard method"),
        (
            {"attention_implementation": "eager", "num_gpus": 2, "context_parallel": 2},
            "use attention_implementation flash, or 1",
        ),
        ({"context_parallel": 0}, "must be between 1 and 100,000, not 0"),
    ],
)
def test_invalid_context_parallel_is_a_field_error(fields, message):
    payload = {"sequence_length": 4_096, **fields}
    with pytest.raises(EstimateError) as error:
        train(TINY_LLAMA, **payload)
    assert error.value.field == "context_parallel"
    assert message in error.value.message


def test_num_gpus_must_hold_tensor_pipeline_and_context_parallel():
    with pytest.raises(EstimateError) as error:
        train(TINY_LLAMA, sequence_length=4_096, num_gpus=6, tensor_parallel=2, context_parallel=2)
    assert error.value.field == "num_gpus"
    assert "tensor_parallel x pipeline_parallel x context_parallel (2 x 1 x 2 = 4)" in (
        error.value.message
    )
    assert "the nearest valid are 4 or 8 GPUs" in error.value.message


def test_the_layout_label_names_context_parallel():
    base = {"num_gpus": 8, "tensor_parallel": 2, "pipeline_parallel": 1, "expert_parallel": 1}
    assert layout_label({**base, "context_parallel": 4, "data_parallel": 1, "zero_stage": 0}) == (
        "TP 2 × CP 4"
    )
    assert layout_label({**base, "context_parallel": 4, "data_parallel": 1, "zero_stage": 3}) == (
        "TP 2 × CP 4 × ZeRO-3"
    )
    sixteen = {**base, "num_gpus": 16, "context_parallel": 4, "data_parallel": 2, "zero_stage": 1}
    assert layout_label(sixteen) == "TP 2 × CP 4 × ZeRO-1 DP 2"


H100 = {
    "slug": "h100-sxm",
    "name": "H100 SXM",
    # NVIDIA H100 SXM datasheet: 80 GB HBM3 at 3.35 TB/s, BF16 989.4 TFLOPS dense
    "memory_bytes": 80 * GIB,
    "memory_bandwidth_bytes_per_s": 3_350_000_000_000,
    "bf16_dense_tflops": 989.4,
    "price_per_hour_usd": 2.99,
}
LLAMA_31_8B = {"hf_config": json.loads((CONFIGS / "meta-llama--Llama-3.1-8B.json").read_text())}


def test_the_gpu_search_keeps_an_asked_context_parallelism():
    result = calculate(
        {
            "model": LLAMA_31_8B,
            "mode": "training",
            "mixed_precision": True,
            "sequence_length": 131_072,
            "num_gpus": 8,
            "tensor_parallel": 2,
            "pipeline_parallel": 1,
            "context_parallel": 4,
            "zero_stage": 1,
            "gradient_checkpointing": True,
            "gpu": H100,
        }
    )
    assert result["answer"]["configuration"]["context_parallel"] == 4
    assert layout_label(result["answer"]["configuration"]) == "TP 2 × CP 4 × ZeRO-1"
    fit = result["fit"][0]
    configuration = fit["configuration"]
    # every layout searched keeps cp 4: the GPUs are tp x 4 x dp
    assert configuration["context_parallel"] == 4
    assert configuration["num_gpus"] == (
        configuration["tensor_parallel"] * 4 * configuration["data_parallel"]
    )
    assert "CP 4" in layout_label(configuration)
    assert fit["per_gpu_bytes"] <= 80 * GIB


def test_capacity_keeps_the_longest_sequence_a_multiple_of_two_cp():
    result = calculate(
        {
            "model": TINY_LLAMA,
            "mode": "training",
            "sequence_length": 4_096,
            "num_gpus": 4,
            "context_parallel": 4,
            "gpu": H100,
            "gpu_count": 4,
        }
    )
    capacity = result["capacity"]
    assert capacity["configuration"]["context_parallel"] == 4
    # Megatron splits only multiples of 2 x 4 = 8 tokens
    assert capacity["max_sequence_length"] % 8 == 0
    assert capacity["max_sequence_length"] > 4_096
