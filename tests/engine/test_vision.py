"""Vision-language models: the tower and projector counted whole, and an image's tokens.

The configs are the published config.json values (typed here) of llava-hf/llava-1.5-7b-hf,
Qwen/Qwen2.5-VL-7B-Instruct, mistralai/Mistral-Small-3.1-24B-Instruct-2503,
Qwen/Qwen3-VL-4B-Instruct and meta-llama/Llama-3.2-11B-Vision (where it was read: at
MLLAMA_11B). Each whole-model count is what transformers 5.25.0 instantiates,
`sum(p.numel() for p in AutoModelForImageTextToText.from_config(cfg).parameters())` on the meta
device (validation/meta_count.py); the tower and projector counts are worked by hand below.
"""

from __future__ import annotations

from typing import Any

import pytest

from calculator.engine import EstimateError, calculate
from calculator.engine.architecture import architecture_from_hf_config
from calculator.engine.detailed import (
    ATTENTION_OUTPUT_COPIES,
    FLASH_LOGSUMEXP_BYTES,
    GATED_MLP_SAVED_INTERMEDIATES,
    INFERENCE_HIDDEN_COPIES,
    INFERENCE_ROTARY_COPIES,
    LAYERNORM_INPUT_COPIES,
    LAYERNORM_WEIGHT_GRADIENT_COPIES,
    NORMS_PER_LAYER,
    PLAIN_MLP_INFERENCE_INTERMEDIATES,
    PLAIN_MLP_SAVED_INTERMEDIATES,
    RMSNORM_FP32_INPUT_BYTES,
    RMSNORM_WEIGHT_GRADIENT_COPIES,
)
from calculator.engine.inputs import parse_inputs
from calculator.engine.memory import detailed_estimate

LLAVA = {
    "architectures": ["LlavaForConditionalGeneration"],
    "image_token_index": 32000,
    "model_type": "llava",
    "projector_hidden_act": "gelu",
    "text_config": {
        "_name_or_path": "lmsys/vicuna-7b-v1.5",
        "architectures": ["LlamaForCausalLM"],
        "max_position_embeddings": 4096,
        "model_type": "llama",
        "rms_norm_eps": 1e-05,
        "torch_dtype": "float16",
        "vocab_size": 32064,
    },
    "tie_word_embeddings": False,
    "torch_dtype": "float16",
    "vision_config": {
        "hidden_size": 1024,
        "image_size": 336,
        "intermediate_size": 4096,
        "model_type": "clip_vision_model",
        "num_attention_heads": 16,
        "num_hidden_layers": 24,
        "patch_size": 14,
        "projection_dim": 768,
        "vocab_size": 32000,
    },
    "vision_feature_layer": -2,
    "vision_feature_select_strategy": "default",
    "vocab_size": 32064,
}
# Qwen2.5-VL's published config.json keeps the text model's keys at the top level
QWEN2_5_VL = {
    "architectures": ["Qwen2_5_VLForConditionalGeneration"],
    "hidden_act": "silu",
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "max_position_embeddings": 128000,
    "max_window_layers": 28,
    "model_type": "qwen2_5_vl",
    "num_attention_heads": 28,
    "num_hidden_layers": 28,
    "num_key_value_heads": 4,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_sliding_window": False,
    "vision_config": {
        "depth": 32,
        "hidden_act": "silu",
        "hidden_size": 1280,
        "intermediate_size": 3420,
        "num_heads": 16,
        "in_chans": 3,
        "out_hidden_size": 3584,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "spatial_patch_size": 14,
        "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31],
        "tokens_per_second": 2,
        "temporal_patch_size": 2,
    },
    "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
    "vocab_size": 152064,
}
MISTRAL_SMALL_3_1 = {
    "architectures": ["Mistral3ForConditionalGeneration"],
    "image_token_index": 10,
    "model_type": "mistral3",
    "multimodal_projector_bias": False,
    "projector_hidden_act": "gelu",
    "spatial_merge_size": 2,
    "text_config": {
        "head_dim": 128,
        "hidden_act": "silu",
        "hidden_size": 5120,
        "intermediate_size": 32768,
        "max_position_embeddings": 131072,
        "model_type": "mistral",
        "num_attention_heads": 32,
        "num_hidden_layers": 40,
        "num_key_value_heads": 8,
        "rms_norm_eps": 1e-05,
        "rope_theta": 1000000000.0,
        "sliding_window": None,
        "vocab_size": 131072,
    },
    "torch_dtype": "bfloat16",
    "vision_config": {
        "head_dim": 64,
        "hidden_act": "silu",
        "hidden_size": 1024,
        "image_size": 1540,
        "intermediate_size": 4096,
        "model_type": "pixtral",
        "num_attention_heads": 16,
        "num_channels": 3,
        "num_hidden_layers": 24,
        "patch_size": 14,
        "rope_theta": 10000.0,
    },
    "vision_feature_layer": -1,
}
QWEN3_VL_4B = {
    "architectures": ["Qwen3VLForConditionalGeneration"],
    "image_token_id": 151655,
    "model_type": "qwen3_vl",
    "text_config": {
        "attention_bias": False,
        "dtype": "bfloat16",
        "head_dim": 128,
        "hidden_act": "silu",
        "hidden_size": 2560,
        "intermediate_size": 9728,
        "max_position_embeddings": 262144,
        "model_type": "qwen3_vl_text",
        "num_attention_heads": 32,
        "num_hidden_layers": 36,
        "num_key_value_heads": 8,
        "rms_norm_eps": 1e-06,
        "rope_scaling": {"mrope_interleaved": True, "mrope_section": [24, 20, 20]},
        "rope_theta": 5000000,
        "tie_word_embeddings": True,
        "vocab_size": 151936,
    },
    "tie_word_embeddings": True,
    "vision_config": {
        "deepstack_visual_indexes": [5, 11, 17],
        "depth": 24,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_size": 1024,
        "in_channels": 3,
        "intermediate_size": 4096,
        "model_type": "qwen3_vl",
        "num_heads": 16,
        "num_position_embeddings": 2304,
        "out_hidden_size": 2560,
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    },
}

