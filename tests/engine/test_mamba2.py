"""Mamba-2 layers and the families built on them: mamba2 (every layer a Mamba2Mixer), nemotron_h
(one mixer per block: Mamba-2 "M", attention "*", MLP "-", MoE "E") and falcon_h1 (attention and
Mamba-2 side by side in every layer).

Every figure is worked out here from transformers 5.25.0's code: models/mamba2/modeling_mamba2.py
(Mamba2Mixer, mamba2_chunk_scan), models/nemotron_h/modeling_nemotron_h.py,
models/falcon_h1/modeling_falcon_h1.py and cache_utils.py (LinearAttentionLayer). The totals
marked "meta" are what transformers 5.25.0 instantiated for the same config on the meta device
(validation/meta_count.py, torch 2.13.0), the hand arithmetic beside them the module shapes.
"""

from __future__ import annotations

import pytest

from calculator.engine import EstimateError, calculate
from calculator.engine.architecture import architecture_from_hf_config
from calculator.engine.families.common import lora_target_layers

# Mamba2Config() (configuration_mamba2.py defaults): hidden 4096, 64 layers, 128 heads of 64,
# state 128, n_groups 8, expand 2, conv_kernel 4, 32,768-token vocabulary, untied
MAMBA2_DEFAULT = {"model_type": "mamba2"}
MAMBA2_META = 7_285_403_648
# NemotronHConfig() (configuration_nemotron_h.py defaults): blocks M, E, *, - ; hidden 4096; 32
# attention heads, 8 KV heads of 128; MLP 21,504 (relu2); Mamba-2 128 heads of 64, state 128,
# 8 groups; 8 experts of 7,688 (2 per token) and a shared expert of 7,688; 131,072 tokens
NEMOTRON_DEFAULT = {"model_type": "nemotron_h"}
NEMOTRON_META = 1_968_355_712
# The FalconH1 model doc's "H1 7B" row (transformers docs, model_doc/falcon_h1): 44 layers, dim
# 3072, 12 attention heads, 2 KV heads, 24 Mamba heads, d_head 128 / 128, d_state 256; the other
# keys at FalconH1Config's defaults (MLP 14,336, 128,000 tokens, 1 group, conv 4, no gated norm)
FALCON_7B = {
    "model_type": "falcon_h1",
    "hidden_size": 3072,
    "num_hidden_layers": 44,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "head_dim": 128,
    "mamba_d_ssm": 3072,
    "mamba_n_heads": 24,
    "mamba_d_head": 128,
    "mamba_d_state": 256,
    "intermediate_size": 14336,
    "vocab_size": 128000,
}
FALCON_META = 8_403_402_848


def mamba2_mixer(h, heads, head_dim, state, groups, kernel, conv_bias=True, gated_norm=True):
    """One Mamba2Mixer by hand: in_proj, conv1d (+ bias), dt_bias, A_log, D, norm, out_proj."""
    inner = heads * head_dim
    conv_dim = inner + 2 * groups * state  # x, B and C through the depthwise convolution
    in_proj = h * (inner + conv_dim + heads)  # gate z, x/B/C, dt
    conv = conv_dim * kernel + (conv_dim if conv_bias else 0)
    return in_proj + conv + 3 * heads + (inner if gated_norm else 0) + inner * h


def run(hf_config: dict, **fields) -> dict:
    return calculate({"model": {"hf_config": hf_config}, **fields})


# --- parameter counts --------------------------------------------------------------------------


def test_mamba2_count_by_hand_equals_transformers():
    h, layers, vocab = 4096, 64, 32768
    layer = mamba2_mixer(h, 128, 64, 128, 8, 4) + h  # Mamba2Block.norm
    total = layers * layer + 2 * vocab * h + h  # embeddings, untied lm_head, norm_f
    assert total == MAMBA2_META
    mamba2, _ = architecture_from_hf_config(MAMBA2_DEFAULT)
    assert mamba2.num_parameters == total
    assert mamba2.parameters.mlp == 0
    assert mamba2.parameters.attention == layers * mamba2_mixer(h, 128, 64, 128, 8, 4)


