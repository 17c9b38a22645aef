"""Hybrid models: linear-attention (Gated DeltaNet) and state-space (Mamba) layers.

Shapes come from the published config.json files in fixtures/configs; each expected figure is
worked out here from those values, following transformers 5.24.0's modeling and cache code
(modeling_qwen3_next.py, modeling_jamba.py, cache_utils.py LinearAttentionLayer), or is a model
card figure. Parameter totals counted on the meta device are in test_parameter_counts.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calculator.engine import EstimateError, calculate
from calculator.engine.architecture import architecture_from_hf_config
from calculator.engine.detailed import gated_deltanet_saved_bytes, mixer_working_set
from calculator.engine.hardware import attended_positions
from calculator.engine.inputs import parse_inputs

CONFIGS = Path(__file__).parent / "fixtures" / "configs"
MIB = 2**20


def config(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text())


QWEN3_NEXT = config("Qwen--Qwen3-Next-80B-A3B-Instruct")
JAMBA = config("ai21labs--AI21-Jamba-Mini-1.5")


def run(hf_config: dict, **fields) -> dict:
    return calculate({"model": {"hf_config": hf_config}, **fields})


# Qwen3-Next-80B-A3B by hand (config.json): 48 layers, every 4th full attention
# (full_attention_interval 4): 12 attention layers with 2 KV heads of 256; 36 Gated DeltaNet
# layers with 16 key heads and 32 value heads of 128, a convolution of kernel 4
Q_ATTENTION_LAYERS, Q_LINEAR_LAYERS = 48 // 4, 48 - 48 // 4
Q_KV_PER_TOKEN = Q_ATTENTION_LAYERS * 2 * 2 * 256 * 2  # K and V, bf16: 24,576 B
Q_CONV_DIM = 2 * 16 * 128 + 32 * 128  # q, k and v through the convolution: 8,192
# conv_states (batch, conv_dim, conv_kernel_size) in bf16; recurrent_states (batch, 32 value
# heads, 128 key dim, 128 value dim) in float32
Q_STATE_PER_LAYER = Q_CONV_DIM * 4 * 2 + 32 * 128 * 128 * 4  # 2,162,688 B
Q_STATE = Q_LINEAR_LAYERS * Q_STATE_PER_LAYER  # per sequence

# AI21-Jamba-Mini-1.5 by hand: 32 layers, attention where i % 8 == 4 (4 layers, 8 KV heads of
# 4096 / 32 = 128), Mamba elsewhere (28 layers): intermediate 2 x 4096, d_state 16, d_conv 4
J_ATTENTION_LAYERS, J_MAMBA_LAYERS = 4, 28
J_KV_PER_TOKEN = J_ATTENTION_LAYERS * 2 * 8 * 128 * 2  # 16,384 B
J_INNER = 2 * 4096
J_STATE_PER_LAYER = J_INNER * 4 * 2 + J_INNER * 16 * 4  # conv bf16 + ssm float32: 589,824 B
J_STATE = J_MAMBA_LAYERS * J_STATE_PER_LAYER


def test_qwen3_next_reads_its_layer_kinds():
    qwen, _ = architecture_from_hf_config(QWEN3_NEXT)
    assert qwen.num_layers == 48
    assert qwen.num_attention_layers == Q_ATTENTION_LAYERS == 12
    assert qwen.state_layers is not None
    assert qwen.state_layers.kind == "gated_deltanet"
    assert qwen.state_layers.count == Q_LINEAR_LAYERS == 36


def test_explicit_layer_types_win_over_the_interval():
    layer_types = ["linear_attention"] * 40 + ["full_attention"] * 8
    qwen, _ = architecture_from_hf_config({**QWEN3_NEXT, "layer_types": layer_types})
    assert qwen.num_attention_layers == 8
    assert qwen.state_layers.count == 40


@pytest.mark.parametrize(
    "layer_types",
    [["full_attention"] * 47, ["sliding_attention"] * 48, "full_attention"],
)
def test_bad_layer_types_are_named(layer_types):
    with pytest.raises(EstimateError) as error:
        architecture_from_hf_config({**QWEN3_NEXT, "layer_types": layer_types})
    assert error.value.field == "model.hf_config.layer_types"


def test_jamba_reads_its_periods():
    jamba, _ = architecture_from_hf_config(JAMBA)
    assert jamba.num_attention_layers == J_ATTENTION_LAYERS
    assert jamba.state_layers.kind == "mamba"
    assert jamba.state_layers.count == J_MAMBA_LAYERS
    # experts where i % 2 == 1: 16 MoE layers, 16 dense
    assert (jamba.num_experts, jamba.num_dense_layers) == (16, 16)


def test_jamba_offset_must_be_inside_its_period():
    with pytest.raises(EstimateError) as error:
        architecture_from_hf_config({**JAMBA, "attn_layer_offset": 8})
    assert error.value.field == "model.hf_config.attn_layer_offset"


def test_qwen3_next_matches_its_model_card():
    # Qwen/Qwen3-Next-80B-A3B-Instruct model card: 80B parameters in total, 3B activated; the
    # active figure leaves the embeddings and the LM head out (151,936 x 2,048 each)
    qwen, _ = architecture_from_hf_config(QWEN3_NEXT)
    assert round(qwen.num_parameters / 1e9) == 80
    tables = 2 * 151_936 * 2_048
    assert round((qwen.num_active_parameters - tables) / 1e9) == 3


def test_jamba_matches_its_model_card():
    # ai21labs/AI21-Jamba-Mini-1.5 model card: 12B active, 52B total parameters
    jamba, _ = architecture_from_hf_config(JAMBA)
    assert round(jamba.num_parameters / 1e9) == 52
    assert round(jamba.num_active_parameters / 1e9) == 12


def test_gated_deltanet_and_gated_attention_parameters_by_hand():
    qwen, _ = architecture_from_hf_config(QWEN3_NEXT)
    h, key_dim, value_dim, v_heads = 2048, 16 * 128, 32 * 128, 32
    # modeling_qwen3_next.py Qwen3NextGatedDeltaNet: in_proj_qkvz, in_proj_ba, out_proj, conv1d
    # (no bias), dt_bias and A_log per value head, RMSNormGated(128)
    linear = h * (2 * key_dim + 2 * value_dim) + h * 2 * v_heads + value_dim * h
    linear += Q_CONV_DIM * 4 + 2 * v_heads + 128
    # Qwen3NextAttention: q_proj makes queries and their output gate (16 x 256 x 2), q/k norms
    attention = h * 16 * 256 * 2 + 2 * h * 2 * 256 + 16 * 256 * h + 2 * 256
    assert qwen.parameters.attention == 36 * linear + 12 * attention
    names = {layer.name: layer for layer in qwen.linear_layers}
    assert names["q_proj"].out_features == 16 * 256 * 2
    assert names["q_proj"].count == 12
    assert names["in_proj_qkvz"].count == 36


def test_jamba_mamba_parameters_by_hand():
    jamba, _ = architecture_from_hf_config(JAMBA)
    h, inner, state, rank, kernel = 4096, J_INNER, 16, 256, 4
    # modeling_jamba.py JambaMambaMixer: in_proj (no bias), x_proj, dt_proj (bias), out_proj,
    # conv1d with bias, A_log, D, dt/B/C RMSNorms
    mamba = h * 2 * inner + inner * (rank + 2 * state) + rank * inner + inner + inner * h
    mamba += inner * kernel + inner + inner * state + inner + rank + 2 * state
    attention = 2 * h * h + 2 * h * 8 * 128
    assert jamba.parameters.attention == 28 * mamba + 4 * attention


# --- KV cache and fixed state ---------------------------------------------------------------


def test_qwen3_next_caches_only_its_attention_layers():
    tokens = 32_768
    result = run(QWEN3_NEXT, sequence_length=tokens)
    assert result["breakdown"]["kv_cache"] == tokens * Q_KV_PER_TOKEN + Q_STATE
    assert tokens * Q_KV_PER_TOKEN + Q_STATE == 883_163_136
    # every layer caching K and V would be 4 x the attention part: the complaint of issue 21
    all_layers = tokens * 48 * 2 * 2 * 256 * 2
    assert all_layers == 4 * tokens * Q_KV_PER_TOKEN


def test_the_fixed_state_does_not_grow_with_the_context():
    short = run(QWEN3_NEXT, sequence_length=1_000)["breakdown"]["kv_cache"]
    long = run(QWEN3_NEXT, sequence_length=2_000)["breakdown"]["kv_cache"]
    assert long - short == 1_000 * Q_KV_PER_TOKEN
    assert short - 1_000 * Q_KV_PER_TOKEN == Q_STATE


def test_each_sequence_keeps_its_own_state():
    result = run(QWEN3_NEXT, sequence_length=4_096, batch_size=3)
    assert result["breakdown"]["kv_cache"] == 3 * (4_096 * Q_KV_PER_TOKEN + Q_STATE)


def test_the_convolution_state_follows_the_activation_dtype():
    # float32 weights compute in float32: the conv state doubles, the recurrent state stays
    result = run(QWEN3_NEXT, sequence_length=1, weight_dtype="float32", kv_cache_dtype="bfloat16")
    state = Q_LINEAR_LAYERS * (Q_CONV_DIM * 4 * 4 + 32 * 128 * 128 * 4)
    assert result["breakdown"]["kv_cache"] == Q_KV_PER_TOKEN + state


def test_jamba_caches_four_attention_layers_and_28_mamba_states():
    tokens = 262_144  # max_position_embeddings
    result = run(JAMBA, sequence_length=tokens)
    assert result["breakdown"]["kv_cache"] == tokens * J_KV_PER_TOKEN + J_STATE
    # 4 GiB of KV for the full context, against 32 GiB if all 32 layers kept one
    assert tokens * J_KV_PER_TOKEN == 4 * 1024**3


def test_tensor_parallel_splits_the_state_with_the_heads():
    one = run(QWEN3_NEXT, sequence_length=1_024)["breakdown"]["kv_cache"]
    two = run(QWEN3_NEXT, sequence_length=1_024, num_gpus=2, tensor_parallel=2)
    # 2 KV heads over 2 GPUs: one each; the 32 value heads' states split alike
    assert two["breakdown"]["kv_cache"] == one // 2


def test_a_pipeline_stage_holds_its_share_of_each_kind():
    result = run(QWEN3_NEXT, sequence_length=8_192, num_gpus=4, pipeline_parallel=4)
    # 12 layers per stage; at worst all 12 are attention layers (there are 12), and no state
    assert result["breakdown"]["kv_cache"] == 8_192 * Q_KV_PER_TOKEN


def test_the_notes_say_which_layers_keep_a_state():
    notes = run(QWEN3_NEXT, sequence_length=1_024)["notes"]
    hybrid = next(note for note in notes if note.startswith("Hybrid layers"))
    assert "36 of 48 layers (Gated DeltaNet)" in hybrid
    assert "8,192 x 4" in hybrid and "32 x 128 x 128" in hybrid
    assert f"{Q_STATE_PER_LAYER / MIB:.2f} MiB" in hybrid  # 2.06
    assert any("torch_chunk_gated_delta_rule" in note for note in notes)


def test_training_keeps_no_state():
    result = run(JAMBA, mode="training", finetuning="lora", sequence_length=512)
    assert result["breakdown"]["kv_cache"] == 0
    assert not any(note.startswith("Hybrid layers") for note in result["notes"])
    assert any("mamba_selective_scan" in note for note in result["notes"])


# --- activations ------------------------------------------------------------------------------


def test_jamba_prefill_peaks_in_the_mamba_scan():
    batch, seq = 1, 4_096
    tokens = batch * seq
    result = run(JAMBA, sequence_length=seq, memory_view="allocated")
    # residual stream, normalised input and the embedding output the model's layer loop keeps
    # (bf16); as mamba_selective_scan returns (transformers 5.25 modeling_jamba.py, its
    # sequential loop): in_proj's output (2 x 8192), the conv output, the time step and its
    # softplus, the per-step scan outputs, their stack and silu(z) (6 x 8192), bf16; the D skip
    # sum and its product with silu(z) (2 x 8192) and discrete_A, discrete_B and deltaB_u,
    # (batch, 8192, seq, 16), float32
    mixer = tokens * 3 * 4096 * 2
    mixer += tokens * (2 * J_INNER + 6 * J_INNER) * 2
    mixer += tokens * (2 * J_INNER + 3 * J_INNER * 16) * 4
    # the last position's logits, bf16 and their float32 copy
    logits = batch * 65_536 * (2 + 4)
    assert result["breakdown"]["activations"] == mixer + logits


def test_qwen3_next_prefill_counts_the_chunked_scan():
    seq = 1_000  # padded to 16 chunks of 64 = 1,024 positions by torch_chunk_gated_delta_rule
    result = run(QWEN3_NEXT, sequence_length=seq, memory_view="allocated")
    # residual stream, normalised input and the kept embedding output, bf16
    hidden = seq * 3 * 2048 * 2
    # bf16: in_proj_qkvz + in_proj_ba outputs, mixed_qkv and the convolution output
    wide = seq * ((2 * 2048 + 2 * 4096 + 2 * 32) + 2 * Q_CONV_DIM) * 2
    # float32 per padded position and value head: 5 key-wide, 3 value-wide, 3 chunk rows of 64
    scan = 1_024 * 32 * (5 * 128 + 3 * 128 + 3 * 64) * 4
    logits = 151_936 * (2 + 4)
    mixer_peak = hidden + wide + scan
    assert result["breakdown"]["activations"] >= mixer_peak + logits
    # the MoE sub-block (10 of 512 experts of 512, a shared expert) is not larger here
    assert result["breakdown"]["activations"] == mixer_peak + logits


def test_the_jamba_mixer_working_set_matches_its_traced_prefill():
    # validation/cases.py's jamba layout (hidden 512, intermediate 1024, d_state 16) at batch 2
    # x 1,024 tokens: the tensors traced inside model.layers.0.mamba as the scan returns
    # (TorchDispatchMode, torch 2.13 CPU, transformers 5.25) -- in_proj's output 8,388,608 B,
    # six bf16 (2, 1024, 1024) tensors of 4,194,304 B, two float32 ones of 8,388,608 B and three
    # float32 (2, 1024, 1024, 16) of 134,217,728 B -- 452,984,832 B; the resident set rose
    # 453.1 MB above the mixer's input
    tiny = JAMBA | {
        "hidden_size": 512,
        "num_hidden_layers": 4,
        "attn_layer_period": 4,
        "attn_layer_offset": 2,
        "expert_layer_period": 2,
        "expert_layer_offset": 1,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "num_experts": 4,
        "intermediate_size": 1536,
    }
    inputs, architecture, _ = parse_inputs(
        {"model": {"hf_config": tiny}, "batch_size": 2, "sequence_length": 1024}
    )
    assert architecture.state_layers is not None
    traced = 8_388_608 + 6 * 4_194_304 + 2 * 8_388_608 + 3 * 134_217_728
    assert mixer_working_set(architecture.state_layers, inputs, 2) == traced == 452_984_832


def test_training_saves_the_scan_of_every_state_layer():
    short = run(JAMBA, mode="training", finetuning="lora", sequence_length=256)
    long = run(JAMBA, mode="training", finetuning="lora", sequence_length=512)
    # 28 Mamba layers each keep at least their three (tokens x 8192 x 16) float32 tensors
    grown = long["breakdown"]["activations"] - short["breakdown"]["activations"]
    assert grown >= 28 * 256 * 3 * J_INNER * 16 * 4


def gated_deltanet_saved(hf_config: dict, batch: int, seq: int) -> int:
    inputs, architecture, _ = parse_inputs(
        {
            "model": {"hf_config": hf_config},
            "mode": "training",
            "batch_size": batch,
            "sequence_length": seq,
        }
    )
    assert architecture.state_layers is not None
    return gated_deltanet_saved_bytes(architecture.state_layers, inputs, 2)


def test_a_gated_deltanet_layer_saves_its_chunked_scan_by_hand():
    # Qwen3-Next-80B, one sequence of 1,000 tokens, bf16: what autograd keeps of one layer
    # (transformers 5.25 Qwen3NextGatedDeltaNet.forward, torch_chunk_gated_delta_rule), padded
    # to 16 chunks of 64 = 1,024 positions; q and k repeated to the 32 value heads of 128
    seq, padded, chunks, heads = 1_000, 1_024, 16, 32
    key = value = heads * 128
    # bf16: the convolution's input and its output before the slice (3 positions longer),
    # beta = sigmoid(b), the gated norm's bf16 normed value and gate z, out_proj's input
    compute = seq * Q_CONV_DIM + Q_CONV_DIM * (seq + 3) + seq * heads + 3 * seq * value
    # float32 before padding: l2norm's fp32 query and key, their inverse norms, softplus's
    # input and output
    fp32 = seq * (2 * key + 4 * heads)
    # padded: key, k_beta, query, k_cumdecay, decayed key and query; value, new_values, v_new;
    # 5 chunk matrices of 64 per head; beta and three exp outputs
    fp32 += padded * (6 * key + 3 * value + 5 * heads * 64 + 4 * heads)
    # the state before each chunk (32 x 128 x 128) and chunk_decay per chunk and head
    fp32 += chunks * (heads * 128 * 128 + heads)
    # Qwen3NextRMSNormGated: float32 input, weight x normed, gate; an rsqrt per token and head
    fp32 += seq * (3 * value + heads)
    fp32 += 2 * heads  # exp(A_log) and the softplus product's other factor
    mask = 64 * 64  # the boolean strictly_upper_mask
    expected = compute * 2 + fp32 * 4 + mask
    assert gated_deltanet_saved(QWEN3_NEXT, 1, seq) == expected == 367_040_256


def test_training_notes_name_the_saved_scan():
    result = run(QWEN3_NEXT, mode="training", finetuning="lora", sequence_length=256)
    assert any(
        "what autograd saves of transformers' PyTorch scan" in note
        and "one float32 recurrent state per chunk of 64" in note
        for note in result["notes"]
    )


# validation/cases.py's qwen3_next layout (hidden 512, 4 key heads and 8 value heads of 128)
TINY_QWEN3_NEXT = QWEN3_NEXT | {
    "hidden_size": 512,
    "num_hidden_layers": 4,
    "linear_num_key_heads": 4,
    "linear_num_value_heads": 8,
    "num_experts": 8,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 256,
    "shared_expert_intermediate_size": 256,
}


@pytest.mark.parametrize(
    ("batch", "seq", "measured"),
    [
        # validation.saved_tensors (torch 2.13 CPU, transformers 5.25): the storages saved in
        # model.layers.0.linear_attn, .norm and .out_proj; at 256 tokens no padding, at 200
        # tokens 56 positions of padding per sequence (the in_proj input, the layer norm's
        # output that every layer saves, left out)
        (1, 256, 23_163_072),
        (2, 200, 42_402_880),
    ],
)
def test_the_gated_deltanet_saved_set_matches_saved_tensors(batch, seq, measured):
    assert gated_deltanet_saved(TINY_QWEN3_NEXT, batch, seq) == measured


def test_only_attention_layers_attend_to_the_context():
    # Qwen3-Next: 12 of its 48 layers are full attention (full_attention_interval 4); the 36
    # Gated DeltaNet layers keep a fixed state, so a token attends over 12 layers' context
    qwen, _ = architecture_from_hf_config(QWEN3_NEXT)
    assert attended_positions(qwen, 8192) == 12 * 8192
    # Jamba Mini: one attention layer in every 8 of 32
    jamba, _ = architecture_from_hf_config(JAMBA)
    assert attended_positions(jamba, 1000) == 4 * 1000