# meta-llama/Llama-3.2-11B-Vision(-Instruct) config.json: vision_config as quoted (with its
# preprocessor_config.json: max_image_tiles 4, 560 x 560 tiles) in danbev/learning-ai
# notes/llama.cpp/llama-3-2-vision.md; text_config as spelled out by a public fine-tuning script
# of mylesgoose/Llama-3.2-11B-Vision-Instruct (MllamaForConditionalGeneration.from_pretrained
# kwargs). Neither quote names intermediate_layers_indices: MllamaVisionConfig's default
# [3, 7, 15, 23, 30] (transformers 5.25 configuration_mllama.py), which vision_output_dim
# 7680 = 1280 x (1 + 5) agrees with
MLLAMA_11B = {
    "architectures": ["MllamaForConditionalGeneration"],
    "image_token_index": 128256,
    "model_type": "mllama",
    "text_config": {
        "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38],
        "dropout": 0,
        "eos_token_id": [128001, 128008, 128009],
        "hidden_act": "silu",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "max_position_embeddings": 131072,
        "model_type": "mllama_text_model",
        "num_attention_heads": 32,
        "num_hidden_layers": 40,
        "num_key_value_heads": 8,
        "pad_token_id": 128004,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {
            "factor": 8.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "vocab_size": 128256,
    },
    "torch_dtype": "bfloat16",
    "vision_config": {
        "attention_heads": 16,
        "hidden_act": "gelu",
        "hidden_size": 1280,
        "image_size": 560,
        "intermediate_layers_indices": [3, 7, 15, 23, 30],
        "intermediate_size": 5120,
        "max_num_tiles": 4,
        "model_type": "mllama_vision_model",
        "num_channels": 3,
        "num_global_layers": 8,
        "num_hidden_layers": 32,
        "patch_size": 14,
        "supported_aspect_ratios": [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]],
        "vision_output_dim": 7680,
    },
}


def whole(config: dict[str, Any]):
    architecture, _ = architecture_from_hf_config(config)
    assert architecture.vision is not None
    return architecture


# --- parameters ----------------------------------------------------------------------------------


def test_llava_counts_its_clip_tower_and_projector() -> None:
    # CLIPVisionModel, ViT-L/14 at 336 px: 24 x 24 = 576 patches and the [CLS] position
    embeddings = 1024 + 3 * 14 * 14 * 1024 + 577 * 1024  # class, patch conv (no bias), positions
    layer = 4 * (1024 * 1024 + 1024) + (1024 * 4096 + 4096) + (4096 * 1024 + 1024) + 4 * 1024
    tower = embeddings + 24 * layer + 2 * 2 * 1024  # pre_layrnorm, post_layernorm
    assert tower == 303_507_456
    # LlavaMultiModalProjector: 1024 -> 4096 -> 4096, biases (multimodal_projector_bias true)
    projector = (1024 * 4096 + 4096) + (4096 * 4096 + 4096)
    llava = whole(LLAVA)
    assert (llava.vision.tower_parameters, llava.vision.projector_parameters) == (tower, projector)
    # the text model: LlamaConfig defaults (hidden 4096, 32 layers, MLP 11008) with vocab 32064
    # (Llama-2-7B's 6,738,415,616 and 64 more rows in the embeddings and the LM head)
    assert llava.num_parameters - tower - projector == 6_738_415_616 + 2 * 64 * 4096
    assert llava.num_parameters == 7_063_427_072  # transformers 5.25.0, meta device
    assert llava.vision.tokens_per_image == 576  # vision_feature_select_strategy default: no CLS