def test_mamba2_layers_have_no_attention_and_no_mlp():
    mamba2, _ = architecture_from_hf_config(MAMBA2_DEFAULT)
    assert mamba2.num_attention_layers == 0
    assert mamba2.num_mlp_layers == 0
    assert mamba2.state_layers.kind == "mamba2"
    assert mamba2.state_layers.count == 64
    # its only linear layers are the mixers' in_proj and out_proj (PEFT refuses the latter)
    names = {layer.name: layer.count for layer in mamba2.linear_layers}
    assert names == {"in_proj": 64, "out_proj": 64}
    assert [layer.name for layer in lora_target_layers(mamba2, ["in_proj"])] == ["in_proj"]


def test_mamba2_width_must_equal_its_heads():
    # Mamba2Config.validate_architecture: hidden_size * expand == num_heads * head_dim
    with pytest.raises(EstimateError) as error:
        architecture_from_hf_config({**MAMBA2_DEFAULT, "num_heads": 64})
    assert error.value.field == "model.hf_config.expand"


def test_nemotron_h_count_by_hand_equals_transformers():
    h, vocab = 4096, 131072
    mamba = mamba2_mixer(h, 128, 64, 128, 8, 4)
    # NemotronHMoE: 8 experts of up (7,688 x 4096) and down; the router weight (8 x 4096); a
    # shared NemotronHMLP of 7,688; e_score_correction_bias is a buffer
    moe = 8 * 2 * h * 7688 + 8 * h + 2 * h * 7688
    attention = h * 32 * 128 + 2 * h * 8 * 128 + 32 * 128 * h  # q, k, v, o without biases
    mlp = 2 * h * 21504  # up_proj, relu2, down_proj
    total = mamba + moe + attention + mlp + 4 * h + 2 * vocab * h + h
    assert total == NEMOTRON_META
    nemotron, _ = architecture_from_hf_config(NEMOTRON_DEFAULT)
    assert nemotron.num_parameters == total
    # one token passes 2 of the 8 experts
    assert nemotron.num_active_parameters == total - 6 * 2 * h * 7688


def test_nemotron_h_reads_its_blocks():
    pattern = "M-M*-ME"
    nemotron, _ = architecture_from_hf_config(
        {**NEMOTRON_DEFAULT, "hybrid_override_pattern": pattern}
    )
    assert nemotron.num_layers == 7
    assert nemotron.state_layers.count == 3
    assert nemotron.num_attention_layers == 1
    assert nemotron.num_mlp_layers == 3
    assert nemotron.num_dense_layers == 2  # the "-" blocks; the "E" block is the MoE
    # layers_block_type (legacy names remapped as transformers does) wins over the pattern
    listed = ["mamba", "attention", "mlp"]
    nemotron, _ = architecture_from_hf_config(
        {**NEMOTRON_DEFAULT, "hybrid_override_pattern": pattern, "layers_block_type": listed}
    )
    assert (nemotron.num_layers, nemotron.num_attention_layers) == (3, 1)
    assert not nemotron.is_moe


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hybrid_override_pattern": "M-X"}, "hybrid_override_pattern"),
        ({"layers_block_type": ["mamba", "cross_attention"]}, "layers_block_type"),
        ({"moe_latent_size": 1024}, "moe_latent_size"),
    ],
)
def test_nemotron_h_rejects_what_it_cannot_count(change, field):
    with pytest.raises(EstimateError) as error:
        architecture_from_hf_config({**NEMOTRON_DEFAULT, **change})
    assert error.value.field == f"model.hf_config.{field}"


def test_nemotron_h_never_ties_its_lm_head():
    # NemotronHForCausalLM._tied_weights_keys = {}: tie_word_embeddings true builds two tables
    untied, _ = architecture_from_hf_config(NEMOTRON_DEFAULT)
    tied, _ = architecture_from_hf_config({**NEMOTRON_DEFAULT, "tie_word_embeddings": True})
    assert tied.num_parameters == untied.num_parameters == NEMOTRON_META


def test_nemotron_h_reads_head_dim_not_attention_head_dim():
    # transformers 5.25: AutoConfig.for_model("nemotron_h", attention_head_dim=64) keeps
    # head_dim 128, which NemotronHAttention reads; the count does not change
    nemotron, notes = architecture_from_hf_config({**NEMOTRON_DEFAULT, "attention_head_dim": 64})
    assert nemotron.head_dim == 128
    assert nemotron.num_parameters == NEMOTRON_META
    assert any("attention_head_dim is not read" in note for note in notes)


