"""Exact parameter counts from published config.json files, against cited figures.

"meta device" below means: transformers 5.24.0 `AutoModelForCausalLM.from_config(cfg)` built
under `torch.device("meta")` (torch 2.13.0), counted as `sum(p.numel() for p in
model.parameters())` (tied weights once), with the fixture's `quantization_config` and
`auto_map` left out so that the plain model is built; for google/gemma-3-4b-it the whole
`Gemma3ForConditionalGeneration` (`AutoModelForImageTextToText`), its text model 3,880,263,168
and the vision tower and projector (test_gemma_3_counts_its_vision_tower) together.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from calculator.engine.architecture import Architecture, architecture_from_hf_config

CONFIGS = Path(__file__).parent / "fixtures" / "configs"


def config(name: str) -> dict[str, Any]:
    return json.loads((CONFIGS / f"{name}.json").read_text())


def architecture(name: str) -> Architecture:
    return architecture_from_hf_config(config(name))[0]


# Published totals: /work/shared/reference/memory-model.md ("Weights")
PUBLISHED = [
    ("meta-llama--Llama-3.1-8B", 8_030_261_248),
    ("mistralai--Mistral-7B-v0.1", 7_241_732_096),
    ("mistralai--Mixtral-8x7B-v0.1", 46_702_792_704),
    ("openai-community--gpt2", 124_439_808),
    ("meta-llama--Llama-2-7b-hf", 6_738_415_616),
]

# transformers 5.24.0 AutoModelForCausalLM.from_config on the meta device (see module docstring)
META_DEVICE = [
    ("meta-llama--Llama-3.2-1B", 1_235_814_400),
    ("Qwen--Qwen2.5-7B-Instruct", 7_615_616_512),
    ("Qwen--Qwen2.5-0.5B", 494_032_768),
    ("Qwen--Qwen3-8B", 8_190_735_360),
    ("Qwen--Qwen3-30B-A3B", 30_532_122_624),
    ("Qwen--Qwen1.5-MoE-A2.7B", 14_315_784_192),
    ("google--gemma-7b", 8_537_680_896),
    ("google--gemma-2-9b", 9_241_705_984),
    ("google--gemma-3-1b-it", 999_885_952),
    # Gemma3ForConditionalGeneration on the meta device: 4,300,079,472 = the text model's
    # 3,880,263,168 + the vision tower and projector
    ("google--gemma-3-4b-it", 4_300_079_472),
    ("microsoft--phi-2", 2_779_683_840),
    ("microsoft--Phi-3-mini-4k-instruct", 3_821_079_552),
    ("tiiuae--falcon-7b", 6_921_720_704),
    ("tiiuae--falcon-40b", 41_303_293_952),
    ("tiiuae--falcon-rw-1b", 1_311_625_216),
    ("EleutherAI--pythia-160m", 162_322_944),
    ("EleutherAI--gpt-neox-20b", 20_554_567_680),
    ("bigcode--starcoder2-3b", 3_030_371_328),
    ("allenai--OLMo-2-1124-7B", 7_298_617_344),
    ("deepseek-ai--DeepSeek-V2-Lite", 15_706_484_224),
    ("deepseek-ai--DeepSeek-V3", 671_026_404_352),
    ("openai--gpt-oss-20b", 20_914_757_184),
    ("Qwen--Qwen3-Next-80B-A3B-Instruct", 79_674_391_296),
    ("ai21labs--AI21-Jamba-Mini-1.5", 51_570_323_328),
]


@pytest.mark.parametrize(("name", "expected"), PUBLISHED + META_DEVICE)
def test_it_counts_exactly_what_transformers_builds(name: str, expected: int) -> None:
    counted = architecture(name)
    assert counted.num_parameters == expected
    assert counted.parameters is not None
    assert counted.parameters.total == expected
    assert counted.parameters_exact is True


def test_every_family_has_a_fixture() -> None:
    families = {architecture(name).model_type for name, _ in PUBLISHED + META_DEVICE}
    assert families == {
        "llama",
        "mistral",
        "mixtral",
        "qwen2",
        "qwen2_moe",
        "qwen3",
        "qwen3_moe",
        "gemma",
        "gemma2",
        "gemma3_text",
        "phi",
        "phi3",
        "falcon",
        "gpt2",
        "gpt_neox",
        "starcoder2",
        "olmo2",
        "deepseek_v2",
        "deepseek_v3",
        "gpt_oss",
        "qwen3_next",
        "jamba",
    }


def test_it_breaks_llama_3_1_8b_down_by_hand() -> None:
    h, layers, vocab, kv_width, ffn = 4096, 32, 128_256, 8 * 128, 14_336
    parts = architecture("meta-llama--Llama-3.1-8B").parameters
    assert parts is not None
    assert parts.embeddings == vocab * h == 525_336_576
    assert parts.lm_head == vocab * h  # tie_word_embeddings: false
    assert parts.attention == layers * (2 * h * h + 2 * h * kv_width) == 1_342_177_280
    assert parts.mlp == layers * 3 * h * ffn == 5_637_144_576
    assert parts.norms == (2 * layers + 1) * h == 266_240
    assert parts.experts == parts.router == 0
    # and they add up to the published 8,030,261,248
    assert parts.total == 8_030_261_248


def test_tied_embeddings_have_no_separate_lm_head() -> None:
    # Llama-3.2-1B: tie_word_embeddings true; GPT-2 ties by default (no key in its config.json)
    assert architecture("meta-llama--Llama-3.2-1B").parameters.lm_head == 0
    gpt2 = architecture("openai-community--gpt2")
    assert gpt2.tie_word_embeddings is True
    assert gpt2.parameters.lm_head == 0
    # token table 50257 x 768 plus the learned position table (wpe) 1024 x 768
    assert gpt2.parameters.embeddings == (50_257 + 1_024) * 768 == 39_383_808


def test_phi_2_lm_head_has_a_bias() -> None:
    # modeling_phi.py: lm_head = nn.Linear(hidden, vocab, bias=True)
    assert architecture("microsoft--phi-2").parameters.lm_head == 51_200 * 2_560 + 51_200


def test_dense_models_are_all_active() -> None:
    qwen = architecture("Qwen--Qwen2.5-7B-Instruct")
    assert qwen.num_active_parameters == qwen.num_parameters == 7_615_616_512
    assert not qwen.is_moe


def test_mixtral_activates_two_of_eight_experts() -> None:
    h, ffn, layers = 4096, 14_336, 32
    expert = 3 * h * ffn  # w1, w3 (gate_up_proj) and w2 (down_proj) of one expert
    all_experts = layers * 8 * expert
    assert all_experts == 45_097_156_608
    rest = 46_702_792_704 - all_experts  # attention, router, norms, embeddings, LM head
    mixtral = architecture("mistralai--Mixtral-8x7B-v0.1")
    assert mixtral.parameters.experts == all_experts
    assert mixtral.parameters.router == layers * 8 * h
    assert mixtral.num_active_parameters == rest + layers * 2 * expert == 12_879_925_248
    assert (mixtral.num_experts, mixtral.num_experts_per_token) == (8, 2)
    assert mixtral.moe_intermediate_size == ffn


def test_qwen3_30b_a3b_matches_its_model_card() -> None:
    # Qwen/Qwen3-30B-A3B model card: 30.5B parameters in total, 3.3B activated
    qwen = architecture("Qwen--Qwen3-30B-A3B")
    assert round(qwen.num_parameters / 1e9, 1) == 30.5
    assert 3.3e9 <= qwen.num_active_parameters < 3.4e9  # the card truncates 3.35B to 3.3B
    assert (qwen.num_experts, qwen.num_experts_per_token, qwen.moe_intermediate_size) == (
        128,
        8,
        768,
    )


def test_qwen1_5_moe_matches_its_name_and_card() -> None:
    # Qwen/Qwen1.5-MoE-A2.7B model card: 14.3B parameters in total, 2.7B activated
    qwen = architecture("Qwen--Qwen1.5-MoE-A2.7B")
    assert round(qwen.num_parameters / 1e9, 1) == 14.3
    assert round(qwen.num_active_parameters / 1e9, 1) == 2.7
    assert qwen.num_shared_experts == 1
    assert qwen.shared_expert_intermediate_size == 5632
    # 24 layers: router 60 x 2048 and shared_expert_gate 1 x 2048 each
    assert qwen.parameters.router == 24 * (60 * 2048 + 2048)


def test_deepseek_v3_matches_its_paper() -> None:
    # DeepSeek-V3 technical report: 671B total parameters, 37B activated per token (the 14B
    # multi-token-prediction module comes on top and transformers does not build it)
    deepseek = architecture("deepseek-ai--DeepSeek-V3")
    assert round(deepseek.num_parameters / 1e9) == 671
    assert 37e9 <= deepseek.num_active_parameters < 38e9
    assert deepseek.num_dense_layers == 3  # first_k_dense_replace
    assert deepseek.num_shared_experts == 1
    assert deepseek.shared_expert_intermediate_size == 2048
    # 58 MoE layers x 256 experts x 3 x 7168 x 2048; 8 of them per token
    assert deepseek.parameters.experts == 58 * 256 * 3 * 7168 * 2048
    assert deepseek.parameters.active_experts == 58 * 8 * 3 * 7168 * 2048


def test_deepseek_v2_lite_matches_its_model_card() -> None:
    # deepseek-ai/DeepSeek-V2-Lite model card: 15.7B total parameters
    assert round(architecture("deepseek-ai--DeepSeek-V2-Lite").num_parameters / 1e9, 1) == 15.7


def test_gpt_oss_20b_matches_its_model_card() -> None:
    # openai/gpt-oss-20b model card: 20.91B parameters in total, 3.61B active; OpenAI's active
    # figure leaves the embedding table out (the same rule gives 5.13B for gpt-oss-120b)
    gpt_oss = architecture("openai--gpt-oss-20b")
    assert round(gpt_oss.num_parameters / 1e9, 2) == 20.91
    active_without_embedding = gpt_oss.num_active_parameters - gpt_oss.parameters.embeddings
    assert round(active_without_embedding / 1e9, 2) == 3.61


def test_gpt_oss_counts_sinks_biases_and_router_bias() -> None:
    gpt_oss = architecture("openai--gpt-oss-20b")
    h, heads, kv, head_dim, layers, experts, ffn = 2880, 64, 8, 64, 24, 32, 2880
    q_out, kv_out = heads * head_dim, kv * head_dim
    attention = h * (q_out + 2 * kv_out) + (q_out + 2 * kv_out) + q_out * h + h + heads
    assert gpt_oss.parameters.attention == layers * attention
    # per expert: gate_up h x 2I + bias 2I, down I x h + bias h
    assert gpt_oss.parameters.experts == layers * experts * (3 * h * ffn + 2 * ffn + h)
    assert gpt_oss.parameters.router == layers * (experts * h + experts)


def test_deepseek_v3_e_score_correction_bias_is_a_buffer() -> None:
    # modeling_deepseek_v3.py registers e_score_correction_bias with nn.Buffer: not a parameter
    deepseek = architecture("deepseek-ai--DeepSeek-V3")
    assert deepseek.parameters.router == 58 * 256 * 7168


def test_gemma_3_multimodal_counts_its_text_model() -> None:
    gemma, notes = architecture_from_hf_config(config("google--gemma-3-4b-it"))
    assert gemma.model_type == "gemma3_text"
    # Gemma3TextConfig defaults fill what text_config leaves out: 8 heads, 4 kv heads, vocab
    assert (gemma.num_attention_heads, gemma.num_key_value_heads) == (8, 4)
    assert gemma.vocab_size == 262_208
    assert any("SigLIP vision tower" in note and "256 tokens" in note for note in notes)
    assert gemma.default_dtype == "bfloat16"  # the outer config's torch_dtype


def test_gemma_3_counts_its_vision_tower() -> None:
    # SiglipVisionModel of Gemma 3's vision_config (hidden 1152, 27 layers, MLP 4304, 14 px
    # patches of 896 px images: 64 x 64 = 4,096 positions; no pooling head), by hand:
    patch = 3 * 14 * 14 * 1152 + 1152  # the patch convolution and its bias: 678,528
    positions = 4096 * 1152  # 4,718,592
    layer = 4 * (1152 * 1152 + 1152) + 2 * 2 * 1152 + (1152 * 4304 + 4304) + (4304 * 1152 + 1152)
    tower = patch + positions + 27 * layer + 2 * 1152  # and the post LayerNorm
    assert tower == 416_866_032
    # Gemma3MultiModalProjector: 1152 x the text width (2560), and an RMSNorm of 1152
    projector = 1152 * 2560 + 1152
    gemma, _ = architecture_from_hf_config(config("google--gemma-3-4b-it"))
    assert gemma.parameters.vision == tower + projector
    # active per token: the text model only (the tower runs once per image)
    assert gemma.num_active_parameters == gemma.num_parameters - tower - projector
    # the same for gemma-3-27b-it (text width 5376) equals its safetensors total,
    # 27,432,406,640 (the checkpoint's header sum, catalog source)
    assert 27_009_346_304 + tower + 1152 * 5376 + 1152 == 27_432_406_640


# Published configs with options flipped, to reach every branch; the expected counts are
# transformers 5.24.0 AutoModelForCausalLM.from_config on the meta device of the changed dict
VARIANTS = [
    (
        "meta-llama--Llama-3.2-1B",
        {"attention_bias": True, "mlp_bias": True, "num_hidden_layers": 2},
        384_360_448,
    ),
    ("microsoft--phi-2", {"qk_layernorm": True, "num_hidden_layers": 2}, 419_543_680),
    (
        "openai-community--gpt2",
        {"n_inner": 1000, "tie_word_embeddings": False, "n_layer": 2},
        85_789_136,
    ),
    (
        "EleutherAI--pythia-160m",
        {"attention_bias": False, "tie_word_embeddings": True},
        123_652_608,
    ),
    (
        "bigcode--starcoder2-3b",
        {"use_bias": False, "tie_word_embeddings": False, "num_hidden_layers": 2},
        493_910_016,
    ),
    ("tiiuae--falcon-40b", {"parallel_attn": False, "num_hidden_layers": 2}, 1_891_713_024),
    (
        "tiiuae--falcon-40b",  # falcon-11B style: one LayerNorm before the parallel block
        {"num_ln_in_parallel_attn": 1, "ffn_hidden_size": 20000, "num_hidden_layers": 2},
        1_473_298_432,
    ),
    (
        "tiiuae--falcon-7b",
        {"multi_query": False, "bias": True, "num_hidden_layers": 2},
        791_128_576,
    ),
    (
        "deepseek-ai--DeepSeek-V2-Lite",
        {"attention_bias": True, "mlp_bias": True, "q_lora_rank": 768, "num_hidden_layers": 2},
        1_080_608_768,
    ),
    (
        "deepseek-ai--DeepSeek-V3",
        {
            "n_shared_experts": 0,
            "first_k_dense_replace": 1,
            "num_hidden_layers": 3,
            "n_routed_experts": 16,
            "n_group": 4,
            "topk_group": 2,
        },
        4_220_607_488,
    ),
    (
        "allenai--OLMo-2-1124-7B",
        {"num_key_value_heads": 8, "attention_bias": True, "num_hidden_layers": 2},
        1_176_553_472,
    ),
    (
        "openai--gpt-oss-20b",
        {"attention_bias": False, "num_hidden_layers": 2, "layer_types": None},
        2_804_627_712,
    ),
    ("mistralai--Mixtral-8x7B-v0.1", {"head_dim": 64, "num_hidden_layers": 2}, 3_122_745_344),
    (
        "Qwen--Qwen3-Next-80B-A3B-Instruct",
        {
            "num_hidden_layers": 4,
            "attention_bias": True,
            "mlp_only_layers": [0],
            "full_attention_interval": 2,
            "linear_num_key_heads": 8,
            "linear_conv_kernel_dim": 3,
            "num_experts": 16,
        },
        927_911_296,
    ),
    (
        "Qwen--Qwen3-Next-80B-A3B-Instruct",
        {
            "num_hidden_layers": 3,
            "layer_types": ["linear_attention", "full_attention", "full_attention"],
            "num_experts": 16,
            "decoder_sparse_step": 2,
        },
        827_016_384,
    ),
    (
        "ai21labs--AI21-Jamba-Mini-1.5",
        {
            "num_hidden_layers": 4,
            "mamba_proj_bias": True,
            "mamba_conv_bias": False,
            "mamba_dt_rank": "auto",
            "attn_layer_period": 2,
            "attn_layer_offset": 1,
            "num_experts": 4,
        },
        2_593_075_776,
    ),
    (
        "ai21labs--AI21-Jamba-Mini-1.5",
        {"num_hidden_layers": 3, "num_experts": 1, "mamba_d_state": 32, "mamba_expand": 1},
        1_223_934_912,
    ),
]


@pytest.mark.parametrize(("name", "changes", "expected"), VARIANTS)
def test_it_follows_each_option_of_the_modeling_code(
    name: str, changes: dict[str, Any], expected: int
) -> None:
    counted, _ = architecture_from_hf_config({**config(name), **changes})
    assert counted.num_parameters == expected


def test_llama_biases_by_hand() -> None:
    # Llama-3.2-1B cut to 2 layers, tied embeddings, with attention_bias (q, k, v, o) and
    # mlp_bias (gate, up, down) as in modeling_llama.py
    h, q_out, kv_out, ffn, vocab, layers = 2048, 2048, 512, 8192, 128_256, 2
    weights = h * (q_out + 2 * kv_out) + q_out * h + 3 * h * ffn + 2 * h  # + 2 RMSNorms
    biases = (q_out + 2 * kv_out + h) + (2 * ffn + h)
    by_hand = vocab * h + layers * (weights + biases) + h  # + final norm
    name, changes, meta_device = VARIANTS[0]
    counted, _ = architecture_from_hf_config({**config(name), **changes})
    assert counted.num_parameters == by_hand == meta_device
    assert counted.parameters.attention == layers * (
        h * (q_out + 2 * kv_out) + q_out * h + q_out + 2 * kv_out + h
    )