def test_qwen2_5_vl_counts_its_vit_and_merger() -> None:
    # Qwen2_5_VisionTransformerPretrainedModel: Conv3d over 2 frames of 14 x 14 (no bias),
    # blocks of two RMSNorms, qkv and proj with biases, a gated MLP with biases
    patch = 3 * 2 * 14 * 14 * 1280
    block = (4 * 1280 * 1280 + 4 * 1280) + (3 * 1280 * 3420 + 2 * 3420 + 1280) + 2 * 1280
    tower = patch + 32 * block
    assert tower == 631_975_680
    # Qwen2_5_VLPatchMerger: an RMSNorm of 1280, then 4 x 1280 -> 5120 -> 3584 with biases
    merger = 1280 + (5120 * 5120 + 5120) + (5120 * 3584 + 3584)
    qwen = whole(QWEN2_5_VL)
    assert (qwen.vision.tower_parameters, qwen.vision.projector_parameters) == (tower, merger)
    assert qwen.model_type == "qwen2"  # the text model's layout (q/k/v biases)
    assert qwen.num_parameters == 8_292_166_656  # transformers 5.25.0, meta device


def test_mistral_3_counts_its_pixtral_tower_and_patch_merger() -> None:
    # PixtralVisionModel: patch conv (no bias), ln_pre, 24 layers of two RMSNorms, q/k/v/o and
    # a gated MLP, none with biases
    tower = 3 * 14 * 14 * 1024 + 1024 + 24 * (4 * 1024 * 1024 + 3 * 1024 * 4096 + 2 * 1024)
    assert tower == 403_305_472
    # Mistral3MultiModalProjector: RMSNorm(1024), merging_layer 4 x 1024 -> 1024, then
    # 1024 -> 5120 -> 5120 (multimodal_projector_bias false)
    projector = 1024 + 4 * 1024 * 1024 + 1024 * 5120 + 5120 * 5120
    mistral = whole(MISTRAL_SMALL_3_1)
    assert mistral.vision.projector_parameters == projector
    assert mistral.vision.tower_parameters == tower
    # Mistral3Config's tie_word_embeddings defaults to true and this config.json names none:
    # transformers 5.25 ties the LM head, so the 131072 x 5120 head is counted once
    assert mistral.tie_word_embeddings
    assert mistral.num_parameters == 23_340_272_640  # transformers 5.25.0, meta device


def test_qwen3_vl_counts_its_position_table_and_deepstack_mergers() -> None:
    # Qwen3VLVisionModel: Conv3d with bias, a 2304-position table, LayerNorm blocks with
    # biased qkv, proj, linear_fc1 and linear_fc2
    embeddings = 3 * 2 * 16 * 16 * 1024 + 1024 + 2304 * 1024
    block = (4 * 1024 * 1024 + 4 * 1024) + (2 * 1024 * 4096 + 4096 + 1024) + 2 * 2 * 1024
    tower = embeddings + 24 * block
    assert tower == 306_242_560
    # the merger (LayerNorm of 1024, 4096 -> 4096 -> 2560) and three deepstack mergers, each
    # with a LayerNorm of the 4096-wide shuffled patches
    mlp = (4096 * 4096 + 4096) + (4096 * 2560 + 2560)
    projector = (2 * 1024 + mlp) + 3 * (2 * 4096 + mlp)
    assert projector == 109_105_152
    qwen = whole(QWEN3_VL_4B)
    assert (qwen.vision.tower_parameters, qwen.vision.projector_parameters) == (tower, projector)
    assert qwen.model_type == "qwen3" and qwen.tie_word_embeddings
    assert qwen.num_parameters == 4_437_815_808  # transformers 5.25.0, meta device


# MllamaVisionModel, 560 px tiles of 14 px patches: 40 x 40 = 1600 patches and [CLS] per tile;
# nn.Embedding rows for the 8 supported aspect ratios and id 0 (padding)
MLLAMA_LAYER = (
    4 * 1280 * 1280  # q/k/v/o_proj, no biases
    + (1280 * 5120 + 5120)  # fc1
    + (5120 * 1280 + 1280)  # fc2
    + 2 * 2 * 1280  # input_layernorm, post_attention_layernorm
)


def mllama_tower(positions: int) -> int:
    """MllamaVisionModel by hand, `positions` patches and [CLS] per tile."""
    return (
        3 * 14 * 14 * 1280  # patch_embedding Conv2d, no bias
        + 1280  # class_embedding
        + (1 + positions * 1280 + 9 * 4 * positions * 1280)  # gated_positional_embedding
        + 2 * (9 * 4 * 1280 + 1)  # pre_ and post_tile_positional_embedding, each gated
        + 2 * 2 * 1280  # layernorm_pre, layernorm_post
        + 32 * MLLAMA_LAYER  # transformer
        + 8 * (MLLAMA_LAYER + 2)  # global_transformer: gate_attn, gate_ffn per layer
    )