def test_falcon_h1_count_by_hand_equals_transformers():
    h, layers, vocab = 3072, 44, 128000
    mamba = mamba2_mixer(h, 24, 128, 256, 1, 4, gated_norm=False)  # mamba_rms_norm False
    attention = h * 12 * 128 + 2 * h * 2 * 128 + 12 * 128 * h
    mlp = 3 * h * 14336  # gate, up, down
    layer = mamba + attention + mlp + 2 * h  # input_layernorm, pre_ff_layernorm
    total = layers * layer + 2 * vocab * h + h
    assert total == FALCON_META
    falcon, _ = architecture_from_hf_config(FALCON_7B)
    assert falcon.num_parameters == total
    # the mu-P multipliers scale activations only: mup_vector is a non-persistent buffer
    multiplied = {**FALCON_7B, "ssm_multipliers": [0.5, 2.0, 1.5, 0.25, 1.0]}
    multiplied |= {"mlp_multipliers": [0.5, 2.0], "key_multiplier": 0.3}
    assert architecture_from_hf_config(multiplied)[0].num_parameters == total


def test_falcon_h1_runs_both_mixers_in_every_layer():
    falcon, _ = architecture_from_hf_config(FALCON_7B)
    assert falcon.num_attention_layers == 44
    assert falcon.state_layers.count == 44
    assert falcon.state_layers.beside_attention
    assert falcon.num_mlp_layers == 44


def test_falcon_h1_gated_norm_and_auto_head_dim():
    # mamba_rms_norm adds FalconH1RMSNormGated(mamba_d_ssm); mamba_d_head "auto" is d_ssm / heads
    plain, _ = architecture_from_hf_config(FALCON_7B)
    auto = {**FALCON_7B, "mamba_d_head": "auto", "mamba_rms_norm": True}
    normed, _ = architecture_from_hf_config(auto)
    assert normed.num_parameters == plain.num_parameters + 44 * 3072
    assert normed.state_layers.state_rows == 3072 // 24


# --- LoRA ---------------------------------------------------------------------------------------

# get_peft_model(model, LoraConfig(r=16, target_modules=...)) trainable parameters with peft
# 0.21.2 on transformers 5.25.0, on the validation cases' configs (validation/cases.py)
PEFT_TARGETS = {
    "mamba2": ["in_proj"],
    "nemotron_h": ["in_proj", "q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"],
    "falcon_h1": [
        "in_proj",
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ],
}


def lora_run(family: str, targets: object) -> dict:
    from validation.cases import FAMILY_CONFIGS

    return calculate(
        {
            "model": {"hf_config": FAMILY_CONFIGS[family]},
            "mode": "training",
            "finetuning": "lora",
            "lora_rank": 16,
            "lora_target_modules": targets,
            "batch_size": 1,
            "sequence_length": 128,
        }
    )


@pytest.mark.parametrize("family", ["mamba2", "nemotron_h", "falcon_h1"])
def test_peft_refuses_the_mamba2_out_proj(family):
    # peft 0.21 tuners_utils.py _check_lora_target_modules_mamba raises for out_proj (and conv1d)
    # of mamba2, nemotron_h and falcon_h1 models, which "all-linear" selects
    for targets in ("all-linear", ["in_proj", "out_proj"]):
        with pytest.raises(EstimateError) as error:
            lora_run(family, targets)
        assert error.value.field == "lora_target_modules"
        assert "PEFT refuses LoRA on out_proj" in error.value.message


