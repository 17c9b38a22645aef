"""Vision-language models: the vision tower and projector beside the text model, and the tokens
an image takes in the language model's sequence.

A multimodal config.json (`model_type` in `VISION_MODELS`) holds a `text_config` (read by the
text family's reader) and a `vision_config`. The tower's parameters are counted from a row of
`TOWERS` (CLIP, SigLIP, Pixtral, the Qwen ViTs differ in names, norms, biases, embeddings),
the projector's by its shape (`projector_parameters`, named by the model's row of `MODELS`);
both equal what transformers 5.25 instantiates
(`AutoModelForImageTextToText.from_config` on the meta device, validation/meta_count.py).
Pure Python: nothing here imports Django.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from calculator.engine.errors import EstimateError

if TYPE_CHECKING:
    from calculator.engine.families.common import Architecture
    from calculator.engine.inputs import EstimateInputs

VISION_PREFIX = "model.hf_config.vision_config"
_LIMIT = 1_000_000  # largest width, layer count or image edge a vision_config may give


@dataclass(frozen=True)
class TowerRow:
    """How one kind of vision tower is built (transformers models/<kind>/modeling_<kind>.py)."""

    label: str
    layers_key: str
    heads_key: str
    channels_key: str
    # the vision config class's defaults for the keys a vision_config leaves out
    defaults: Mapping[str, int]
    layer_norm: bool  # nn.LayerNorm (weight, bias); else RMSNorm (weight)
    attention_bias: bool  # q/k/v/out projections (or the fused qkv) with biases
    gated_mlp: bool  # gate, up and down projections; else fc1 and fc2
    mlp_bias: bool
    patch_bias: bool  # the patch convolution's bias
    temporal_patch: bool  # Conv3d over temporal_patch_size frames (Qwen)
    class_embedding: bool  # a learned [CLS] vector, one more position (CLIP)
    positions: str  # "per_patch": one learned position per patch; "table": a fixed table; ""
    pre_norm: bool  # a norm after the patch embedding (CLIP pre_layrnorm, Pixtral ln_pre)
    post_norm: bool  # a final norm (CLIP and SigLIP post_layernorm)
    hidden_act: str  # the config class's default activation
    # one qkv projection whose output q, k and v are views of: the attention saves v, which
    # keeps the whole 3 x hidden output alive for backward (Qwen's towers)
    fused_qkv: bool = False
    # its layers are GradientCheckpointingLayer, recomputed under gradient checkpointing
    # (MllamaVisionEncoderLayer is a plain nn.Module: never checkpointed)
    checkpointed: bool = True


TOWERS: dict[str, TowerRow] = {
    # CLIPVisionModel (modeling_clip.py): class_embedding, patch Conv2d without bias, positions
    # for the patches and [CLS], pre_layrnorm, layers of k/v/q/out_proj with biases, fc1/fc2,
    # post_layernorm; defaults of CLIPVisionConfig
    "clip_vision_model": TowerRow(
        "CLIP",
        "num_hidden_layers",
        "num_attention_heads",
        "num_channels",
        {
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "num_channels": 3,
            "image_size": 224,
            "patch_size": 32,
        },
        layer_norm=True,
        attention_bias=True,
        gated_mlp=False,
        mlp_bias=True,
        patch_bias=False,
        temporal_patch=False,
        class_embedding=True,
        positions="per_patch",
        pre_norm=True,
        post_norm=True,
        hidden_act="quick_gelu",
    ),
    # SiglipVisionModel (modeling_siglip.py): patch Conv2d with bias, one position per patch,
    # CLIP's layers, post_layernorm, and the attention pooling head unless vision_use_head is
    # false; defaults of SiglipVisionConfig
    "siglip_vision_model": TowerRow(
        "SigLIP",
        "num_hidden_layers",
        "num_attention_heads",
        "num_channels",
        {
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "num_channels": 3,
            "image_size": 224,
            "patch_size": 16,
        },
        layer_norm=True,
        attention_bias=True,
        gated_mlp=False,
        mlp_bias=True,
        patch_bias=True,
        temporal_patch=False,
        class_embedding=False,
        positions="per_patch",
        pre_norm=False,
        post_norm=True,
        hidden_act="gelu_pytorch_tanh",
    ),
    # PixtralVisionModel (modeling_pixtral.py): patch Conv2d without bias, ln_pre RMSNorm, 2-D
    # rotary positions (no parameters), layers of RMSNorms, q/k/v/o without biases and a gated
    # MLP without biases; defaults of PixtralVisionConfig
    "pixtral": TowerRow(
        "Pixtral",
        "num_hidden_layers",
        "num_attention_heads",
        "num_channels",
        {
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "num_channels": 3,
            "image_size": 1024,
            "patch_size": 16,
        },
        layer_norm=False,
        attention_bias=False,
        gated_mlp=True,
        mlp_bias=False,
        patch_bias=False,
        temporal_patch=False,
        class_embedding=False,
        positions="",
        pre_norm=True,
        post_norm=False,
        hidden_act="gelu",
    ),
    # Qwen2_5_VisionTransformerPretrainedModel (modeling_qwen2_5_vl.py): patch Conv3d without
    # bias, rotary positions, blocks of RMSNorms, a fused qkv with bias, proj with bias and a
    # gated MLP with biases; defaults of Qwen2_5_VLVisionConfig
    "qwen2_5_vl": TowerRow(
        "Qwen2.5-VL ViT",
        "depth",
        "num_heads",
        "in_channels",
        {
            "hidden_size": 3584,
            "intermediate_size": 3420,
            "depth": 32,
            "num_heads": 16,
            "in_channels": 3,
            "image_size": 0,
            "patch_size": 14,
        },
        layer_norm=False,
        attention_bias=True,
        gated_mlp=True,
        mlp_bias=True,
        patch_bias=False,
        temporal_patch=True,
        class_embedding=False,
        positions="",
        pre_norm=False,
        post_norm=False,
        hidden_act="silu",
        fused_qkv=True,
    ),
    # Qwen3VLVisionModel (modeling_qwen3_vl.py): patch Conv3d with bias, a learned table of
    # num_position_embeddings positions (interpolated), blocks of LayerNorms, fused qkv and proj
    # with biases, linear_fc1/fc2 with biases; defaults of Qwen3VLVisionConfig
    "qwen3_vl": TowerRow(
        "Qwen3-VL ViT",
        "depth",
        "num_heads",
        "in_channels",
        {
            "hidden_size": 1152,
            "intermediate_size": 4304,
            "depth": 27,
            "num_heads": 16,
            "in_channels": 3,
            "image_size": 0,
            "patch_size": 16,
            "num_position_embeddings": 2304,
        },
        layer_norm=True,
        attention_bias=True,
        gated_mlp=False,
        mlp_bias=True,
        patch_bias=True,
        temporal_patch=True,
        class_embedding=False,
        positions="table",
        pre_norm=False,
        post_norm=False,
        hidden_act="gelu_pytorch_tanh",
        fused_qkv=True,
    ),
    # MllamaVisionModel (modeling_mllama.py): patch Conv2d without bias, class_embedding, a
    # gated positional embedding (a position per patch and [CLS], and a tile table per aspect
    # ratio), gated pre/post tile embeddings, layernorm_pre/post, a local transformer of
    # q/k/v/o without biases and fc1/fc2 with biases, and a global one of gated layers (code:
    # _mllama_extras); defaults of MllamaVisionConfig
    "mllama_vision_model": TowerRow(
        "Mllama ViT",
        "num_hidden_layers",
        "attention_heads",
        "num_channels",
        {
            "hidden_size": 1280,
            "intermediate_size": 5120,
            "num_hidden_layers": 32,
            "attention_heads": 16,
            "num_channels": 3,
            "image_size": 448,
            "patch_size": 14,
            "num_global_layers": 8,
            "max_num_tiles": 4,
            "vision_output_dim": 7680,
        },
        layer_norm=True,
        attention_bias=False,
        gated_mlp=False,
        mlp_bias=True,
        patch_bias=False,
        temporal_patch=False,
        class_embedding=True,
        positions="per_patch",
        pre_norm=True,
        post_norm=True,
        hidden_act="gelu",
        checkpointed=False,
    ),
}


@dataclass(frozen=True)
class ModelRow:
    """A multimodal model_type: its default tower and text family, its projector, and how an
    image becomes tokens."""

    label: str
    default_tower: str  # the vision_config's model_type when it names none
    text_type: str  # the text reader when text_config names no model_type
    # the projector's shape (projector_parameters): gemma3, llava, mistral3, qwen_merger,
    # qwen3_merger
    projector: str
    # "fixed": the image is resized to vision_config.image_size; "pixtral": resized to fit the
    # longest edge, rows of tokens ending in [IMG_BREAK]; "qwen": Qwen2-VL's smart_resize;
    # "cross": one <|image|> token in the text, the tiles' vision states attended to by the
    # cross-attention layers (Llama 3.2 Vision)
    tokens: str
    # the outer config class's tie_word_embeddings default (transformers 5.25 ties the LM head
    # by the outer config's flag: modeling_utils.py get_expanded_tied_weights_keys)
    tied_default: bool = False
    # the processor's pixel bounds (Qwen's smart_resize)
    min_pixels: int = 0
    max_pixels: int = 0


MODELS: dict[str, ModelRow] = {
    # Gemma3ForConditionalGeneration: SigLIP, Gemma3MultiModalProjector, mm_tokens_per_image
    "gemma3": ModelRow(
        "Gemma 3", "siglip_vision_model", "gemma3_text", "gemma3", "fixed", tied_default=True
    ),
    # LlavaForConditionalGeneration: CLIP (LlavaConfig's default) or Pixtral (Pixtral-12B)
    "llava": ModelRow("LLaVA", "clip_vision_model", "llama", "llava", "fixed"),
    # Mistral3ForConditionalGeneration (Mistral Small 3.1): Pixtral tower, patch merger
    # (Mistral3Config tie_word_embeddings defaults to true)
    "mistral3": ModelRow(
        "Mistral 3", "pixtral", "mistral", "mistral3", "pixtral", tied_default=True
    ),
    # Qwen2_5_VLForConditionalGeneration: smart_resize within the bounds of the published
    # preprocessor_config.json (Qwen/Qwen2.5-VL-7B-Instruct: min_pixels 3,136, max_pixels
    # 12,845,056; Qwen2VLImageProcessor's own defaults are 56 x 56 and 28 x 28 x 1280)
    "qwen2_5_vl": ModelRow(
        "Qwen2.5-VL",
        "qwen2_5_vl",
        "qwen2",
        "qwen_merger",
        "qwen",
        min_pixels=3_136,
        max_pixels=12_845_056,
    ),
    # Qwen3VLForConditionalGeneration: the published preprocessor_config.json
    # (Qwen/Qwen3-VL-8B-Instruct: size shortest_edge 65,536, longest_edge 16,777,216 pixels)
    "qwen3_vl": ModelRow(
        "Qwen3-VL",
        "qwen3_vl",
        "qwen3",
        "qwen3_merger",
        "qwen",
        min_pixels=65_536,
        max_pixels=16_777_216,
    ),
    # MllamaForConditionalGeneration (Llama 3.2 Vision): the Mllama ViT over max_num_tiles
    # tiles, a Linear projector, a Llama text model with cross-attention layers
    "mllama": ModelRow("Llama 3.2 Vision", "mllama_vision_model", "llama", "mllama", "cross"),
}
VISION_MODELS = tuple(MODELS)
# the vision tower rows a model may name in vision_config.model_type
_TOWER_OF_MODEL = {
    "gemma3": ("siglip_vision_model",),
    "llava": ("clip_vision_model", "siglip_vision_model", "pixtral"),
    "mistral3": ("pixtral",),
    "qwen2_5_vl": ("qwen2_5_vl",),
    "qwen3_vl": ("qwen3_vl",),
    "mllama": ("mllama_vision_model",),
}
# Text families the multimodal text_config's model_type maps to (same layout, other names;
# MllamaTextModel's self-attention layers are Llama's, its extras are mllama_text_extras)
TEXT_FAMILIES = {
    "qwen2_5_vl_text": "qwen2",
    "qwen3_vl_text": "qwen3",
    "mllama_text_model": "llama",
}
# The text config class's defaults for the required keys a text_config leaves out (LLaVA 1.5's
# text_config names only vocab_size and max_position_embeddings): LlamaConfig
# (configuration_llama.py); Gemma3TextConfig's are decoders._GEMMA3_TEXT_DEFAULTS
TEXT_DEFAULTS: dict[str, Mapping[str, int]] = {
    "llama": {
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "intermediate_size": 11008,
        "vocab_size": 32000,
    },
}
GEMMA3_TOKENS_PER_IMAGE = 256  # Gemma3Config mm_tokens_per_image
# MllamaTextConfig's defaults (configuration_mllama.py, transformers 5.25), laid under a
# text_config's own keys: its layout differs from LlamaConfig's (40 layers, 8 KV heads)
MLLAMA_TEXT_DEFAULTS: Mapping[str, Any] = {
    "vocab_size": 128_256,
    "hidden_size": 4096,
    "num_hidden_layers": 40,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "intermediate_size": 14_336,
    "hidden_act": "silu",
    "max_position_embeddings": 131_072,
    "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38],
}
# MllamaTextModel embed_tokens: nn.Embedding(vocab_size + 8, hidden) (modeling_mllama.py)
MLLAMA_EXTRA_EMBEDDING_ROWS = 8
# MllamaVisionModel pads each tile's patches and [CLS] to a multiple of 8 before its encoders
MLLAMA_TILE_PADDING = 8
# MllamaVisionConfig's supported_aspect_ratios default, valid only for max_num_tiles 4
MLLAMA_DEFAULT_ASPECT_RATIOS = 8


@dataclass(frozen=True)
class VisionTower:
    """A multimodal model's vision tower and projector: what they weigh, what the tower computes
    per image (its own sequence of patches) and how many tokens an image adds to the text."""

    model: str  # the multimodal model_type ("gemma3", "qwen2_5_vl", ...)
    kind: str  # a key of TOWERS
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_attention_heads: int
    patch_size: int
    tower_parameters: int
    projector_parameters: int
    gated_mlp: bool
    layer_norm: bool
    hidden_act: str
    class_embedding: bool
    fused_qkv: bool
    # fixed-size images (Gemma 3, LLaVA + CLIP): the tokens and the tower's patches per image;
    # 0 where they follow the image's size (Pixtral, Qwen)
    tokens_per_image: int = 0
    patches_per_image: int = 0
    image_size: int = 0  # the fixed edge, or Pixtral's longest edge
    spatial_merge_size: int = 1  # patches merged per token along each edge
    tokens: str = "fixed"
    min_pixels: int = 0
    max_pixels: int = 0
    # tower parameters no loss reaches, so autograd gives them no gradient (p.grad stays None)
    # and torch.optim no state: LLaVA's layers past vision_feature_layer and the final norm
    ungraded_parameters: int = 0
    # Llama 3.2 Vision: the text model's cross-attention layers, and the vision states (tiles x
    # (patches + [CLS])) an image gives each of them to attend to: their K/V are cached
    cross_attention_layers: int = 0
    cross_attention_states_per_image: int = 0
    # Mllama's global encoder: layers whose attention and MLP outputs pass a tanh gate
    gated_layers: int = 0
    max_num_tiles: int = 0  # Mllama: the tiles every image is padded to
    checkpointed: bool = True

    @property
    def parameters(self) -> int:
        return self.tower_parameters + self.projector_parameters

    @property
    def label(self) -> str:
        return TOWERS[self.kind].label

    def image_tokens(self, height: int, width: int) -> tuple[int, int]:
        """(tokens in the text sequence, patches the tower encodes) for one height x width image.

        Fixed-size towers ignore the size (the processor resizes every image to image_size;
        Mllama's pads every image to max_num_tiles tiles)."""
        if self.tokens in ("fixed", "cross"):
            return self.tokens_per_image, self.patches_per_image
        patch, merge = self.patch_size, self.spatial_merge_size
        if self.tokens == "pixtral":
            # PixtralImageProcessor get_resize_output_image_size: shrunk (floor) to fit the
            # longest edge, then rounded up to whole patch x merge cells; PixtralProcessor:
            # rows of [IMG] tokens, each ending in [IMG_BREAK] ([IMG_END] for the last)
            cell = patch * merge
            ratio = max(height / self.image_size, width / self.image_size)
            if ratio > 1:
                height, width = math.floor(height / ratio), math.floor(width / ratio)
            rows, columns = (height - 1) // cell + 1, (width - 1) // cell + 1
            return rows * (columns + 1), rows * columns * merge * merge
        # Qwen2-VL smart_resize (image_processing_qwen2_vl.py): both edges rounded to multiples
        # of patch x merge, the area kept within [min_pixels, max_pixels]; one temporal patch
        # per image, merge x merge patches per token
        factor = patch * merge
        h_bar = max(factor, round(height / factor) * factor)
        w_bar = max(factor, round(width / factor) * factor)
        if h_bar * w_bar > self.max_pixels:
            beta = math.sqrt(height * width / self.max_pixels)
            h_bar = max(factor, math.floor(height / beta / factor) * factor)
            w_bar = max(factor, math.floor(width / beta / factor) * factor)
        elif h_bar * w_bar < self.min_pixels:
            beta = math.sqrt(self.min_pixels / (height * width))
            h_bar = math.ceil(height * beta / factor) * factor
            w_bar = math.ceil(width * beta / factor) * factor
        patches = (h_bar // patch) * (w_bar // patch)
        return patches // (merge * merge), patches


def tied_embeddings(outer: Mapping[str, Any], text_config: Mapping[str, Any]) -> bool:
    """Whether transformers ties the LM head to the embeddings: the outer config's flag (its
    class default when left out), or the text_config's true (LlavaConfig, Qwen2_5_VLConfig and
    Qwen3VLConfig forward a text_config tie_word_embeddings true to the outer config)."""
    if outer.get("model_type") == "mllama":
        # MllamaForConditionalGeneration ties nothing (no _tied_weights_keys): its embeddings
        # have 8 more rows than the LM head
        return False
    value = outer.get("tie_word_embeddings")
    if value is None:
        value = MODELS[str(outer.get("model_type"))].tied_default
    if type(value) is not bool:
        raise EstimateError("model.hf_config.tie_word_embeddings", "must be true or false")
    return value or text_config.get("tie_word_embeddings") is True


def _integer(vision: Mapping[str, Any], row: TowerRow, name: str) -> int:
    value = vision.get(name)
    if value is None:
        value = row.defaults.get(name, 0)
    if type(value) is not int or not 0 < value <= _LIMIT:
        raise EstimateError(f"{VISION_PREFIX}.{name}", "must be a positive integer")
    return value


def _norm(row: TowerRow, width: int) -> int:
    return 2 * width if row.layer_norm else width


def tower_parameters(vision: Mapping[str, Any], row: TowerRow) -> int:
    """The tower's parameters: patch embedding, positions, pre/post norms, its layers (and
    SigLIP's pooling head), by the row's layout."""
    h = _integer(vision, row, "hidden_size")
    width = _integer(vision, row, "intermediate_size")
    layers = _integer(vision, row, row.layers_key)
    channels = _integer(vision, row, row.channels_key)
    patch = _integer(vision, row, "patch_size")
    frames = _integer(vision, row, "temporal_patch_size") if row.temporal_patch else 1
    embeddings = channels * frames * patch * patch * h + (h if row.patch_bias else 0)
    if row.class_embedding:
        embeddings += h
    if row.positions == "per_patch":
        patches = (_integer(vision, row, "image_size") // patch) ** 2
        embeddings += (patches + row.class_embedding) * h
    elif row.positions == "table":
        embeddings += _integer(vision, row, "num_position_embeddings") * h
    attention = 4 * h * h + (4 * h if row.attention_bias else 0)
    matrices = 3 if row.gated_mlp else 2
    mlp = matrices * h * width
    if row.mlp_bias:
        mlp += (matrices - 1) * width + h
    per_layer = attention + mlp + 2 * _norm(row, h)
    total = embeddings + layers * per_layer
    total += _norm(row, h) * (row.pre_norm + row.post_norm)
    if row is TOWERS["mllama_vision_model"]:
        total += _mllama_extras(vision, row, per_layer)
    if row is TOWERS["siglip_vision_model"] and vision.get("vision_use_head", True):
        # SiglipMultiheadAttentionPoolingHead: a probe, nn.MultiheadAttention (in_proj 3h x h
        # with bias, out_proj), a LayerNorm and the MLP
        total += (
            h + (3 * h * h + 3 * h) + (h * h + h) + 2 * h + (h * width + width) + (width * h + h)
        )
    return total


def _aspect_ratios(vision: Mapping[str, Any], row: TowerRow) -> int:
    """len(supported_aspect_ratios), MllamaVisionConfig's 8 when left out."""
    ratios = vision.get("supported_aspect_ratios")
    if ratios is None:
        if _integer(vision, row, "max_num_tiles") != 4:
            # MllamaVisionConfig.validate_architecture
            raise EstimateError(
                f"{VISION_PREFIX}.max_num_tiles",
                "must be 4 for the default supported_aspect_ratios",
            )
        return MLLAMA_DEFAULT_ASPECT_RATIOS
    if not isinstance(ratios, list) or not ratios or len(ratios) > _LIMIT:
        raise EstimateError(f"{VISION_PREFIX}.supported_aspect_ratios", "must be a list of pairs")
    return len(ratios)


def _mllama_extras(vision: Mapping[str, Any], row: TowerRow, per_layer: int) -> int:
    """MllamaVisionModel beyond the row's layout: the tile embeddings and the global encoder."""
    h = _integer(vision, row, "hidden_size")
    tiles = _integer(vision, row, "max_num_tiles")
    positions = (_integer(vision, row, "image_size") // _integer(vision, row, "patch_size")) ** 2
    # nn.Embedding(max_aspect_ratio_id + 1, ...): one row per aspect ratio and id 0, padding
    ids = _aspect_ratios(vision, row) + 1
    # MllamaPrecomputedPositionEmbedding: its gate and tile_embedding (ids x tiles x (patches +
    # [CLS]) x h; the per-patch embedding is the row's)
    gated_positions = 1 + ids * tiles * (positions + 1) * h
    # pre_ and post_tile_positional_embedding: ids x tiles x h each, and a gate
    tile_embeddings = 2 * (ids * tiles * h + 1)
    # global_transformer: num_global_layers encoder layers, each with gate_attn and gate_ffn
    global_layers = _integer(vision, row, "num_global_layers") * (per_layer + 2)
    return gated_positions + tile_embeddings + global_layers


def mllama_text_extras(text: Mapping[str, Any], hidden: int, head_dim: int) -> tuple[int, int]:
    """(embedding, cross-attention layer) parameters MllamaTextModel has beyond the Llama
    layers counted for its num_hidden_layers: 8 more embedding rows, and per cross-attention
    layer q_norm and k_norm (RMSNorm(head_dim) each) and the tanh gates of its attention and
    MLP (MllamaCrossAttentionDecoderLayer; its projections, MLP and norms are a Llama layer's)."""
    return MLLAMA_EXTRA_EMBEDDING_ROWS * hidden, cross_attention_layers(text) * (2 * head_dim + 2)


def cross_attention_layers(text: Mapping[str, Any]) -> int:
    """How many of the text model's layers are MllamaCrossAttentionDecoderLayer: the indices of
    cross_attention_layers within range(num_hidden_layers) (MllamaTextModel.__init__)."""
    indices = text.get("cross_attention_layers", MLLAMA_TEXT_DEFAULTS["cross_attention_layers"])
    field = "model.hf_config.text_config.cross_attention_layers"
    if not isinstance(indices, list) or any(type(i) is not int for i in indices):
        raise EstimateError(field, "must be a list of layer indices")
    layers = text.get("num_hidden_layers", MLLAMA_TEXT_DEFAULTS["num_hidden_layers"])
    if type(layers) is not int or not 0 < layers <= _LIMIT:
        raise EstimateError(
            "model.hf_config.text_config.num_hidden_layers", "must be a positive integer"
        )
    return len({i for i in indices if 0 <= i < layers})


def siglip_vision_parameters(vision: Mapping[str, Any]) -> int:
    """SiglipVisionModel's parameters (Gemma 3's tower)."""
    return tower_parameters(vision, TOWERS["siglip_vision_model"])


def _linear(inputs: int, outputs: int, bias: bool) -> int:
    return inputs * outputs + (outputs if bias else 0)


def _feature_layers(outer: Mapping[str, Any]) -> int:
    layer = outer.get("vision_feature_layer")
    return len(layer) if isinstance(layer, list) else 1


def projector_parameters(
    projector: str, outer: Mapping[str, Any], vision: Mapping[str, Any], row: TowerRow, text: int
) -> int:
    """The projector from the tower's width `v` to the text width `text`."""
    v = _integer(vision, row, "hidden_size")
    if projector == "mllama":
        # MllamaModel multi_modal_projector: Linear(vision_output_dim -> text, bias); the
        # tower's output is its last state and intermediate_layers_indices' states side by side
        width = _integer(vision, row, "vision_output_dim")
        indices = vision.get("intermediate_layers_indices", [3, 7, 15, 23, 30])
        if not isinstance(indices, list) or width != v * (1 + len(indices)):
            raise EstimateError(
                f"{VISION_PREFIX}.vision_output_dim",
                "must be hidden_size x (1 + len(intermediate_layers_indices))",
            )
        return _linear(width, text, True)
    if projector == "gemma3":
        # Gemma3MultiModalProjector: mm_input_projection_weight (v x text), mm_soft_emb_norm
        # (an RMSNorm of v)
        return v * text + v
    if projector == "llava":
        # LlavaMultiModalProjector: linear_1 (v x feature layers -> text), linear_2 (text ->
        # text), biases per multimodal_projector_bias (LlavaConfig default true)
        bias = outer.get("multimodal_projector_bias", True) is not False
        return _linear(v * _feature_layers(outer), text, bias) + _linear(text, text, bias)
    if projector == "mistral3":
        # Mistral3MultiModalProjector: an RMSNorm of v, Mistral3PatchMerger's merging_layer
        # (v x merge^2 -> v, no bias), linear_1 and linear_2 (multimodal_projector_bias,
        # Mistral3Config default false)
        merge = _merge_size(outer, 2)
        bias = outer.get("multimodal_projector_bias", False) is True
        merger = v * merge * merge * v
        return (
            v + merger + _linear(v * _feature_layers(outer), text, bias) + _linear(text, text, bias)
        )
    # Qwen's patch merger, part of the tower module: a norm of v, then an MLP over the
    # merge^2 patches of a token (4v -> 4v -> out_hidden_size), biases on both
    merge = _integer(vision, row, "spatial_merge_size") if "spatial_merge_size" in vision else 2
    wide = v * merge * merge
    out = vision.get("out_hidden_size", text)
    if type(out) is not int or not 0 < out <= _LIMIT:
        raise EstimateError(f"{VISION_PREFIX}.out_hidden_size", "must be a positive integer")
    mlp = _linear(wide, wide, True) + _linear(wide, out, True)
    if projector == "qwen_merger":
        return v + mlp  # Qwen2_5_VLPatchMerger: ln_q an RMSNorm of v
    # Qwen3VLVisionPatchMerger: a LayerNorm of v; one more merger per deepstack_visual_indexes
    # entry, each normalising the 4v-wide shuffled patches (use_postshuffle_norm)
    deepstack = vision.get("deepstack_visual_indexes", [8, 16, 24])
    if not isinstance(deepstack, list | tuple):
        raise EstimateError(f"{VISION_PREFIX}.deepstack_visual_indexes", "must be a list")
    return 2 * v + mlp + len(deepstack) * (2 * wide + mlp)


def _feature_layer_depth(outer: Mapping[str, Any], layers: int) -> int:
    """The encoder layers LLaVA's features come through: vision_feature_layer indexes the
    tower's hidden_states, the embeddings' output and then one per layer (layers + 1 entries;
    LlavaConfig default -2, the second-to-last layer)."""
    selected = outer.get("vision_feature_layer", -2)
    indices = selected if isinstance(selected, list) else [selected]
    depths = []
    for index in indices:
        if type(index) is not int or not -(layers + 1) <= index <= layers:
            raise EstimateError(
                "model.hf_config.vision_feature_layer",
                f"must index the tower's {layers + 1} hidden states ({-(layers + 1)} to {layers})",
            )
        depths.append(index if index >= 0 else layers + 1 + index)
    return max(depths)


def ungraded_parameters(outer: Mapping[str, Any], vision: Mapping[str, Any], row: TowerRow) -> int:
    """LLaVA's tower parameters past its features: LlavaModel.get_image_features takes
    `hidden_states[vision_feature_layer]` (modeling_llava.py, transformers 5.25), so the layers
    after it, the post_layernorm (CLIPVisionTransformer applies it to the pooled [CLS] only) and
    SigLIP's pooling head run outside the loss's graph."""
    layers = _integer(vision, row, row.layers_key)
    depth = _feature_layer_depth(outer, layers)

    def headless(depth: int) -> int:
        return tower_parameters({**vision, row.layers_key: depth, "vision_use_head": False}, row)

    # the parameters up to `depth` layers (depth 0: the embeddings and pre-norm only)
    used = headless(1) + (depth - 1) * (headless(2) - headless(1))
    post_norm = _norm(row, _integer(vision, row, "hidden_size")) if row.post_norm else 0
    return tower_parameters(vision, row) - used + post_norm


def _merge_size(outer: Mapping[str, Any], default: int) -> int:
    merge = outer.get("spatial_merge_size", default)
    if type(merge) is not int or not 0 < merge <= 64:
        raise EstimateError("model.hf_config.spatial_merge_size", "must be a positive integer")
    return merge


def vision_tower(outer: Mapping[str, Any], text_hidden: int) -> VisionTower:
    """The VisionTower of a multimodal config.json whose model_type is in VISION_MODELS."""
    model_type = str(outer.get("model_type"))
    model = MODELS[model_type]
    vision = outer.get("vision_config")
    if vision is None:
        vision = {}
    if not isinstance(vision, Mapping):
        raise EstimateError(VISION_PREFIX, "must be an object")
    kind = vision.get("model_type") or model.default_tower
    allowed = _TOWER_OF_MODEL[model_type]
    if kind not in allowed:
        raise EstimateError(
            f"{VISION_PREFIX}.model_type",
            f"{model.label} takes a {' or '.join(allowed)} vision tower, not {str(kind)[:40]!r}",
        )
    row = TOWERS[kind]
    tower = tower_parameters(vision, row)
    projector = projector_parameters(model.projector, outer, vision, row, text_hidden)
    patch = _integer(vision, row, "patch_size")
    image_size = _integer(vision, row, "image_size") if row.defaults["image_size"] else 0
    tokens = model.tokens if kind != "clip_vision_model" else "fixed"
    if kind == "pixtral":
        tokens = "pixtral"
    merge = 1
    tokens_per_image = patches = cross_states = cross_layers = gated = 0
    layers = _integer(vision, row, row.layers_key)
    if tokens == "cross":
        # MllamaVisionModel.forward: every image padded to max_num_tiles tiles of patches and
        # [CLS]; both encoders run over an image's tiles as one sequence, each tile padded to a
        # multiple of 8 positions; the padding is cut before the projector. The text holds one
        # <|image|> token per image (MllamaProcessor)
        tiles = _integer(vision, row, "max_num_tiles")
        per_tile = (image_size // patch) ** 2 + 1
        padded = -(-per_tile // MLLAMA_TILE_PADDING) * MLLAMA_TILE_PADDING
        tokens_per_image, patches = 1, tiles * padded
        cross_states = tiles * per_tile
        text = outer.get("text_config")
        cross_layers = cross_attention_layers(text if isinstance(text, Mapping) else {})
        gated = _integer(vision, row, "num_global_layers")
        layers += gated
    elif tokens == "fixed":
        patches = (image_size // patch) ** 2
        if model_type == "gemma3":
            tokens_per_image = _positive(outer, "mm_tokens_per_image", GEMMA3_TOKENS_PER_IMAGE)
        else:
            # LLaVA: vision_feature_select_strategy "default" drops the [CLS] feature
            full = outer.get("vision_feature_select_strategy", "default") == "full"
            tokens_per_image = patches + (full and row.class_embedding)
        patches += row.class_embedding
    elif tokens == "pixtral":
        merge = _merge_size(outer, 2) if model_type == "mistral3" else 1
    else:
        merge = _integer(vision, row, "spatial_merge_size") if "spatial_merge_size" in vision else 2
    return VisionTower(
        model=model_type,
        kind=kind,
        hidden_size=_integer(vision, row, "hidden_size"),
        intermediate_size=_integer(vision, row, "intermediate_size"),
        num_layers=layers,
        num_attention_heads=_integer(vision, row, row.heads_key),
        patch_size=patch,
        tower_parameters=tower,
        projector_parameters=projector,
        gated_mlp=row.gated_mlp,
        layer_norm=row.layer_norm,
        hidden_act=str(vision.get("hidden_act") or row.hidden_act),
        class_embedding=row.class_embedding,
        fused_qkv=row.fused_qkv,
        tokens_per_image=tokens_per_image,
        patches_per_image=patches,
        image_size=image_size,
        spatial_merge_size=merge,
        tokens=tokens,
        min_pixels=model.min_pixels,
        max_pixels=model.max_pixels,
        ungraded_parameters=(
            ungraded_parameters(outer, vision, row) if model.projector == "llava" else 0
        ),
        cross_attention_layers=cross_layers,
        cross_attention_states_per_image=cross_states,
        gated_layers=gated,
        max_num_tiles=_integer(vision, row, "max_num_tiles") if tokens == "cross" else 0,
        checkpointed=row.checkpointed,
    )


def _positive(config: Mapping[str, Any], key: str, default: int) -> int:
    value = config.get(key, default)
    if type(value) is not int or not 0 < value <= _LIMIT:
        raise EstimateError(f"model.hf_config.{key}", "must be a positive integer")
    return value


def describe(tower: VisionTower) -> str:
    """The note on a multimodal model's weights."""
    if tower.tokens == "cross":
        per_image = (
            f"each image takes one <|image|> token; its {tower.cross_attention_states_per_image:,} "
            f"vision states are attended to (and cached) by the {tower.cross_attention_layers} "
            "cross-attention layers"
        )
    elif tower.tokens == "fixed":
        per_image = f"each image takes {tower.tokens_per_image} tokens"
    else:
        per_image = "an image's tokens follow its size (image_height, image_width)"
    return (
        f"Multimodal ({MODELS[tower.model].label}): the {tower.label} vision tower "
        f"({tower.tower_parameters:,} parameters) and projector ({tower.projector_parameters:,}) "
        f"are in the weights; {per_image}; set images_per_request to add them to the sequence"
    )


@dataclass(frozen=True)
class ImageLoad:
    """What a request's images add: tokens to each sequence, and the tower's own work."""

    images: int  # per sequence (images_per_request)
    tokens_per_image: int  # in the language model's sequence
    patches_per_image: int  # the tower's sequence length per image
    # the vision states each cross-attention layer attends to per image (Llama 3.2 Vision)
    cross_attention_states_per_image: int = 0

    @property
    def tokens(self) -> int:
        return self.images * self.tokens_per_image

    @property
    def cross_attention_states(self) -> int:
        return self.images * self.cross_attention_states_per_image


# Qwen2-VL's smart_resize refuses an aspect ratio beyond this (image_processing_qwen2_vl.py)
QWEN_MAX_ASPECT_RATIO = 200


def check_images(inputs: EstimateInputs, tower: VisionTower | None) -> None:
    """Reject image fields the model or the method cannot take."""
    if not inputs.images_per_request:
        return
    if tower is None:
        raise EstimateError(
            "images_per_request",
            "this model has no vision tower the engine knows (a config.json of "
            f"{', '.join(VISION_MODELS)}): use 0",
        )
    if inputs.method != "detailed":
        raise EstimateError(
            "images_per_request", "the standard method sizes text only: use the detailed one"
        )
    if inputs.mode == "serving":
        raise EstimateError(
            "images_per_request",
            "serving plans size text tokens (a serving engine's max_model_len already holds "
            "image tokens; its encoder cache is not sized): use 0, or mode inference",
        )
    height, width = inputs.image_height, inputs.image_width
    if (height is None) != (width is None):
        missing = "image_width" if width is None else "image_height"
        raise EstimateError(missing, "give both image_height and image_width, or neither")
    if tower.tokens in ("fixed", "cross"):
        return
    if height is None or width is None:
        raise EstimateError(
            "image_height",
            f"{MODELS[tower.model].label} turns an image into tokens by its size: give "
            "image_height and image_width in pixels",
        )
    if tower.tokens == "qwen" and max(height, width) / min(height, width) > QWEN_MAX_ASPECT_RATIO:
        raise EstimateError(
            "image_width",
            f"the Qwen image processor refuses aspect ratios beyond {QWEN_MAX_ASPECT_RATIO}:1",
        )


def image_load(inputs: EstimateInputs, tower: VisionTower | None) -> ImageLoad | None:
    """The images' tokens and the tower's patches, None for a text-only request."""
    if not inputs.images_per_request or tower is None:
        return None
    tokens, patches = tower.image_tokens(inputs.image_height or 0, inputs.image_width or 0)
    return ImageLoad(
        inputs.images_per_request, tokens, patches, tower.cross_attention_states_per_image
    )


def tower_architecture(tower: VisionTower) -> Architecture:
    """The tower's encoder layers in the shape the activation formulas read (every head its own
    key/value head; no vocabulary, no KV cache)."""
    from calculator.engine.families.common import Architecture

    return Architecture(
        model_type=tower.kind,
        hidden_size=tower.hidden_size,
        num_layers=tower.num_layers,
        num_attention_heads=tower.num_attention_heads,
        num_key_value_heads=tower.num_attention_heads,
        head_dim=tower.hidden_size // tower.num_attention_heads,
        intermediate_size=tower.intermediate_size,
        vocab_size=0,
        gated_mlp=tower.gated_mlp,
        layer_norm=tower.layer_norm,
        hidden_act=tower.hidden_act,
    )