def test_mllama_counts_its_tiled_tower_projector_and_cross_attention_layers() -> None:
    tower = mllama_tower(1601)
    assert tower == 863_567_379  # model.vision_model, transformers 5.25.0, meta device
    projector = 7680 * 4096 + 4096  # multi_modal_projector Linear(7680 -> 4096), bias
    # MllamaTextModel: 40 layers of Llama's shape, 8 of them MllamaCrossAttentionDecoderLayer
    # with q_norm and k_norm (RMSNorm(128) each) and two tanh gates; vocab_size + 8 embedding
    # rows; the LM head untied (128256 rows)
    llama_layer = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096
    text = 40 * llama_layer + 8 * (2 * 128 + 2) + (128256 + 8) * 4096 + 4096
    assert text == 9_249_855_504  # model.language_model, meta device
    head = 128256 * 4096
    mllama = whole(MLLAMA_11B)
    assert (mllama.vision.tower_parameters, mllama.vision.projector_parameters) == (
        tower,
        projector,
    )
    assert not mllama.tie_word_embeddings
    assert mllama.num_parameters == tower + projector + text + head
    assert mllama.num_parameters == 10_670_220_835  # transformers 5.25.0, meta device
    assert mllama.num_active_parameters == text + head
    # the cross-attention layers keep no KV cache of the text
    assert (mllama.num_layers, mllama.num_attention_layers) == (40, 32)


def test_mllama_config_defaults_are_mllamas() -> None:
    # MllamaConfig() (text and vision configs empty): MllamaTextConfig's 40 layers, 8 KV heads
    # and 14336-wide MLP, MllamaVisionConfig's 448 px tiles (32 x 32 patches and [CLS])
    mllama = whole({"model_type": "mllama", "text_config": {}, "vision_config": {}})
    assert mllama.vision.tower_parameters == mllama_tower(1025)
    assert mllama.num_key_value_heads == 8
    assert mllama.num_parameters == 10_642_941_475  # transformers 5.25.0, meta device


def test_mllama_refuses_an_output_width_its_indices_do_not_make() -> None:
    vision = {**MLLAMA_11B["vision_config"], "intermediate_layers_indices": [3, 7]}
    with pytest.raises(EstimateError) as error:
        architecture_from_hf_config({**MLLAMA_11B, "vision_config": vision})
    assert error.value.field == "model.hf_config.vision_config.vision_output_dim"


def test_the_tower_is_not_active_per_token() -> None:
    qwen = whole(QWEN2_5_VL)
    assert qwen.num_active_parameters == qwen.num_parameters - qwen.vision.parameters


def test_a_tower_of_another_kind_is_refused() -> None:
    config = {**MISTRAL_SMALL_3_1, "vision_config": {"model_type": "clip_vision_model"}}
    with pytest.raises(EstimateError) as error:
        architecture_from_hf_config(config)
    assert error.value.field == "model.hf_config.vision_config.model_type"