def test_lora_trainable_parameters_match_peft():
    # by hand for mamba2: 4 in_proj of 512 -> 1024 + 1536 + 16 = 2576, rank 16: r x (in + out)
    mamba2 = lora_run("mamba2", PEFT_TARGETS["mamba2"])
    assert mamba2["parameters"]["trainable"] == 4 * 16 * (512 + 2576) == 197_632
    # rank 16 adapters are 16 x (in + out) a matrix. Attention of 8 heads of 64 and 2 KV heads:
    # q and o 512 -> 512, k and v 512 -> 128
    attention = 16 * (2 * (512 + 512) + 2 * (512 + 128))
    assert attention == 53_248
    # nemotron_h "M-M*-ME": three Mamba in_proj as mamba2's, one attention block, two "-" MLPs
    # (up and down 512 <-> 1536) and the MoE block's shared expert (512 <-> 512), nn.Linear
    # modules; its routed experts are 3-D parameters PEFT leaves alone
    mlp = 16 * 2 * (512 + 1536)
    shared = 16 * 2 * (512 + 512)
    nemotron = 3 * 16 * (512 + 2576) + attention + 2 * mlp + shared
    assert nemotron == 365_312  # what get_peft_model counted (peft 0.21)
    assert lora_run("nemotron_h", PEFT_TARGETS["nemotron_h"])["parameters"]["trainable"] == nemotron
    # falcon_h1, 4 layers each of a Mamba in_proj 512 -> 768 (gate) + 768 + 2 x 128 (x, B, C)
    # + 12 heads = 1,804, the attention and a gated MLP (gate, up, down: 512 <-> 1536)
    falcon = 4 * (16 * (512 + 1804) + attention + 16 * 3 * (512 + 1536))
    assert falcon == 754_432  # what get_peft_model counted (peft 0.21)
    assert lora_run("falcon_h1", PEFT_TARGETS["falcon_h1"])["parameters"]["trainable"] == falcon


# --- the fixed state in the kv_cache line -------------------------------------------------------

# LinearAttentionLayer.lazy_initialization: conv_states zeros of (batch, conv_dim, conv_kernel) in
# the in_proj output's dtype (bf16 here); recurrent_states zeros_like mamba2_chunk_scan's final
# state, (batch, heads, head_dim, state) float32 (the scan computes in float32)
MAMBA2_STATE_PER_LAYER = (8192 + 2 * 8 * 128) * 4 * 2 + 128 * 64 * 128 * 4  # 4,276,224 B


@pytest.mark.parametrize("tokens", [16, 8192])
def test_mamba2_state_does_not_grow_with_the_context(tokens):
    result = run(MAMBA2_DEFAULT, batch_size=3, sequence_length=tokens, weight_dtype="bfloat16")
    assert result["breakdown"]["kv_cache"] == 3 * 64 * MAMBA2_STATE_PER_LAYER


def test_nemotron_h_keeps_one_state_and_one_kv_cache():
    tokens = 4096
    result = run(NEMOTRON_DEFAULT, batch_size=1, sequence_length=tokens, weight_dtype="bfloat16")
    kv_per_token = 2 * 8 * 128 * 2  # the one "*" block's K and V, bf16
    assert result["breakdown"]["kv_cache"] == tokens * kv_per_token + MAMBA2_STATE_PER_LAYER


def test_falcon_h1_keeps_state_beside_the_kv_cache():
    tokens = 2048
    result = run(FALCON_7B, batch_size=2, sequence_length=tokens, weight_dtype="bfloat16")
    kv_per_token = 44 * 2 * 2 * 128 * 2  # every layer's K and V, 2 KV heads of 128, bf16
    state = (3072 + 2 * 256) * 4 * 2 + 24 * 128 * 256 * 4  # conv bf16 + recurrent float32
    assert result["breakdown"]["kv_cache"] == 2 * (tokens * kv_per_token + 44 * state)
    assert any("beside its attention" in note for note in result["notes"])


def test_falcon_h1_pipeline_stage_keeps_both_for_its_layers():
    # two pipeline stages of 22 layers each: every layer of a stage has attention and a mixer
    result = run(
        FALCON_7B,
        batch_size=1,
        sequence_length=2048,
        weight_dtype="bfloat16",
        pipeline_parallel=2,
        num_gpus=2,
    )
    kv_per_token_layer = 2 * 2 * 128 * 2
    state = (3072 + 2 * 256) * 4 * 2 + 24 * 128 * 256 * 4
    assert result["breakdown"]["kv_cache"] == 22 * (2048 * kv_per_token_layer + state)


# --- prefill activations: mamba2_chunk_scan's working set ---------------------------------------


