"""Architecture from config.json and from manual fields: shapes, LoRA targets, windows, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from calculator.engine.architecture import (
    KNOWN_MODEL_TYPES,
    LIMITS,
    MAX_HIDDEN_SIZE,
    Architecture,
    LinearLayer,
    architecture_from_fields,
    architecture_from_hf_config,
    lora_target_layers,
)
from calculator.engine.errors import EstimateError

CONFIGS = Path(__file__).parent / "fixtures" / "configs"


def config(name: str, **changes: Any) -> dict[str, Any]:
    data = json.loads((CONFIGS / f"{name}.json").read_text())
    data.update(changes)
    return data


def architecture(name: str, **changes: Any) -> Architecture:
    return architecture_from_hf_config(config(name, **changes))[0]


def layers_by_name(arch: Architecture) -> dict[str, LinearLayer]:
    return {
        layer.name: layer
        for layer in arch.linear_layers
        if not (layer.routed_expert or layer.router)
    }


# Llama-3.1-8B by hand: hidden 4096, 32 layers, 32 heads x 128, 8 kv heads, MLP 14336
LLAMA_3_1_8B_FIELDS = {
    "hidden_size": 4096,
    "num_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "intermediate_size": 14336,
    "vocab_size": 128_256,
}


# --- config.json: shape ----------------------------------------------------------------------


def test_it_reads_llama_3_1_8b_shape() -> None:
    llama, notes = architecture_from_hf_config(config("meta-llama--Llama-3.1-8B"))
    assert llama.model_type == "llama"
    assert (llama.hidden_size, llama.num_layers) == (4096, 32)
    assert (llama.num_attention_heads, llama.num_key_value_heads, llama.head_dim) == (32, 8, 128)
    assert (llama.intermediate_size, llama.vocab_size) == (14336, 128_256)
    assert llama.tie_word_embeddings is False
    assert llama.gated_mlp is True
    assert llama.max_position_embeddings == 131_072
    assert llama.default_dtype == "bfloat16"
    assert not llama.is_moe and not llama.is_mla
    assert notes == []


def test_llama_linear_layers_are_the_lora_all_linear_targets() -> None:
    # every nn.Linear of the 32 decoder layers; the LM head is not a PEFT all-linear target
    llama = architecture("meta-llama--Llama-3.1-8B")
    shapes = [
        (layer.name, layer.in_features, layer.out_features, layer.count, layer.active_count)
        for layer in llama.linear_layers
    ]
    assert shapes == [
        ("q_proj", 4096, 32 * 128, 32, 32),
        ("k_proj", 4096, 8 * 128, 32, 32),
        ("v_proj", 4096, 8 * 128, 32, 32),
        ("o_proj", 32 * 128, 4096, 32, 32),
        ("gate_proj", 4096, 14336, 32, 32),
        ("up_proj", 4096, 14336, 32, 32),
        ("down_proj", 14336, 4096, 32, 32),
    ]
    assert llama.linear_layers[0].path == "model.layers.*.self_attn.q_proj"
    assert llama.linear_layers[-1].path == "model.layers.*.mlp.down_proj"


def test_fused_projections_keep_their_hf_names() -> None:
    phi3 = layers_by_name(architecture("microsoft--Phi-3-mini-4k-instruct"))
    assert set(phi3) == {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}
    assert phi3["qkv_proj"].out_features == 3 * 3072  # 32 heads + 2 x 32 kv heads, 96 wide
    assert phi3["gate_up_proj"].out_features == 2 * 8192
    gpt2 = architecture("openai-community--gpt2").linear_layers
    # GPT-2's Conv1D modules: c_attn, attn.c_proj, c_fc, mlp.c_proj
    assert [(layer.path, layer.in_features, layer.out_features) for layer in gpt2] == [
        ("transformer.h.*.attn.c_attn", 768, 3 * 768),
        ("transformer.h.*.attn.c_proj", 768, 768),
        ("transformer.h.*.mlp.c_fc", 768, 4 * 768),
        ("transformer.h.*.mlp.c_proj", 4 * 768, 768),
    ]


def test_falcon_7b_is_multi_query() -> None:
    falcon = architecture("tiiuae--falcon-7b")
    assert (falcon.num_attention_heads, falcon.num_key_value_heads, falcon.head_dim) == (71, 1, 64)
    # query_key_value: 71 query heads + one key and one value head, 64 wide
    assert layers_by_name(falcon)["query_key_value"].out_features == (71 + 2) * 64
    assert falcon.intermediate_size == 4 * 4544  # ffn_hidden_size defaults to 4 x hidden
    assert falcon.gated_mlp is False
    assert falcon.tie_word_embeddings is True


def test_falcon_40b_uses_grouped_kv_heads() -> None:
    falcon = architecture("tiiuae--falcon-40b")
    assert falcon.num_key_value_heads == 8  # new_decoder_architecture: num_kv_heads
    assert layers_by_name(falcon)["query_key_value"].out_features == (128 + 2 * 8) * 64
    # ln_attn and ln_mlp, weight and bias, in 60 layers, plus ln_f
    assert falcon.parameters.norms == (60 * 2 + 1) * 2 * 8192


def test_moe_linear_layers_list_fused_experts_and_router() -> None:
    mixtral = architecture("mistralai--Mixtral-8x7B-v0.1")
    moe = [layer for layer in mixtral.linear_layers if layer.routed_expert or layer.router]
    # transformers 5: router gate.weight (4096 -> 8), experts.gate_up_proj (w1 and w3 fused,
    # 4096 -> 2 x 14336) and experts.down_proj (w2); 8 experts in 32 layers, 2 per token
    assert [
        (m.name, m.in_features, m.out_features, m.count, m.active_count, m.lora_rank_factor)
        for m in moe
    ] == [
        ("gate", 4096, 8, 32, 32, 1),
        ("gate_up_proj", 4096, 2 * 14336, 32 * 8, 32 * 2, 2),
        ("down_proj", 14336, 4096, 32 * 8, 32 * 2, 1),
    ]
    assert moe[1].path == "model.layers.*.mlp.experts.gate_up_proj"
    # together with the attention they hold every matrix of the decoder layers
    matrices = sum(m.in_features * m.out_features * m.count for m in mixtral.linear_layers)
    parts = mixtral.parameters
    assert matrices == parts.attention + parts.experts + parts.router


def test_qwen2_moe_lists_shared_expert_and_its_gate() -> None:
    qwen = layers_by_name(architecture("Qwen--Qwen1.5-MoE-A2.7B"))
    assert qwen["shared_expert_gate"].out_features == 1
    assert qwen["shared_expert_gate"].path == "model.layers.*.mlp.shared_expert_gate"
    assert qwen["up_proj"].path == "model.layers.*.mlp.shared_expert.up_proj"
    assert qwen["up_proj"].out_features == 5632
    assert qwen["q_proj"].count == 24


def test_deepseek_v2_lite_mla_without_q_lora() -> None:
    lite = architecture("deepseek-ai--DeepSeek-V2-Lite")
    assert lite.is_mla and lite.q_lora_rank == 0
    assert (lite.kv_lora_rank, lite.qk_rope_head_dim, lite.qk_nope_head_dim) == (512, 64, 128)
    assert lite.head_dim == 128 + 64
    assert lite.num_dense_layers == 1
    projections = layers_by_name(lite)
    assert "q_a_proj" not in projections
    assert (projections["q_proj"].in_features, projections["q_proj"].out_features) == (
        2048,
        16 * (128 + 64),
    )
    kv_a = projections["kv_a_proj_with_mqa"]
    assert (kv_a.in_features, kv_a.out_features, kv_a.count) == (2048, 512 + 64, 27)
    kv_b = projections["kv_b_proj"]
    assert (kv_b.in_features, kv_b.out_features) == (512, 16 * (128 + 128))
    # 2 shared experts of 1408 each
    assert lite.shared_expert_intermediate_size == 2 * 1408


def test_deepseek_v3_mla_with_q_lora() -> None:
    v3 = layers_by_name(architecture("deepseek-ai--DeepSeek-V3"))
    assert (v3["q_a_proj"].in_features, v3["q_a_proj"].out_features) == (7168, 1536)
    assert (v3["q_b_proj"].in_features, v3["q_b_proj"].out_features) == (1536, 128 * 192)
    assert v3["o_proj"].in_features == 128 * 128
    # the three dense layers' MLP and the 58 MoE layers' shared expert share names
    dense_and_shared = [
        layer
        for layer in architecture("deepseek-ai--DeepSeek-V3").linear_layers
        if layer.name == "gate_proj" and not layer.routed_expert
    ]
    assert [(layer.out_features, layer.count) for layer in dense_and_shared] == [
        (18432, 3),
        (2048, 58),
    ]


def test_qk_norms_and_four_norms_per_layer() -> None:
    # Qwen3-8B: q_norm and k_norm are RMSNorm(128) in each of 36 layers
    qwen3 = architecture("Qwen--Qwen3-8B")
    projections = 4096 * (4096 + 2 * 1024) + 4096 * 4096
    assert qwen3.parameters.attention == 36 * (projections + 2 * 128)
    # Gemma-2-9B: input, post-attention, pre- and post-feedforward norms in 42 layers, + final
    assert architecture("google--gemma-2-9b").parameters.norms == (42 * 4 + 1) * 3584
    # OLMo-2: q_norm over 32 x 128 and k_norm over 32 x 128 in each of 32 layers
    olmo = architecture("allenai--OLMo-2-1124-7B")
    assert olmo.parameters.attention == 32 * (4 * 4096 * 4096 + 2 * 4096)


def test_qwen2_biases_are_on_q_k_v_only() -> None:
    qwen = architecture("Qwen--Qwen2.5-7B-Instruct")
    q_out, kv_out, h = 28 * 128, 4 * 128, 3584
    # weights, then the q/k/v biases (modeling_qwen2.py: o_proj bias=False)
    assert qwen.parameters.attention == 28 * (
        h * (q_out + 2 * kv_out) + q_out * h + q_out + 2 * kv_out
    )


def test_starcoder2_uses_biases_and_layer_norms() -> None:
    star = architecture("bigcode--starcoder2-3b")
    assert star.gated_mlp is False
    assert set(layers_by_name(star)) == {"q_proj", "k_proj", "v_proj", "o_proj", "c_fc", "c_proj"}
    # two LayerNorms (weight and bias) in 30 layers, plus the final norm
    assert star.parameters.norms == (30 * 2 + 1) * 2 * 3072
    # c_fc 3072 -> 12288 and c_proj back, with biases
    assert star.parameters.mlp == 30 * (2 * 3072 * 12288 + 12288 + 3072)


def test_qwen2_moe_without_experts_keeps_dense_mlps() -> None:
    # modeling_qwen2_moe.py: num_experts 0 gives every layer a dense MLP of intermediate_size.
    # By hand from the published total 14,315,784,192: remove 24 layers of routed experts
    # (60 x 3 x 2048 x 1408), router and shared-expert gate (60 x 2048 + 2048) and shared expert
    # (3 x 2048 x 5632), add 24 dense MLPs (3 x 2048 x 5632); the meta device also gives this
    moe_parts = 24 * (60 * 3 * 2048 * 1408 + 60 * 2048 + 2048 + 3 * 2048 * 5632)
    expected = 14_315_784_192 - moe_parts + 24 * 3 * 2048 * 5632
    assert expected == 1_855_703_040
    qwen = architecture("Qwen--Qwen1.5-MoE-A2.7B", num_experts=0)
    assert qwen.num_parameters == expected
    assert not qwen.is_moe


def test_qwen3_moe_mlp_only_layers_and_sparse_step() -> None:
    # decoder_sparse_step 2: layers 1, 3, ..., 47 are sparse (24), minus layer 1 in
    # mlp_only_layers: 23 MoE layers and 25 dense MLPs of 6144 (meta device agrees)
    moe_layer = 128 * 3 * 2048 * 768 + 128 * 2048  # experts and router
    rest = 30_532_122_624 - 48 * moe_layer  # published total minus all 48 MoE layers
    qwen = architecture("Qwen--Qwen3-30B-A3B", mlp_only_layers=[0, 1], decoder_sparse_step=2)
    assert qwen.num_parameters == rest + 23 * moe_layer + 25 * 3 * 2048 * 6144 == 16_369_793_024
    assert qwen.num_dense_layers == 25


# --- LoRA targets ------------------------------------------------------------------------------


def lora_parameters(arch: Architecture, targets: Any, rank: int = 16) -> int:
    return sum(
        rank * layer.lora_rank_factor * (layer.in_features + layer.out_features) * layer.count
        for layer in lora_target_layers(arch, targets)
    )


def test_all_linear_on_llama_adapts_every_projection() -> None:
    # r = 16 on q (4096 -> 4096), k and v (4096 -> 1024), o, gate/up (4096 -> 14336), down, in
    # 32 layers; peft 0.21 get_peft_model(LoraConfig(r=16, target_modules="all-linear")) on the
    # meta device counts the same 41,943,040 trainable parameters
    by_hand = 32 * 16 * ((4096 + 4096) * 2 + (4096 + 1024) * 2 + (4096 + 14336) * 3)
    assert lora_parameters(architecture("meta-llama--Llama-3.1-8B"), "all-linear") == by_hand
    assert by_hand == 41_943_040


def test_all_linear_on_mixtral_adapts_experts_and_router() -> None:
    # peft 0.21 maps "all-linear" on transformers-5 Mixtral to the attention, the router and the
    # fused experts, gate_up_proj at rank 2r (transformers_weight_conversion.py); by hand, r = 16:
    attention = 32 * 16 * ((4096 + 4096) * 2 + (4096 + 1024) * 2)
    router = 32 * 16 * (4096 + 8)
    gate_up = 32 * 8 * 32 * (4096 + 2 * 14336)
    down = 32 * 8 * 16 * (14336 + 4096)
    by_hand = attention + router + gate_up + down
    # get_peft_model on the meta device: 359,665,664 trainable parameters
    assert lora_parameters(architecture("mistralai--Mixtral-8x7B-v0.1"), "all-linear") == by_hand
    assert by_hand == 359_665_664


def test_all_linear_on_deepseek_skips_dense_and_shared_mlps() -> None:
    # peft 0.21 remaps gate_proj/up_proj/down_proj onto the fused experts, so the first layer's
    # dense MLP and the shared experts are not adapted; r = 16, DeepSeek-V2-Lite:
    attention = 27 * 16 * ((2048 + 3072) + (2048 + 576) + (512 + 4096) + (2048 + 2048))
    router = 26 * 16 * (2048 + 64)
    experts = 26 * 64 * (32 * (2048 + 2 * 1408) + 16 * (1408 + 2048))
    # get_peft_model on the meta device: 358,994,944 trainable parameters
    lite = architecture("deepseek-ai--DeepSeek-V2-Lite")
    assert lora_parameters(lite, "all-linear") == attention + router + experts == 358_994_944


def test_all_linear_on_qwen2_moe_leaves_the_experts() -> None:
    # qwen2_moe has no conversion pattern in transformers 5.24 / peft 0.21: "all-linear" takes the
    # nn.Linear modules only, attention, shared expert and its gate; r = 16:
    attention = 24 * 16 * (2048 + 2048) * 4
    shared = 24 * 16 * ((2048 + 5632) * 3 + (2048 + 1))
    # get_peft_model on the meta device: 15,925,632 trainable parameters
    qwen = architecture("Qwen--Qwen1.5-MoE-A2.7B")
    assert lora_parameters(qwen, "all-linear") == attention + shared == 15_925_632


def test_named_targets_follow_peft() -> None:
    mixtral = architecture("mistralai--Mixtral-8x7B-v0.1")
    assert [layer.name for layer in lora_target_layers(mixtral, ["q_proj", "v_proj"])] == [
        "q_proj",
        "v_proj",
    ]
    # the contract's MLP names stand for Mixtral's w1/w3/w2: the fused experts
    mlp = lora_target_layers(mixtral, ["gate_proj", "up_proj", "down_proj"])
    assert [(layer.name, layer.routed_expert) for layer in mlp] == [
        ("gate_up_proj", True),
        ("down_proj", True),
    ]
    llama = architecture("meta-llama--Llama-3.1-8B")
    assert [layer.name for layer in lora_target_layers(llama, ["up_proj"])] == ["up_proj"]


def test_named_targets_refuse_half_a_fused_pair_and_unknown_names() -> None:
    mixtral = architecture("mistralai--Mixtral-8x7B-v0.1")
    with pytest.raises(EstimateError) as caught:
        lora_target_layers(mixtral, ["gate_proj"])  # PEFT raises ValueError too
    assert caught.value.field == "lora_target_modules"
    with pytest.raises(EstimateError) as caught:
        lora_target_layers(architecture("openai-community--gpt2"), ["q_proj"])  # c_attn only
    assert caught.value.field == "lora_target_modules"
    assert "c_attn" in caught.value.message


# --- config.json: windows, dtypes, defaults, notes ---------------------------------------------


@pytest.mark.parametrize(
    ("name", "window", "sliding_layers"),
    [
        ("mistralai--Mistral-7B-v0.1", 4096, 32),  # every layer
        ("google--gemma-2-9b", 4096, 21),  # alternating: layers 0, 2, ... of 42
        ("google--gemma-3-1b-it", 512, 22),  # 5 sliding then 1 global: 26 - 4 global
        ("google--gemma-3-4b-it", 1024, 29),  # 34 layers, global 5, 11, 17, 23, 29
        ("openai--gpt-oss-20b", 128, 12),  # layer_types: 12 of 24
        ("bigcode--starcoder2-3b", 4096, 30),
        ("microsoft--Phi-3-mini-4k-instruct", 2047, 32),
        ("Qwen--Qwen2.5-7B-Instruct", 0, 0),  # use_sliding_window: false
        ("mistralai--Mixtral-8x7B-v0.1", 0, 0),  # sliding_window: null
        ("meta-llama--Llama-3.1-8B", 0, 0),
    ],
)
def test_it_counts_sliding_window_layers(name: str, window: int, sliding_layers: int) -> None:
    arch = architecture(name)
    assert (arch.sliding_window, arch.num_sliding_window_layers) == (window, sliding_layers)


def test_qwen2_slides_from_max_window_layers_on() -> None:
    # configuration_qwen2.py: layers >= max_window_layers slide when use_sliding_window is on
    qwen = architecture("Qwen--Qwen2.5-7B-Instruct", use_sliding_window=True, max_window_layers=21)
    assert (qwen.sliding_window, qwen.num_sliding_window_layers) == (131_072, 28 - 21)


def test_mistral_without_sliding_window_key_uses_the_class_default() -> None:
    data = config("mistralai--Mistral-7B-v0.1")
    del data["sliding_window"]
    assert architecture_from_hf_config(data)[0].sliding_window == 4096  # MistralConfig default


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"torch_dtype": "float16"}, "float16"),
        ({"torch_dtype": None, "dtype": "float32"}, "float32"),
        ({"torch_dtype": "bf16"}, "bfloat16"),
        ({"torch_dtype": None}, "bfloat16"),
    ],
)
def test_default_dtype_follows_the_config(changes: dict[str, Any], expected: str) -> None:
    assert architecture("meta-llama--Llama-2-7b-hf", **changes).default_dtype == expected


def test_unrecognised_dtype_falls_back_with_a_note() -> None:
    arch, notes = architecture_from_hf_config(
        config("meta-llama--Llama-2-7b-hf", torch_dtype="int8")
    )
    assert arch.default_dtype == "bfloat16"
    assert any("torch_dtype" in note for note in notes)


def test_missing_num_key_value_heads_follows_the_family_default() -> None:
    llama = config("meta-llama--Llama-3.1-8B")
    del llama["num_key_value_heads"]
    assert architecture_from_hf_config(llama)[0].num_key_value_heads == 32  # = attention heads
    mistral = config("mistralai--Mistral-7B-v0.1")
    del mistral["num_key_value_heads"]
    arch, notes = architecture_from_hf_config(mistral)
    assert arch.num_key_value_heads == 8  # MistralConfig's default
    assert any("num_key_value_heads" in note for note in notes)


def test_quantised_and_mtp_configs_are_noted() -> None:
    architecture, notes = architecture_from_hf_config(config("deepseek-ai--DeepSeek-V3"))
    # quant_method fp8 with weight_block_size [128, 128]: the published checkpoint's format
    assert architecture.checkpoint is not None
    assert architecture.checkpoint.weight_dtype == "fp8_block"
    assert any("multi-token-prediction" in note for note in notes)


def test_unknown_family_is_counted_llama_like_with_a_note() -> None:
    data = config("meta-llama--Llama-3.1-8B", model_type="my_llama")
    arch, notes = architecture_from_hf_config(data)
    # llama-like layout of Llama-3.1-8B's shape: its published 8,030,261,248
    assert arch.num_parameters == 8_030_261_248
    assert arch.parameters_exact is False
    assert arch.model_type == "my_llama"
    assert any("Unknown model_type 'my_llama'" in note for note in notes)


def test_unknown_family_reads_generic_aliases() -> None:
    data = {
        "model_type": "somegpt",
        "d_model": 512,
        "n_layers": 4,
        "n_heads": 8,
        "ffn_dim": 2048,
        "vocab_size": 1000,
        "tie_word_embeddings": True,
    }
    arch, _ = architecture_from_hf_config(data)
    # by hand: embeddings 1000 x 512; per layer 4 x 512^2 attention + 3 x 512 x 2048 MLP
    # + 2 norms of 512; final norm 512
    per_layer = 4 * 512 * 512 + 3 * 512 * 2048 + 2 * 512
    assert arch.num_parameters == 1000 * 512 + 4 * per_layer + 512


def test_config_without_model_type_is_read_generically() -> None:
    data = config("meta-llama--Llama-3.1-8B")
    del data["model_type"]
    arch, notes = architecture_from_hf_config(data)
    assert arch.model_type == "custom"
    assert arch.num_parameters == 8_030_261_248  # llama-like: the published Llama-3.1-8B count
    assert any(note.startswith("No model_type") for note in notes)


def test_multimodal_unknown_family_reads_its_text_config() -> None:
    # idefics3 has no vision row (calculator/engine/vision.py): its text model alone is counted
    data = {
        "model_type": "idefics3",
        "text_config": config("meta-llama--Llama-3.1-8B"),
        "vision_config": {"hidden_size": 1024},
    }
    arch, notes = architecture_from_hf_config(data)
    assert arch.model_type == "llama"
    assert arch.num_parameters == 8_030_261_248
    assert any("text_config" in note for note in notes)


def test_known_model_types_cover_the_required_families() -> None:
    assert {"llama", "qwen3_moe", "deepseek_v3", "gpt_oss", "gemma3", "falcon"} <= set(
        KNOWN_MODEL_TYPES
    )


# --- config.json: errors -----------------------------------------------------------------------


def hf_error(data: Any) -> EstimateError:
    with pytest.raises(EstimateError) as caught:
        architecture_from_hf_config(data)
    return caught.value


def test_it_rejects_a_config_that_is_not_an_object() -> None:
    assert hf_error([1, 2]).field == "model.hf_config"


def test_it_names_a_missing_required_key() -> None:
    data = config("meta-llama--Llama-3.1-8B")
    del data["hidden_size"]
    error = hf_error(data)
    assert error.field == "model.hf_config.hidden_size"
    assert "required" in error.message


@pytest.mark.parametrize(
    "value", [True, "4096", 4096.5, math.nan, math.inf, -4096, 0, [4096], None]
)
def test_it_rejects_bad_numbers(value: Any) -> None:
    data = config("meta-llama--Llama-3.1-8B", num_hidden_layers=value)
    assert hf_error(data).field == "model.hf_config.num_hidden_layers"


def test_it_accepts_integral_floats() -> None:
    assert architecture("meta-llama--Llama-3.1-8B", num_hidden_layers=32.0).num_layers == 32


def test_it_rejects_absurd_sizes() -> None:
    error = hf_error(config("meta-llama--Llama-3.1-8B", hidden_size=MAX_HIDDEN_SIZE + 1))
    assert error.field == "model.hf_config.hidden_size"
    assert "at most" in error.message


def test_it_rejects_heads_that_do_not_divide_hidden() -> None:
    error = hf_error(config("openai-community--gpt2", n_head=7))  # 768 / 7
    assert error.field == "model.hf_config.n_head"


def test_it_rejects_kv_heads_that_do_not_divide_heads() -> None:
    error = hf_error(config("meta-llama--Llama-3.1-8B", num_key_value_heads=5))
    assert error.field == "model.hf_config.num_key_value_heads"


def test_it_rejects_more_experts_per_token_than_experts() -> None:
    error = hf_error(config("mistralai--Mixtral-8x7B-v0.1", num_experts_per_tok=9))
    assert error.field == "model.hf_config.num_experts_per_tok"


def test_it_rejects_layer_types_of_the_wrong_length() -> None:
    error = hf_error(config("openai--gpt-oss-20b", layer_types=["full_attention"] * 3))
    assert error.field == "model.hf_config.layer_types"


def test_it_names_text_config_fields() -> None:
    data = config("google--gemma-3-4b-it")
    data["text_config"] = {**data["text_config"], "hidden_size": -1}
    assert hf_error(data).field == "model.hf_config.text_config.hidden_size"


def test_unknown_family_without_shape_names_what_is_missing() -> None:
    error = hf_error({"model_type": "mystery", "hidden_size": 64, "vocab_size": 10})
    assert error.field == "model.hf_config.num_hidden_layers"
    assert "num_hidden_layers" in error.message and "intermediate_size" in error.message


def test_it_rejects_counts_beyond_the_limit() -> None:
    huge = config(
        "meta-llama--Llama-3.1-8B",
        hidden_size=1_000_000,
        intermediate_size=16_000_000,
        num_hidden_layers=10_000,
        num_attention_heads=1000,
        num_key_value_heads=1000,
    )
    error = hf_error(huge)
    assert error.field == "model.hf_config"
    assert "more than the limit" in error.message


# --- manual fields ------------------------------------------------------------------------------


def test_fields_count_a_llama_like_shape() -> None:
    arch, notes = architecture_from_fields(LLAMA_3_1_8B_FIELDS)
    # the llama layout of Llama-3.1-8B's shape is its published 8,030,261,248
    assert arch.num_parameters == arch.num_active_parameters == 8_030_261_248
    assert arch.parameters_exact is False
    assert arch.model_type == "custom"
    assert arch.head_dim == 128
    assert any("llama-like" in note for note in notes)
    assert [layer.name for layer in arch.linear_layers] == [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ]


def test_fields_default_kv_heads_and_head_dim() -> None:
    arch, _ = architecture_from_fields(
        {"hidden_size": 768, "num_layers": 2, "num_attention_heads": 12, "num_parameters": 10**8}
    )
    assert (arch.num_key_value_heads, arch.head_dim) == (12, 64)


def test_entered_num_parameters_is_used_as_entered() -> None:
    fields = {**LLAMA_3_1_8B_FIELDS, "num_parameters": 8_000_000_000, "model_type": "llama"}
    arch, notes = architecture_from_fields(fields)
    assert arch.num_parameters == arch.parameters.total == 8_000_000_000
    assert arch.parameters_exact is False
    assert arch.model_type == "llama"
    # embeddings and LM head stay vocab x hidden; the rest is scaled to fit
    assert arch.parameters.embeddings == arch.parameters.lm_head == 128_256 * 4096
    assert any("as entered" in note for note in notes)


def test_entered_num_parameters_without_widths_infers_the_mlp() -> None:
    # Mixtral-8x7B by hand: 46,702,792,704 parameters, 8 experts, 2 per token
    fields = {
        "hidden_size": 4096,
        "num_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 32000,
        "num_parameters": 46_702_792_704,
        "num_experts": 8,
        "num_experts_per_token": 2,
    }
    arch, notes = architecture_from_fields(fields)
    assert arch.moe_intermediate_size == 14336  # Mixtral's expert width, recovered
    assert arch.num_parameters == 46_702_792_704
    # as in the hf-config test: the non-expert rest plus 2 of 8 experts in 32 layers
    assert arch.num_active_parameters == 12_879_925_248
    assert any("inferred" in note for note in notes)


def test_fields_count_mla_and_shared_experts_like_deepseek_v2_lite() -> None:
    fields = {
        "hidden_size": 2048,
        "num_layers": 27,
        "num_attention_heads": 16,
        "intermediate_size": 10944,
        "vocab_size": 102_400,
        "num_experts": 64,
        "num_experts_per_token": 6,
        "num_shared_experts": 2,
        "moe_intermediate_size": 1408,
        "num_dense_layers": 1,
        "kv_lora_rank": 512,
        "qk_rope_head_dim": 64,
        "qk_nope_head_dim": 128,
        "v_head_dim": 128,
    }
    arch, _ = architecture_from_fields(fields)
    # DeepSeek-V2-Lite's transformers meta-device count (test_parameter_counts.py)
    assert arch.num_parameters == 15_706_484_224
    assert arch.is_mla and arch.num_dense_layers == 1


def test_fields_sliding_window_defaults_to_every_layer() -> None:
    arch, notes = architecture_from_fields({**LLAMA_3_1_8B_FIELDS, "sliding_window": 4096})
    assert (arch.sliding_window, arch.num_sliding_window_layers) == (4096, 32)
    assert any("every layer" in note for note in notes)


def fields_error(fields: Any) -> EstimateError:
    with pytest.raises(EstimateError) as caught:
        architecture_from_fields(fields)
    return caught.value


@pytest.mark.parametrize("missing", ["hidden_size", "num_layers", "num_attention_heads"])
def test_fields_name_the_missing_required_field(missing: str) -> None:
    fields = {**LLAMA_3_1_8B_FIELDS}
    del fields[missing]
    assert fields_error(fields).field == f"model.architecture.{missing}"


@pytest.mark.parametrize("missing", ["intermediate_size", "vocab_size"])
def test_fields_need_num_parameters_or_the_shape(missing: str) -> None:
    fields = {**LLAMA_3_1_8B_FIELDS}
    del fields[missing]
    error = fields_error(fields)
    assert error.field == f"model.architecture.{missing}"
    assert "num_parameters" in error.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hidden_size", False),
        ("num_layers", 0),
        ("num_attention_heads", -1),
        ("vocab_size", math.nan),
        ("num_parameters", 100_000_000_000_001),
        ("intermediate_size", "big"),
    ],
)
def test_fields_reject_bad_values(field: str, value: Any) -> None:
    assert (
        fields_error({**LLAMA_3_1_8B_FIELDS, field: value}).field == f"model.architecture.{field}"
    )


def test_fields_reject_heads_not_dividing_hidden() -> None:
    error = fields_error(
        {**LLAMA_3_1_8B_FIELDS, "num_attention_heads": 30, "num_key_value_heads": 30}
    )
    assert error.field == "model.architecture.num_attention_heads"
    # with head_dim given, the heads need not divide hidden
    arch, _ = architecture_from_fields(
        {
            **LLAMA_3_1_8B_FIELDS,
            "num_attention_heads": 30,
            "num_key_value_heads": 30,
            "head_dim": 128,
        }
    )
    assert arch.head_dim == 128


def test_fields_reject_kv_heads_not_dividing_heads() -> None:
    error = fields_error({**LLAMA_3_1_8B_FIELDS, "num_key_value_heads": 3})
    assert error.field == "model.architecture.num_key_value_heads"


def test_fields_reject_more_experts_per_token_than_experts() -> None:
    error = fields_error({**LLAMA_3_1_8B_FIELDS, "num_experts": 4, "num_experts_per_token": 5})
    assert error.field == "model.architecture.num_experts_per_token"


def test_fields_reject_moe_fields_without_experts() -> None:
    error = fields_error({**LLAMA_3_1_8B_FIELDS, "num_experts_per_token": 2})
    assert error.field == "model.architecture.num_experts_per_token"


def test_fields_reject_unknown_fields_and_non_objects() -> None:
    assert fields_error({**LLAMA_3_1_8B_FIELDS, "hiden_size": 1}).field == (
        "model.architecture.hiden_size"
    )
    assert fields_error("llama").field == "model.architecture"


def test_fields_reject_an_unknown_default_dtype() -> None:
    error = fields_error({**LLAMA_3_1_8B_FIELDS, "default_dtype": "int3"})
    assert error.field == "model.architecture.default_dtype"


def test_fields_reject_parameters_fewer_than_the_embeddings_need() -> None:
    # 128256 x 4096 embeddings alone are 525M: 1M parameters cannot hold this shape
    fields = {**LLAMA_3_1_8B_FIELDS, "num_parameters": 1_000_000}
    del fields["intermediate_size"]
    assert fields_error(fields).field == "model.architecture.num_parameters"


def test_limits_are_exported_for_forms() -> None:
    assert LIMITS["hidden_size"] == (1, MAX_HIDDEN_SIZE)
    assert LIMITS["num_parameters"] == (1, 100_000_000_000_000)
    assert LIMITS["vocab_size"][1] == 10_000_000
    assert LIMITS["num_experts"] == (0, 65_536)


# --- how transformers computes (flags for the activations formulas) --------------------------


def test_it_reads_the_activation_function_each_family_names():
    # GPT2Config activation_function "gelu_new" (gpt2's config.json says so too); phi-2's
    # hidden_act "gelu_new"; Llama's "silu"; falcon's FalconConfig.activation default "gelu"
    assert architecture("openai-community--gpt2").hidden_act == "gelu_new"
    assert architecture("microsoft--phi-2").hidden_act == "gelu_new"
    assert architecture("meta-llama--Llama-3.1-8B").hidden_act == "silu"
    falcon = config("tiiuae--falcon-7b")
    falcon.pop("activation", None)
    assert architecture_from_hf_config(falcon)[0].hidden_act == "gelu"
    gpt2 = config("openai-community--gpt2")
    del gpt2["activation_function"]
    assert architecture_from_hf_config(gpt2)[0].hidden_act == "gelu_new"  # GPT2Config default


def test_it_refuses_an_activation_that_is_not_a_name():
    with pytest.raises(EstimateError) as error:
        architecture("meta-llama--Llama-3.1-8B", hidden_act=3)
    assert error.value.field == "model.hf_config.hidden_act"


def test_it_reads_gemma2_logit_softcapping_with_the_config_default():
    # Gemma2Config final_logit_softcapping default 30.0; null turns it off; Gemma3 default None
    assert architecture("google--gemma-2-9b").final_logit_softcapping == 30.0
    gemma2 = config("google--gemma-2-9b")
    gemma2.pop("final_logit_softcapping", None)
    assert architecture_from_hf_config(gemma2)[0].final_logit_softcapping == 30.0
    assert (
        architecture("google--gemma-2-9b", final_logit_softcapping=None).final_logit_softcapping
        == 0
    )
    # other families have no soft cap, whatever the config says
    assert architecture("meta-llama--Llama-3.1-8B").final_logit_softcapping == 0
    with pytest.raises(EstimateError) as error:
        architecture("google--gemma-2-9b", final_logit_softcapping="high")
    assert error.value.field == "model.hf_config.final_logit_softcapping"


def test_it_knows_which_families_upcast_eager_softmax_and_use_layer_norm():
    # modeling_gpt2.py softmax in the compute dtype; the others softmax(..., dtype=
    # torch.float32), falcon too since transformers 5.25 (modeling_falcon.py line 229, the
    # shared eager_attention_forward). nn.LayerNorm in gpt2, gpt_neox, phi, falcon, starcoder2
    gpt2 = architecture("openai-community--gpt2")
    assert not gpt2.eager_softmax_float32 and gpt2.layer_norm
    for name in (
        "EleutherAI--pythia-160m",
        "microsoft--phi-2",
        "bigcode--starcoder2-3b",
        "tiiuae--falcon-7b",
    ):
        arch = architecture(name)
        assert arch.eager_softmax_float32 and arch.layer_norm
    llama = architecture("meta-llama--Llama-3.1-8B")
    assert llama.eager_softmax_float32 and not llama.layer_norm


def test_it_knows_the_compute_dtype_eager_softmax_working_set():
    # modeling_gpt2.py eager_attention_forward: `matmul * scaling`, `+ mask`, softmax, each made
    # while only its input lives: 2 score-sized tensors at once; the block drops the probabilities
    gpt2 = architecture("openai-community--gpt2")
    assert (gpt2.eager_score_copies, gpt2.eager_probabilities_carried) == (2, 0)
    # modeling_falcon.py (5.25): the float32 softmax of eager_attention_forward, no compute-
    # dtype copies; the decoder layer returns the probabilities and the model's loop keeps them
    # one layer longer
    falcon = architecture("tiiuae--falcon-7b")
    assert (falcon.eager_score_copies, falcon.eager_probabilities_carried) == (0, 1)
    # float32-softmax families keep their own formula: no compute-dtype copies, nothing carried
    for name in ("meta-llama--Llama-3.1-8B", "EleutherAI--pythia-160m", "google--gemma-2-9b"):
        arch = architecture(name)
        assert (arch.eager_score_copies, arch.eager_probabilities_carried) == (0, 0)


def test_it_keeps_deepseek_routers_in_float32():
    # modeling_deepseek_v2.py / v3: _keep_in_fp32_modules_strict = ["gate.weight", ...]
    assert architecture("deepseek-ai--DeepSeek-V2-Lite").router_float32
    assert architecture("deepseek-ai--DeepSeek-V3").router_float32
    assert not architecture("mistralai--Mixtral-8x7B-v0.1").router_float32


def test_manual_fields_get_llama_like_behaviour():
    arch, _ = architecture_from_fields(
        {
            "num_parameters": 7_000_000_000,
            "hidden_size": 4096,
            "num_layers": 32,
            "num_attention_heads": 32,
        }
    )
    assert arch.hidden_act == "silu"
    assert arch.final_logit_softcapping == 0
    assert arch.eager_softmax_float32 and not arch.layer_norm and not arch.router_float32
    assert arch.eager_score_copies == arch.eager_probabilities_carried == 0