# --- tokens per image ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "size", "tokens", "patches"),
    [
        # smart_resize, factor 28: 1024 -> 37 x 28 = 1036, 768 -> 27 x 28 = 756; 74 x 54 patches
        # of 14 px, 2 x 2 merged into a token
        (QWEN2_5_VL, (1024, 768), 74 * 54 // 4, 74 * 54),
        # 4000 x 3000: 143 x 28 = 4004 and 107 x 28 = 2996, within max_pixels 12,845,056
        (QWEN2_5_VL, (4000, 3000), 143 * 107, 286 * 214),
        # Qwen3-VL, factor 32: 1024 x 768 stays; 64 x 48 patches of 16 px
        (QWEN3_VL_4B, (1024, 768), 64 * 48 // 4, 64 * 48),
        # Pixtral, 28 px cells (14 px patches, merge 2): 37 rows of 28 tokens, each row ending in
        # [IMG_BREAK] ([IMG_END] for the last)
        (MISTRAL_SMALL_3_1, (1024, 768), 37 * (28 + 1), 37 * 28 * 4),
        # 3080 x 2000 is halved to fit the 1540 px longest edge: 1540 x 1000, 55 x 36 cells
        (MISTRAL_SMALL_3_1, (3080, 2000), 55 * (36 + 1), 55 * 36 * 4),
        # LLaVA resizes every image to 336 px: 576 tokens, 577 positions in the tower
        (LLAVA, (1024, 768), 576, 577),
    ],
)
def test_an_image_takes_the_tokens_its_processor_makes(config, size, tokens, patches) -> None:
    assert whole(config).vision.image_tokens(*size) == (tokens, patches)


# --- the estimate --------------------------------------------------------------------------------


def estimate(config: dict[str, Any], **fields: Any):
    inputs, architecture, _ = parse_inputs({"model": {"hf_config": config}, **fields})
    return detailed_estimate(inputs, architecture)


def test_images_default_to_none_and_change_nothing() -> None:
    text = estimate(QWEN2_5_VL, sequence_length=3000)
    assert (
        text.breakdown == estimate(QWEN2_5_VL, sequence_length=3000, images_per_request=0).breakdown
    )
    assert "No images (images_per_request 0): text tokens only" in text.notes


def test_image_tokens_go_into_the_kv_cache() -> None:
    # one 1024 x 768 image: 999 tokens beside 2,048 of text. KV cache per token: 28 layers x
    # (k + v) x 4 KV heads x 128 x 2 bytes = 57,344 bytes
    result = estimate(
        QWEN2_5_VL, sequence_length=2048, images_per_request=1, image_height=1024, image_width=768
    )
    assert result.breakdown.kv_cache == (2048 + 999) * 28 * 2 * 4 * 128 * 2
    assert any("999 tokens beside the 2,048 of text" in note for note in result.notes)


def test_mllama_caches_the_vision_states_in_its_cross_attention_layers() -> None:
    # one image: one <|image|> token beside 2,048 of text in the 32 self-attention layers'
    # cache; each of the 8 cross-attention layers caches K and V of 4 tiles x 1601 vision
    # states (MllamaForConditionalGeneration._prepare_static_cache), 8 KV heads x 128, 2 bytes
    text = (2048 + 1) * 32 * 2 * 8 * 128 * 2
    cross = 8 * 4 * 1601 * 2 * 8 * 128 * 2
    result = estimate(MLLAMA_11B, sequence_length=2048, images_per_request=1)
    assert result.breakdown.kv_cache == text + cross
    # every image is padded to max_num_tiles tiles: its size changes nothing
    sized = estimate(
        MLLAMA_11B, sequence_length=2048, images_per_request=1, image_height=300, image_width=900
    )
    assert sized.breakdown == result.breakdown
    assert any("caches K and V of 6,404 vision states per image" in n for n in result.notes)


def test_mllama_without_images_skips_its_cross_attention_layers() -> None:
    # MllamaTextModel.forward skips a cross-attention layer with no vision states: no cache
    result = estimate(MLLAMA_11B, sequence_length=2048)
    assert result.breakdown.kv_cache == 2048 * 32 * 2 * 8 * 128 * 2
    assert (
        "Without images, Llama 3.2 Vision's text model skips its 8 cross-attention layers "
        "(no cache)" in result.notes
    )


def test_mllama_tower_keeps_its_encoders_outputs() -> None:
    # 4 tiles of 1601 positions, each padded to 1608 (a multiple of 8): the local and global
    # encoders run over 6,432 positions per image. One layer's peak (LayerNorms, q/k/v/o
    # without rotary but counted by the shared formula, gelu fused); MllamaVisionEncoder keeps
    # every layer's output until the tower returns: during the last global layer, 32 local
    # outputs, the global encoder's input and 7 global outputs; the patch convolution's output
    # (4 x 1600 positions); _prepare_aspect_ratio_attention_mask's 6,432 x 6,432 mask per image
    tokens = 2 * 6432
    hidden = tokens * 1280 * INFERENCE_HIDDEN_COPIES * 2
    attention = hidden + tokens * (3 * 1280 + 2 * 1280 * INFERENCE_ROTARY_COPIES + 1280) * 2
    mlp = hidden + tokens * 5120 * PLAIN_MLP_INFERENCE_INTERMEDIATES * 2
    kept = (32 + 1 + 7) * tokens * 1280 * 2 + 2 * 4 * 1600 * 1280 * 2
    mask = 2 * 6432 * 6432 * 2
    tower = max(attention, mlp) + kept + mask
    with_images = estimate(MLLAMA_11B, sequence_length=16, images_per_request=2)
    text_only = estimate(MLLAMA_11B, sequence_length=16 + 2)
    assert with_images.breakdown.activations == max(text_only.breakdown.activations, tower)


def test_the_mllama_tower_peak_is_what_was_measured() -> None:
    # python -m validation.mllama_tower_peak (transformers 5.25, bfloat16, SDPA on CPU): the
    # Mllama ViT at 224 px tiles (4 x 257 positions, each tile padded to 264: 1,056), 2 local
    # and 1 global layers, peaks at 41,199,624 live bytes, in the global layer's gelu: less the
    # pixel input (4 x 3 x 224 x 224 x 2 bytes) and the 8-byte aspect_ratio_ids view, the
    # MLP's working set (its input and norm, fc1's output and gelu's), the 2 local outputs,
    # the global encoder's input, patch_embeds (4 x 256 positions) and the 1,056^2 mask
    vision = {
        **MLLAMA_11B["vision_config"],
        "image_size": 224,
        "num_hidden_layers": 2,
        "num_global_layers": 1,
        "intermediate_layers_indices": [0],
        "vision_output_dim": 2 * 1280,
    }
    tokens = 1056
    mlp = tokens * 1280 * INFERENCE_HIDDEN_COPIES * 2
    mlp += tokens * 5120 * PLAIN_MLP_INFERENCE_INTERMEDIATES * 2
    kept = 3 * tokens * 1280 * 2 + 4 * 256 * 1280 * 2
    tower = mlp + kept + tokens * tokens * 2
    assert tower == 41_199_624 - 4 * 3 * 224 * 224 * 2 - 8
    config = {**MLLAMA_11B, "vision_config": vision}
    result = estimate(config, sequence_length=16, images_per_request=1)
    assert result.breakdown.activations == tower


def test_a_trained_mllama_tower_saves_every_layer_even_when_checkpointing() -> None:
    # full fine-tuning trains the Mllama ViT: per position, each of its 40 layers saves (as
    # CLIP's, with a fused gelu) two LayerNorm inputs and outputs, q, k, v and the attention
    # output, fc1's output and the product, and the float32 logsumexp per head; each of the 8
    # global layers also keeps its attention and MLP outputs for the tanh gates' gradients;
    # the tiles' 6,432 x 6,432 attention mask (2 bytes) is alive throughout. Measured (python
    # -m validation.vision_saved_tensors, 224 px tiles, 1,056 positions): 43,329,792 bytes a
    # local layer and 48,736,516 a global one, 8 a position (and the gates' 4 bytes) above
    # these terms
    at_224 = (
        1056
        * 1280
        * NORMS_PER_LAYER
        * (LAYERNORM_INPUT_COPIES + LAYERNORM_WEIGHT_GRADIENT_COPIES)
        * 2
    )
    at_224 += 1056 * 3 * 1280 * 2 + 1056 * 1280 * ATTENTION_OUTPUT_COPIES * 2
    at_224 += 16 * 1056 * FLASH_LOGSUMEXP_BYTES + 1056 * 5120 * PLAIN_MLP_SAVED_INTERMEDIATES * 2
    assert at_224 == 43_329_792 - 1056 * 8
    assert at_224 + 1056 * 2 * 1280 * 2 == 48_736_516 - 1056 * 8 - 4
    tokens = 6432
    norms = (
        tokens
        * 1280
        * NORMS_PER_LAYER
        * (LAYERNORM_INPUT_COPIES + LAYERNORM_WEIGHT_GRADIENT_COPIES)
        * 2
    )
    attention = tokens * 3 * 1280 * 2 + tokens * 1280 * ATTENTION_OUTPUT_COPIES * 2
    attention += 16 * tokens * FLASH_LOGSUMEXP_BYTES
    mlp = tokens * 5120 * PLAIN_MLP_SAVED_INTERMEDIATES * 2
    gates = 8 * tokens * 2 * 1280 * 2
    tower = 40 * (norms + attention + mlp) + gates + tokens * tokens * 2
    fields = {"mode": "training", "mixed_precision": True}
    with_images = estimate(MLLAMA_11B, sequence_length=512, images_per_request=1, **fields)
    text_only = estimate(MLLAMA_11B, sequence_length=512 + 1, **fields)
    assert with_images.breakdown.activation_peak == text_only.breakdown.activation_peak + tower
    # MllamaVisionEncoderLayer is a plain nn.Module: gradient checkpointing leaves it whole
    fields["gradient_checkpointing"] = True
    with_images = estimate(MLLAMA_11B, sequence_length=512, images_per_request=1, **fields)
    text_only = estimate(MLLAMA_11B, sequence_length=512 + 1, **fields)
    assert with_images.breakdown.activation_peak == text_only.breakdown.activation_peak + tower


def test_inference_counts_the_larger_of_the_tower_and_the_language_model() -> None:
    # LLaVA, 4 images of 577 positions: the CLIP layer's peak during the encoding (flash; no
    # rotary in CLIP, but the shared formula counts q and k copies), 2-byte activations
    tokens = 4 * 577
    hidden = tokens * 1024 * INFERENCE_HIDDEN_COPIES * 2
    attention = hidden + tokens * (3 * 1024 + 2 * 1024 * INFERENCE_ROTARY_COPIES + 1024) * 2
    # quick_gelu's sigmoid output lives beside fc1's output and the product
    mlp = hidden + tokens * 4096 * (PLAIN_MLP_INFERENCE_INTERMEDIATES + 1) * 2
    tower = max(attention, mlp)
    with_images = estimate(LLAVA, sequence_length=16, images_per_request=4)
    text_only = estimate(LLAVA, sequence_length=16 + 4 * 576)
    assert with_images.breakdown.kv_cache == text_only.breakdown.kv_cache
    assert with_images.breakdown.activations == max(text_only.breakdown.activations, tower)


def test_a_trained_tower_keeps_its_layers_activations_for_backward() -> None:
    # full fine-tuning trains the CLIP tower: every layer saves, per position, two LayerNorm
    # inputs and outputs, q, k, v and the attention output, fc1's output, quick_gelu's sigmoid
    # output and the product (2 bytes each), and flash's float32 logsumexp per head. Measured
    # with saved_tensors_hooks over one ViT-L/14-336 layer (transformers 5.25, bfloat16, SDPA
    # on CPU, 577 positions): 23,675,464 bytes, 4,616 bytes (8 a position) above this count

    tokens = 577  # one image per sample
    norms = (
        tokens
        * 1024
        * NORMS_PER_LAYER
        * (LAYERNORM_INPUT_COPIES + LAYERNORM_WEIGHT_GRADIENT_COPIES)
        * 2
    )
    attention = tokens * 3 * 1024 * 2 + tokens * 1024 * ATTENTION_OUTPUT_COPIES * 2
    attention += 16 * tokens * FLASH_LOGSUMEXP_BYTES
    mlp = tokens * 4096 * (PLAIN_MLP_SAVED_INTERMEDIATES + 1) * 2
    assert norms + attention + mlp == 23_675_464 - 577 * 8
    tower = 24 * (norms + attention + mlp)
    fields = {"mode": "training", "mixed_precision": True}
    with_images = estimate(LLAVA, sequence_length=512, images_per_request=1, **fields)
    text_only = estimate(LLAVA, sequence_length=512 + 576, **fields)
    assert with_images.breakdown.activation_peak == text_only.breakdown.activation_peak + tower
    assert any("saved for backward (the tower is trained)" in n for n in with_images.notes)


def test_a_trained_pixtral_tower_saves_what_autograd_keeps() -> None:
    # one 336 x 336 image: 12 x 12 cells of 28 px, 12 rows of 12 [IMG] + [IMG_BREAK]: 156
    # tokens; the tower sees 24 x 24 = 576 patches. A layer saves, per patch, two RMSNorms'
    # float32 inputs and their two 2-byte copies, q, k, v, the attention output, the gated
    # MLP's four intermediates, and flash's logsumexp. Measured (python -m
    # validation.vision_saved_tensors, transformers 5.25, bfloat16, SDPA on CPU): 33,071,616
    # bytes a layer, 8 a position above this count
    tokens = 576
    norms = (
        tokens
        * 1024
        * NORMS_PER_LAYER
        * (RMSNORM_FP32_INPUT_BYTES + RMSNORM_WEIGHT_GRADIENT_COPIES * 2)
    )
    attention = tokens * 3 * 1024 * 2 + tokens * 1024 * ATTENTION_OUTPUT_COPIES * 2
    attention += 16 * tokens * FLASH_LOGSUMEXP_BYTES
    mlp = tokens * 4096 * GATED_MLP_SAVED_INTERMEDIATES * 2
    assert norms + attention + mlp == 33_071_616 - 576 * 8
    image = {"images_per_request": 1, "image_height": 336, "image_width": 336}
    fields = {"mode": "training", "mixed_precision": True}
    with_images = estimate(MISTRAL_SMALL_3_1, sequence_length=256, **image, **fields)
    text_only = estimate(MISTRAL_SMALL_3_1, sequence_length=256 + 156, **fields)
    peak = text_only.breakdown.activation_peak + 24 * (norms + attention + mlp)
    assert with_images.breakdown.activation_peak == peak


def test_a_trained_qwen_tower_keeps_its_fused_qkv_output() -> None:
    # one 336 x 336 image: smart_resize keeps 336 (12 x 28), 24 x 24 = 576 patches, 144
    # tokens. Beside Pixtral's terms, v is a view of the fused qkv output, so its q and k
    # thirds stay saved too. Measured (python -m validation.vision_saved_tensors, SDPA on
    # CPU): 37,919,232 bytes a layer, 2,568 a position above this count: the SDPA path's
    # concatenated per-image output (1280 x 2 B; FlashAttention's varlen path has none) and
    # the RMSNorms' float32 rstd
    tokens = 576
    norms = (
        tokens
        * 1280
        * NORMS_PER_LAYER
        * (RMSNORM_FP32_INPUT_BYTES + RMSNORM_WEIGHT_GRADIENT_COPIES * 2)
    )
    attention = tokens * 3 * 1280 * 2 + tokens * 1280 * ATTENTION_OUTPUT_COPIES * 2
    attention += 16 * tokens * FLASH_LOGSUMEXP_BYTES
    fused = tokens * 2 * 1280 * 2
    mlp = tokens * 3420 * GATED_MLP_SAVED_INTERMEDIATES * 2
    assert norms + attention + fused + mlp == 37_919_232 - 576 * (1280 * 2 + 8)
    image = {"images_per_request": 1, "image_height": 336, "image_width": 336}
    fields = {"mode": "training", "mixed_precision": True}
    with_images = estimate(QWEN2_5_VL, sequence_length=256, **image, **fields)
    text_only = estimate(QWEN2_5_VL, sequence_length=256 + 144, **fields)
    peak = text_only.breakdown.activation_peak + 32 * (norms + attention + fused + mlp)
    assert with_images.breakdown.activation_peak == peak


def test_llavas_layers_past_its_feature_layer_get_no_gradient() -> None:
    # LlavaModel.get_image_features reads hidden_states[-2] (modeling_llava.py, transformers
    # 5.25): CLIP's 24th layer and its post_layernorm (applied to the pooled [CLS] only) are
    # outside the loss's graph, so p.grad stays None and fused AdamW keeps no state for them.
    # Measured on the validation case llava-train-b2-s128-img1-adamw-bf16-sdpa (3 layers of
    # 768): 120,944,640 gradient bytes, 2 x (67,561,728 - 7,087,872 - 1,536) bfloat16 values.
    layer = 4 * (1024 * 1024 + 1024) + (1024 * 4096 + 4096) + (4096 * 1024 + 1024) + 4 * 1024
    ungraded = layer + 2 * 1024
    assert ungraded == 12_598_272
    total = 7_063_427_072
    assert whole(LLAVA).vision.ungraded_parameters == ungraded
    fields = {"mode": "training", "weight_dtype": "bfloat16", "images_per_request": 1}
    result = estimate(LLAVA, sequence_length=512, **fields)
    # bfloat16 gradients; AdamW's exp_avg and exp_avg_sq in the parameters' dtype
    assert result.breakdown.gradients == 2 * (total - ungraded)
    assert result.breakdown.optimizer_states == 2 * 2 * (total - ungraded)
    assert result.trainable_parameters == total  # every parameter still requires grad
    # the last layer's features (-1): only the post_layernorm is left out
    last = estimate(LLAVA | {"vision_feature_layer": -1}, sequence_length=512, **fields)
    assert last.breakdown.gradients == 2 * (total - 2 * 1024)


def test_a_feature_layer_outside_the_tower_is_refused() -> None:
    with pytest.raises(EstimateError) as error:
        whole(LLAVA | {"vision_feature_layer": -26})
    assert error.value.field == "model.hf_config.vision_feature_layer"


def test_lora_freezes_the_tower() -> None:
    fields = {"mode": "training", "finetuning": "lora"}
    with_images = estimate(LLAVA, sequence_length=512, images_per_request=1, **fields)
    text_only = estimate(LLAVA, sequence_length=512 + 576, **fields)
    # the frozen tower's one-layer peak is far below the language model's saved activations
    assert with_images.breakdown == text_only.breakdown
    assert any("(the tower is frozen)" in note for note in with_images.notes)


def test_a_fixed_size_model_says_the_image_size_changes_nothing() -> None:
    sized = estimate(LLAVA, images_per_request=1, image_height=1024, image_width=768)
    assert sized.breakdown == estimate(LLAVA, images_per_request=1).breakdown
    assert (
        "The processor resizes every image to 336 px: image_height and image_width do not "
        "change its 576 tokens" in sized.notes
    )


def test_image_tokens_count_towards_the_trained_context() -> None:
    # max_position_embeddings 128,000: 127,000 tokens of text and two images of 999 tokens
    payload = {
        "model": {"hf_config": QWEN2_5_VL},
        "sequence_length": 127_000,
        "images_per_request": 2,
        "image_height": 1024,
        "image_width": 768,
    }
    (warning,) = [w for w in calculate(payload)["warnings"] if w["field"] == "sequence_length"]
    assert warning["message"].startswith(
        "128,998 tokens (with 1,998 image tokens) is beyond the 128,000 positions"
    )
    text_only = {**payload, "images_per_request": 0}
    assert not [w for w in calculate(text_only)["warnings"] if w["field"] == "sequence_length"]


def test_the_notes_name_the_towers_share_of_the_weights() -> None:
    result = estimate(QWEN2_5_VL)
    # 676,550,144 parameters in bfloat16: 1,353,100,288 bytes, 1.26 GiB
    assert (
        "Vision tower (Qwen2.5-VL ViT) and projector: 676,550,144 parameters, 1.26 GiB of the "
        "whole model's weights" in result.notes
    )


# --- refusals ------------------------------------------------------------------------------------

LLAMA = {
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "vocab_size": 100,
}


@pytest.mark.parametrize(
    ("config", "fields", "field"),
    [
        (LLAMA, {"images_per_request": 1}, "images_per_request"),
        (QWEN2_5_VL, {"images_per_request": 1}, "image_height"),
        (QWEN2_5_VL, {"images_per_request": 1, "image_height": 512}, "image_width"),
        (
            QWEN2_5_VL,
            {"images_per_request": 1, "image_height": 1, "image_width": 201},
            "image_width",
        ),
        (LLAVA, {"images_per_request": 1, "method": "standard"}, "images_per_request"),
        (LLAVA, {"images_per_request": -1}, "images_per_request"),
        (LLAVA, {"images_per_request": 1, "image_height": 0, "image_width": 10}, "image_height"),
    ],
)
def test_it_refuses_images_it_cannot_size(config, fields, field) -> None:
    with pytest.raises(EstimateError) as error:
        calculate({"model": {"hf_config": config}, **fields})
    assert error.value.field == field