def test_mamba2_prefill_is_the_chunked_scans_working_set():
    # the validation case mamba2-infer-b2-s1024-bf16 (validation/cases.py): hidden 512, 4
    # layers, 16 heads of 64, state 128, 2 groups, chunk 256, 32,768 tokens
    config = {
        "model_type": "mamba2",
        "hidden_size": 512,
        "num_hidden_layers": 4,
        "num_heads": 16,
        "head_dim": 64,
        "state_size": 128,
        "n_groups": 2,
        "chunk_size": 256,
        "vocab_size": 32768,
    }
    batch, seq, heads, head_dim, state, chunk = 2, 1024, 16, 64, 128, 256
    tokens, inner = batch * seq, heads * head_dim
    conv_dim = inner + 2 * 2 * state
    projection = inner + conv_dim + heads
    chunks = seq // chunk  # 1024 is whole chunks: no padding
    # bf16: the in_proj output (gate, x/B/C, dt are views of it) and the convolution's output
    compute = tokens * (projection + conv_dim) * 2
    # float32 as mamba2_chunk_scan returns: 7 intermediate-wide (x*dt, D_residual, Y_diag,
    # C_times_states, Y_off, their sum, + D_residual), B, C and B_decay over the heads, L, G and
    # M (chunk x chunk per head), 4 head-wide (A*dt, A_cumsum, decay_states, state_decay_out),
    # and the chunk states (states, the cat with the initial state, new_states)
    fp32 = tokens * (7 * inner + 3 * heads * state + 3 * heads * chunk + 4 * heads)
    fp32 += batch * (chunks + 1) * 3 * heads * head_dim * state
    # the residual stream, the normed input and the embedding output Mamba2Model's loop keeps,
    # bf16
    hidden = tokens * 512 * 3 * 2
    # the last position's logits in bf16 and their float32 copy
    logits = batch * 32768 * (2 + 4)
    result = run(
        config,
        batch_size=batch,
        sequence_length=seq,
        weight_dtype="bfloat16",
        runtime_overhead_bytes=0,
    )
    assert result["breakdown"]["activations"] == hidden + compute + fp32 * 4 + logits


def test_mamba2_training_saves_mixers_and_one_norm_per_block():
    # bf16 weights, full AdamW training, one sequence of 256 (one chunk): every block saves its
    # Mamba-2 scan's working set (taken as saved whole), out_proj's input and its one RMSNorm's
    # tensors; nothing of an attention or an MLP. The same shape as the prefill test above
    config = {
        "model_type": "mamba2",
        "hidden_size": 512,
        "num_hidden_layers": 4,
        "num_heads": 16,
        "head_dim": 64,
        "state_size": 128,
        "n_groups": 2,
        "chunk_size": 256,
        "vocab_size": 32768,
    }
    layers, h, vocab, heads, head_dim, state, chunk = 4, 512, 32768, 16, 64, 128, 256
    tokens, inner = 256, heads * head_dim
    conv_dim = inner + 2 * 2 * state
    projection = inner + conv_dim + heads
    scan = tokens * (projection + conv_dim) * 2
    scan += 4 * tokens * (7 * inner + 3 * heads * state + 3 * heads * chunk + 4 * heads)
    scan += 4 * (1 + 1) * 3 * heads * head_dim * state  # one chunk, plus the initial state
    mixer = scan + tokens * inner * 2  # out_proj's bf16 input
    # an RMSNorm saves its float32 input and two bf16 tensors (the normed input, its output)
    norm = tokens * h * (4 + 2 * 2)
    # the final norm, then the loss's three float32 tokens x vocab tensors
    head = norm + tokens * vocab * 3 * 4
    stored = layers * (mixer + norm) + head
    result = run(
        config,
        mode="training",
        batch_size=1,
        sequence_length=tokens,
        weight_dtype="bfloat16",
        runtime_overhead_bytes=0,
    )
    gradients = result["breakdown"]["gradients"]
    assert gradients == 2 * result["parameters"]["total"]
    # the activations line is the peak beyond the gradients, which are allocated as backward
    # frees the activations (detailed.py GRADIENTS_ALLOCATED_AT_ACTIVATION_PEAK = 0)
    assert result["breakdown"]["activations"] == stored - gradients
