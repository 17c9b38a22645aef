"""What every family reader shares: the public value types, the contract's limits, typed
config.json look-ups, and the parameter count of a decoder layout (`_Layout`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from calculator.engine.checkpoint import CheckpointFormat
from calculator.engine.errors import EstimateError

if TYPE_CHECKING:
    from calculator.engine.vision import VisionTower


@dataclass(frozen=True)
class LinearLayer:
    """One kind of projection matrix, e.g. every layer's `q_proj`: what LoRA adapts.

    `linear_layers` lists every matrix of the decoder layers that LoRA can adapt (the LM head is
    never one); `lora_target_layers()` picks those PEFT adapts for a target_modules value.
    """

    name: str  # "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", ...
    in_features: int
    out_features: int
    count: int  # how many such matrices the whole model has (layers x experts ...)
    active_count: int  # how many of them one token passes through (MoE: experts per token)
    # Where it lives in the transformers model, "*" for layer indices: "model.layers.*.mlp.up_proj"
    path: str = ""
    # A routed MoE expert's projection, counted per expert. transformers 5 stores a layer's experts
    # as fused 3-D parameters: `experts.gate_up_proj` (name "gate_up_proj", hidden -> 2 x width)
    # and `experts.down_proj`, not nn.Linear modules.
    routed_expert: bool = False
    # The MoE router's weight (hidden -> experts); a bare parameter in transformers 5.
    router: bool = False
    # Whether PEFT's target_modules="all-linear" adapts it (transformers 5.24, peft 0.21).
    lora_all_linear: bool = True
    # PEFT gives this matrix rank lora_rank x this factor: 2 for the experts' fused gate_up_proj
    # (peft/utils/transformers_weight_conversion.py: rank_pattern r x 2 for the fused gate and up).
    lora_rank_factor: int = 1
    # PEFT raises rather than adapt it: out_proj of Mamba-based models (peft 0.21
    # tuners_utils.py _check_lora_target_modules_mamba: model types mamba2, nemotron_h,
    # falcon_h1, mamba, falcon_mamba; out_proj and conv1d), "all-linear" included
    peft_refuses: bool = False


@dataclass(frozen=True)
class StateLayers:
    """The layers whose token mixer keeps a fixed-size state, not a KV cache that grows with the
    context: linear attention (Qwen3-Next's Gated DeltaNet) and state-space layers (Mamba).

    transformers 5.24 keeps, per sequence and layer (cache_utils.py LinearAttentionLayer):
    `conv_states`, zeros of (*conv input shape[:-1], conv_kernel_size), i.e. conv_dim x
    conv_kernel values in the dtype of the convolution's input (the activations'), and
    `recurrent_states`, zeros_like the scan's final state: heads x rows x cols values in float32
    (the scans compute it in float32: modeling_qwen3_next.py torch_chunk_gated_delta_rule casts
    q/k/v to float32; modeling_jamba.py mamba_selective_scan's state is a float32 product).
    """

    # "gated_deltanet" (Qwen3-Next), "mamba" (Jamba's Mamba-1 mixer) or "mamba2" (Mamba-2,
    # Nemotron-H, Falcon-H1: modeling_mamba2.py Mamba2Mixer and its copies)
    kind: str
    count: int  # layers with such a mixer
    conv_dim: int  # channels of the causal depthwise convolution
    conv_kernel: int  # positions of its state (transformers keeps conv_kernel_size, not - 1)
    state_heads: int  # recurrent state: heads x rows x cols
    state_rows: int
    state_cols: int
    # what the prefill scan works on (values per token), for activations
    projection_width: int  # outputs of the input projections (in_proj_qkvz + in_proj_ba, in_proj)
    inner_width: int  # the width entering out_proj (value_dim; Mamba's intermediate_size)
    # Mamba-2's chunked scan (mamba2_chunk_scan): its chunk_size and B/C groups; 0 elsewhere
    chunk_size: int = 0
    groups: int = 0
    # Falcon-H1: the mixer runs beside the attention in every layer, which keeps its KV cache
    # too (FalconH1DecoderLayer); elsewhere a state layer has no attention
    beside_attention: bool = False

    @property
    def conv_elements(self) -> int:
        return self.conv_dim * self.conv_kernel

    @property
    def recurrent_elements(self) -> int:
        return self.state_heads * self.state_rows * self.state_cols


@dataclass(frozen=True)
class ParameterBreakdown:
    """Exact parameter counts by kind; `total` equals what transformers instantiates."""

    embeddings: int  # token embeddings (+ learned position embeddings)
    lm_head: int  # 0 when tied to the embeddings
    # all layers' token mixers: q/k/v/o (or MLA) projections, their biases, q/k norms; linear
    # attention and state-space mixers (projections, convolution, A_log, D, dt bias, inner norms)
    attention: int
    mlp: int  # all dense MLPs and shared experts
    experts: int  # all routed experts of all MoE layers
    active_experts: int  # the routed experts one token passes through, all layers
    router: int  # MoE gates (and their biases)
    norms: int  # layer norms / RMS norms (weights and biases), final norm
    # a multimodal model's vision tower and projector (run per image, not per token)
    vision: int = 0

    @property
    def total(self) -> int:
        return (
            self.embeddings
            + self.lm_head
            + self.attention
            + self.mlp
            + self.experts
            + self.router
            + self.norms
            + self.vision
        )

    @property
    def active(self) -> int:
        return self.total - self.experts + self.active_experts - self.vision


@dataclass(frozen=True)
class Architecture:
    model_type: str  # Hugging Face model_type ("llama", "qwen3_moe", ...) or "custom"
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int  # MLA: the query/key head dim, qk_nope_head_dim + qk_rope_head_dim
    intermediate_size: int
    vocab_size: int  # 0 when entered by hand and unknown
    tie_word_embeddings: bool = False
    gated_mlp: bool = True  # SwiGLU / GeGLU: gate, up and down matrices; else up and down
    # Mixture of experts (num_experts == 0: dense)
    num_experts: int = 0
    num_experts_per_token: int = 0
    num_shared_experts: int = 0
    moe_intermediate_size: int = 0
    num_dense_layers: int = 0  # layers that keep a dense MLP in an MoE model
    # Multi-head latent attention (kv_lora_rank == 0: not MLA)
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    # Sliding-window attention (sliding_window == 0: every layer is global)
    sliding_window: int = 0
    num_sliding_window_layers: int = 0
    max_position_embeddings: int = 0
    default_dtype: str = "bfloat16"
    # Counts: exact from the shape when the family is known, else as entered
    num_parameters: int = 0
    num_active_parameters: int = 0
    parameters_exact: bool = False
    parameters: ParameterBreakdown | None = None
    linear_layers: tuple[LinearLayer, ...] = ()
    # Width of the shared expert(s) of one MoE layer, all together (DeepSeek: n_shared_experts x
    # moe_intermediate_size; Qwen2-MoE: shared_expert_intermediate_size); 0 when there are none
    shared_expert_intermediate_size: int = 0
    # How transformers' modeling code computes (memory of activations, not parameters):
    # tanh soft cap on the LM head's logits (gemma2: logits / cap -> tanh -> * cap); 0: none
    final_logit_softcapping: float = 0.0
    # the MLP activation (ACT2FN name): gelu_new / gelu_fast are Python chains of small ops
    hidden_act: str = "silu"
    # eager attention upcasts softmax to float32 (eager_attention_forward); gpt2 and falcon do not
    eager_softmax_float32: bool = True
    # where it does not: score-sized (batch x heads x seq x seq) compute-dtype tensors alive at
    # once while the eager softmax runs (gpt2 2, falcon 3; 0 where the softmax is float32)
    eager_score_copies: int = 0
    # score-sized probabilities of the previous layer still alive during a layer's eager
    # attention, because the decoder layer returns them (falcon 1, the others 0)
    eager_probabilities_carried: int = 0
    # nn.LayerNorm (weight and bias) rather than RMSNorm
    layer_norm: bool = False
    # the router matrix stays float32 in a 16-bit model (_keep_in_fp32_modules_strict)
    router_float32: bool = False
    # what the published checkpoint stores (config.json quantization_config); None: plain weights
    checkpoint: CheckpointFormat | None = None
    # Hybrid models: the layers that keep a fixed-size state instead of a KV cache; None: every
    # layer is an attention layer
    state_layers: StateLayers | None = None
    # Layers whose block is a single mixer (Mamba-2, Nemotron-H's "M", "*", "-", "E" blocks):
    # with neither attention nor a state mixer, or without an MLP. 0: every layer has an
    # attention or state mixer and an MLP (dense or MoE)
    num_layers_without_attention: int = 0
    num_layers_without_mlp: int = 0
    # A multimodal model's vision tower and projector (calculator/engine/vision.py); None: text
    vision: VisionTower | None = None

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def num_attention_layers(self) -> int:
        """Layers with self-attention, the ones that keep a KV cache of the text (Llama 3.2
        Vision's cross-attention layers cache the vision states instead)."""
        state = self.state_layers
        replaced = state.count if state is not None and not state.beside_attention else 0
        cross = self.vision.cross_attention_layers if self.vision is not None else 0
        return self.num_layers - replaced - self.num_layers_without_attention - cross

    @property
    def num_mlp_layers(self) -> int:
        """Layers with an MLP, dense or MoE."""
        return self.num_layers - self.num_layers_without_mlp

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0


# --- Limits (the forms and the API reuse them) ---------------------------------------------------

MAX_HIDDEN_SIZE = 1_048_576
MAX_LAYERS = 10_000
MAX_HEADS = 65_536
MAX_HEAD_DIM = 65_536
MAX_INTERMEDIATE_SIZE = 16_777_216
MAX_VOCAB_SIZE = 10_000_000
MAX_PARAMETERS = 100_000_000_000_000  # 100e12
MAX_EXPERTS = 65_536
MAX_LORA_RANK_DIM = 1_048_576  # MLA q/kv LoRA ranks
MAX_SEQUENCE_POSITIONS = 100_000_000  # sliding windows, max_position_embeddings

# (min, max) of every numeric field of the contract's "architecture", keyed by its name
LIMITS: dict[str, tuple[int, int]] = {
    "num_parameters": (1, MAX_PARAMETERS),
    "hidden_size": (1, MAX_HIDDEN_SIZE),
    "num_layers": (1, MAX_LAYERS),
    "num_attention_heads": (1, MAX_HEADS),
    "num_key_value_heads": (1, MAX_HEADS),
    "head_dim": (1, MAX_HEAD_DIM),
    "intermediate_size": (1, MAX_INTERMEDIATE_SIZE),
    "vocab_size": (1, MAX_VOCAB_SIZE),
    "num_experts": (0, MAX_EXPERTS),
    "num_experts_per_token": (0, MAX_EXPERTS),
    "num_shared_experts": (0, MAX_EXPERTS),
    "moe_intermediate_size": (0, MAX_INTERMEDIATE_SIZE),
    "shared_expert_intermediate_size": (0, MAX_INTERMEDIATE_SIZE),
    "num_dense_layers": (0, MAX_LAYERS),
    "q_lora_rank": (0, MAX_LORA_RANK_DIM),
    "kv_lora_rank": (0, MAX_LORA_RANK_DIM),
    "qk_rope_head_dim": (0, MAX_HEAD_DIM),
    "qk_nope_head_dim": (0, MAX_HEAD_DIM),
    "v_head_dim": (0, MAX_HEAD_DIM),
    "sliding_window": (0, MAX_SEQUENCE_POSITIONS),
    "num_sliding_window_layers": (0, MAX_LAYERS),
    "max_position_embeddings": (0, MAX_SEQUENCE_POSITIONS),
}

# config.json keys that are not contract fields: layer indices (0 allowed) and layer periods
_CONFIG_LIMITS: dict[str, tuple[int, int]] = {
    "layer_index": (0, MAX_LAYERS),
    "layer_period": (1, MAX_LAYERS),
    # linear attention / state-space mixers: convolution width, state size, expansion factor
    "conv_kernel": (1, 1024),
    "state_size": (1, MAX_HEAD_DIM),
    "expand": (1, 1024),
    "chunk_size": (1, 65_536),  # Mamba-2's chunked scan
}

MODEL_DTYPES = ("float32", "float16", "bfloat16")
DEFAULT_DTYPE = "bfloat16"
# config.json `dtype` / `torch_dtype` spellings -> the contract's names
_DTYPE_ALIASES = {
    "float32": "float32",
    "float": "float32",
    "fp32": "float32",
    "float16": "float16",
    "half": "float16",
    "fp16": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}

# The contract's "architecture" fields (docs/design.md) that architecture_from_fields takes
ARCHITECTURE_FIELDS = (
    "num_parameters",
    "hidden_size",
    "num_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "tie_word_embeddings",
    "model_type",
    "family",
    "gated_mlp",
    "num_experts",
    "num_experts_per_token",
    "num_shared_experts",
    "moe_intermediate_size",
    "shared_expert_intermediate_size",
    "num_dense_layers",
    "q_lora_rank",
    "kv_lora_rank",
    "qk_rope_head_dim",
    "qk_nope_head_dim",
    "v_head_dim",
    "sliding_window",
    "num_sliding_window_layers",
    "max_position_embeddings",
    "default_dtype",
)
MAX_MODEL_TYPE_LENGTH = 64

HF_PREFIX = "model.hf_config"
FIELDS_PREFIX = "model.architecture"
_SLIDING = "sliding_attention"


# --- Values ------------------------------------------------------------------------------------


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _whole_number(field: str, value: object, limit: str) -> int:
    """`value` as an int within LIMITS[limit]; JSON's 4096.0 is accepted, 4096.5 and NaN not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EstimateError(field, f"must be a whole number, got {_describe(value)}")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise EstimateError(field, f"must be a whole number, got {_describe(value)}")
        value = int(value)
    low, high = LIMITS[limit] if limit in LIMITS else _CONFIG_LIMITS[limit]
    if value < low:
        raise EstimateError(field, f"must be at least {low}, got {value}")
    if value > high:
        raise EstimateError(field, f"must be at most {high:,}, got {value:,}")
    return value


def _boolean(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise EstimateError(field, f"must be true or false, got {_describe(value)}")
    return value


_REQUIRED: Any = object()


class _Reader:
    """Typed look-ups in one config.json (or manual-entry) dict, errors named by dotted field."""

    def __init__(
        self,
        config: Mapping[str, Any],
        prefix: str,
        notes: list[str],
        family: str,
        fallback: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.prefix = prefix
        self.notes = notes
        self.family = family
        # Defaults for required keys too: a multimodal config's sparse text_config relies on them
        self.fallback = fallback or {}

    def field(self, key: str) -> str:
        return f"{self.prefix}.{key}"

    def has(self, key: str) -> bool:
        return self.config.get(key) is not None

    def find(self, keys: tuple[str, ...]) -> str | None:
        return next((key for key in keys if self.config.get(key) is not None), None)

    def number(self, keys: str | tuple[str, ...], limit: str, default: Any = _REQUIRED) -> int:
        """The first of `keys` present; else `default` (a number, or None passed through)."""
        keys = (keys,) if isinstance(keys, str) else keys
        key = self.find(keys)
        if key is not None:
            return _whole_number(self.field(key), self.config[key], limit)
        if default is _REQUIRED and keys[0] in self.fallback:
            default = self.fallback[keys[0]]
            self.notes.append(
                f"{keys[0]} not in {self.prefix}: transformers' {self.family} default {default}"
            )
        if default is _REQUIRED:
            raise EstimateError(self.field(keys[0]), "is required")
        return default

    def flag(self, key: str, default: bool) -> bool:
        if not self.has(key):
            return default
        return _boolean(self.field(key), self.config[key])


# --- Counting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Names:
    """HF module names of a family's projections; `qkv`/`gate_up` set when fused."""

    attention: str = "model.layers.*.self_attn"
    mlp: str = "model.layers.*.mlp"
    q: str = "q_proj"
    k: str = "k_proj"
    v: str = "v_proj"
    o: str = "o_proj"
    qkv: str = ""
    gate: str = "gate_proj"
    up: str = "up_proj"
    down: str = "down_proj"
    gate_up: str = ""
    shared_expert: str = "shared_experts"
    router: str = "gate"


_LLAMA_NAMES = _Names()


@dataclass(frozen=True)
class _Mixer:
    """The token mixer of the layers without self-attention (linear attention, state space)."""

    path: str  # where it lives in the transformers model: "model.layers.*.linear_attn"
    linears: tuple[tuple[str, int, int, bool], ...]  # nn.Linear modules: (name, in, out, bias)
    other: int  # per layer: convolution weight and bias, A_log, D, dt bias, inner norms
    state: StateLayers

    @property
    def parameters(self) -> int:
        linear = sum(d_in * d_out + (d_out if bias else 0) for _, d_in, d_out, bias in self.linears)
        return linear + self.other


@dataclass(frozen=True)
class _Layout:
    """Everything that decides the parameter count of a decoder-only transformer."""

    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int  # the dense MLP's width
    vocab_size: int
    tie_word_embeddings: bool
    names: _Names = _LLAMA_NAMES
    position_embeddings: int = 0  # rows of a learned position table (GPT-2 wpe)
    lm_head_bias: bool = False
    qkv_bias: bool = False  # MLA: q_a_proj and kv_a_proj_with_mqa
    o_bias: bool = False
    qk_norm_parameters: int = 0  # per layer, q and k norms together
    attention_sinks: bool = False  # gpt-oss: one learned logit per head
    mlp_bias: bool = False
    gated_mlp: bool = True
    norm_bias: bool = False  # LayerNorm (weight and bias) rather than RMSNorm (weight)
    norms_per_layer: int = 2
    # Multi-head latent attention (DeepSeek-V2/V3)
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    # Mixture of experts
    num_moe_layers: int = 0
    num_experts: int = 0
    num_experts_per_token: int = 0
    moe_intermediate_size: int = 0
    expert_bias: bool = False  # gpt-oss
    router_bias: bool = False  # gpt-oss
    shared_expert_intermediate_size: int = 0
    shared_expert_gate: bool = False  # Qwen2-MoE: sigmoid gate on the shared expert
    # PEFT maps "all-linear" and the MLP names onto the fused experts and the router
    peft_targets_experts: bool = False
    # Qwen3-Next: q_proj also makes a sigmoid output gate, heads x head_dim more outputs
    attention_output_gate: bool = False
    # hybrids: the mixer of the layers that have no self-attention (None: all have it)
    mixer: _Mixer | None = None
    # single-mixer blocks (Mamba-2, Nemotron-H): layers with neither attention nor a state mixer,
    # layers without an MLP
    layers_without_attention: int = 0
    layers_without_mlp: int = 0
    # Nemotron-H: routed and shared experts are plain up/down MLPs (NemotronHExperts, NemotronHMLP)
    experts_gated: bool = True

    @property
    def num_dense_layers(self) -> int:
        return self.num_layers - self.layers_without_mlp - self.num_moe_layers

    @property
    def num_attention_layers(self) -> int:
        state = self.mixer.state if self.mixer else None
        replaced = state.count if state is not None and not state.beside_attention else 0
        return self.num_layers - replaced - self.layers_without_attention


def _mlp_parameters(hidden: int, width: int, gated: bool, bias: bool) -> int:
    # gated (SwiGLU/GeGLU): gate and up h->I, down I->h; plain: up h->I, down I->h
    matrices = 3 if gated else 2
    biases = (2 * width if gated else width) + hidden if bias else 0
    return matrices * hidden * width + biases


def _attention_parameters(layout: _Layout) -> int:
    """One layer's attention: projections, their biases, q/k norms, sinks."""
    h = layout.hidden_size
    heads = layout.num_attention_heads
    if layout.kv_lora_rank:
        # DeepSeek-V2/V3 MLA, modeling_deepseek_v3.py DeepseekV3Attention
        qk_head_dim = layout.qk_nope_head_dim + layout.qk_rope_head_dim
        kv_a_out = layout.kv_lora_rank + layout.qk_rope_head_dim
        if layout.q_lora_rank:
            q = (
                h * layout.q_lora_rank
                + layout.q_lora_rank
                + layout.q_lora_rank * heads * qk_head_dim
            )
            q += layout.q_lora_rank if layout.qkv_bias else 0
        else:
            q = h * heads * qk_head_dim
        kv = h * kv_a_out + (kv_a_out if layout.qkv_bias else 0) + layout.kv_lora_rank
        kv += layout.kv_lora_rank * heads * (layout.qk_nope_head_dim + layout.v_head_dim)
        o = heads * layout.v_head_dim * h + (h if layout.o_bias else 0)
        return q + kv + o
    q_out = heads * layout.head_dim
    q_proj_out = 2 * q_out if layout.attention_output_gate else q_out
    kv_out = layout.num_key_value_heads * layout.head_dim
    parameters = h * (q_proj_out + 2 * kv_out) + q_out * h
    parameters += q_proj_out + 2 * kv_out if layout.qkv_bias else 0
    parameters += h if layout.o_bias else 0
    parameters += layout.qk_norm_parameters
    parameters += heads if layout.attention_sinks else 0
    return parameters


def _count(layout: _Layout) -> ParameterBreakdown:
    h = layout.hidden_size
    vocab = layout.vocab_size
    layers = layout.num_layers
    moe_layers = layout.num_moe_layers
    norm_size = 2 * h if layout.norm_bias else h
    expert = _mlp_parameters(
        h, layout.moe_intermediate_size, layout.experts_gated, layout.expert_bias
    )
    experts = moe_layers * layout.num_experts * expert
    router = layout.num_experts * h + (layout.num_experts if layout.router_bias else 0)
    router += h if layout.shared_expert_gate else 0
    shared = 0
    if layout.shared_expert_intermediate_size:
        shared = _mlp_parameters(
            h, layout.shared_expert_intermediate_size, layout.experts_gated, layout.mlp_bias
        )
    dense = _mlp_parameters(h, layout.intermediate_size, layout.gated_mlp, layout.mlp_bias)
    return ParameterBreakdown(
        embeddings=(vocab + layout.position_embeddings) * h,
        lm_head=(0 if layout.tie_word_embeddings else vocab * h)
        + (vocab if layout.lm_head_bias else 0),
        attention=layout.num_attention_layers * _attention_parameters(layout)
        + (layout.mixer.state.count * layout.mixer.parameters if layout.mixer else 0),
        mlp=layout.num_dense_layers * dense + moe_layers * shared,
        experts=experts,
        active_experts=moe_layers * layout.num_experts_per_token * expert,
        router=moe_layers * router,
        norms=(layers * layout.norms_per_layer + 1) * norm_size,
    )


def _linear_layers(layout: _Layout) -> tuple[LinearLayer, ...]:
    """Every projection matrix of the decoder layers, by HF name, and whether PEFT adapts it.

    PEFT's "all-linear" (peft/tuners/tuners_utils.py `_maybe_include_all_linear_layers`) takes
    every torch.nn.Linear or Conv1D module except `model.get_output_embeddings()`: never the LM
    head. In transformers 5 the routed experts are fused 3-D parameters and the routers bare
    parameters, so "all-linear" misses them, except where peft 0.21 converts the targets of MoE
    models to their transformers-4 meaning (peft/utils/transformers_weight_conversion.py, for the
    Mixtral and Qwen2-MoE conversion patterns of transformers' conversion_mapping.py: Mixtral,
    Qwen3-MoE, DeepSeek-V2/V3, not Qwen2-MoE itself): there "all-linear" adapts the experts
    (gate_up_proj at rank 2r) and the router `gate`, and since the names gate_proj/up_proj/down_proj
    are remapped onto the experts, the dense MLPs and shared experts are no longer adapted.
    Checked against get_peft_model(model, LoraConfig(target_modules="all-linear")) trainable
    parameter counts for Mixtral, Qwen3-MoE, DeepSeek-V3, Qwen2-MoE, GPT-2, Phi-2 and Falcon.
    """
    names = layout.names
    h = layout.hidden_size
    layers = layout.num_attention_layers  # the attention projections' count
    heads = layout.num_attention_heads
    mapped_to_experts = layout.peft_targets_experts and layout.num_moe_layers > 0
    result: list[LinearLayer] = []

    def add(name: str, path: str, d_in: int, d_out: int, count: int, mlp: bool = False) -> None:
        if count:
            adapted = not (mlp and mapped_to_experts)
            layer = LinearLayer(name, d_in, d_out, count, count, f"{path}.{name}")
            result.append(layer if adapted else replace(layer, lora_all_linear=False))

    attention = names.attention
    if layout.kv_lora_rank:
        qk_head_dim = layout.qk_nope_head_dim + layout.qk_rope_head_dim
        if layout.q_lora_rank:
            add("q_a_proj", attention, h, layout.q_lora_rank, layers)
            add("q_b_proj", attention, layout.q_lora_rank, heads * qk_head_dim, layers)
        else:
            add("q_proj", attention, h, heads * qk_head_dim, layers)
        kv_a_out = layout.kv_lora_rank + layout.qk_rope_head_dim
        kv_b_out = heads * (layout.qk_nope_head_dim + layout.v_head_dim)
        add("kv_a_proj_with_mqa", attention, h, kv_a_out, layers)
        add("kv_b_proj", attention, layout.kv_lora_rank, kv_b_out, layers)
        add(names.o, attention, heads * layout.v_head_dim, h, layers)
    else:
        q_out = heads * layout.head_dim
        q_proj_out = 2 * q_out if layout.attention_output_gate else q_out
        kv_out = layout.num_key_value_heads * layout.head_dim
        if names.qkv:
            add(names.qkv, attention, h, q_out + 2 * kv_out, layers)
        else:
            add(names.q, attention, h, q_proj_out, layers)
            add(names.k, attention, h, kv_out, layers)
            add(names.v, attention, h, kv_out, layers)
        add(names.o, attention, q_out, h, layers)
    if layout.mixer:
        for name, d_in, d_out, _bias in layout.mixer.linears:
            add(name, layout.mixer.path, d_in, d_out, layout.mixer.state.count)
            if layout.mixer.state.kind == "mamba2" and name == "out_proj" and result:
                result[-1] = replace(result[-1], peft_refuses=True)

    mlp = names.mlp
    width = layout.intermediate_size
    dense_layers = layout.num_dense_layers
    if layout.gated_mlp and names.gate_up:
        add(names.gate_up, mlp, h, 2 * width, dense_layers, mlp=True)
    elif layout.gated_mlp:
        add(names.gate, mlp, h, width, dense_layers, mlp=True)
        add(names.up, mlp, h, width, dense_layers, mlp=True)
    else:
        add(names.up, mlp, h, width, dense_layers, mlp=True)
    add(names.down, mlp, width, h, dense_layers, mlp=True)

    moe_layers = layout.num_moe_layers
    if not moe_layers:
        return tuple(result)
    shared_width = layout.shared_expert_intermediate_size
    if shared_width:
        shared = f"{mlp}.{names.shared_expert}"
        if layout.experts_gated:
            add("gate_proj", shared, h, shared_width, moe_layers, mlp=True)
        add("up_proj", shared, h, shared_width, moe_layers, mlp=True)
        add("down_proj", shared, shared_width, h, moe_layers, mlp=True)
    if layout.shared_expert_gate:
        add("shared_expert_gate", mlp, h, 1, moe_layers)
    experts = moe_layers * layout.num_experts
    active = moe_layers * layout.num_experts_per_token
    width = layout.moe_intermediate_size
    lora = layout.peft_targets_experts
    result += [
        LinearLayer(
            names.router,
            h,
            layout.num_experts,
            moe_layers,
            moe_layers,
            f"{mlp}.{names.router}",
            router=True,
            lora_all_linear=lora,
        ),
        LinearLayer(
            "gate_up_proj" if layout.experts_gated else "up_proj",
            h,
            2 * width if layout.experts_gated else width,
            experts,
            active,
            f"{mlp}.experts.{'gate_up_proj' if layout.experts_gated else 'up_proj'}",
            routed_expert=True,
            lora_all_linear=lora,
            lora_rank_factor=2 if layout.experts_gated else 1,
        ),
        LinearLayer(
            "down_proj",
            width,
            h,
            experts,
            active,
            f"{mlp}.experts.down_proj",
            routed_expert=True,
            lora_all_linear=lora,
        ),
    ]
    return tuple(result)


def _refuse_peft_incompatible(architecture: Architecture, chosen: Sequence[LinearLayer]) -> None:
    refused = sorted({layer.name for layer in chosen if layer.peft_refuses})
    if refused:
        adaptable = {layer.name for layer in architecture.linear_layers if layer.lora_all_linear}
        allowed = sorted(adaptable - set(refused))
        raise EstimateError(
            "lora_target_modules",
            f"PEFT refuses LoRA on {', '.join(refused)} of Mamba-based models "
            f"({architecture.model_type}), all-linear included: name the targets from "
            f"{', '.join(allowed)}",
        )


LORA_ALL_LINEAR = "all-linear"
_EXPERT_NAMES = {"gate_proj": "gate_up_proj", "up_proj": "gate_up_proj", "down_proj": "down_proj"}


def lora_target_layers(
    architecture: Architecture, target_modules: str | Sequence[str]
) -> tuple[LinearLayer, ...]:
    """The matrices PEFT LoRA adapts for `target_modules` ("all-linear" or projection names);
    each gets rank lora_rank x `lora_rank_factor`, i.e. r x factor x (in + out) parameters.

    Names match the HF module name, as PEFT's suffix match does. Where PEFT maps the MLP names onto
    fused experts (see `_linear_layers`), gate_proj and up_proj together select the experts'
    gate_up_proj, down_proj their down_proj, and none of them the dense or shared MLPs; the
    contract's names stand for Mixtral's w1, w3 and w2 too.
    Raises EstimateError("lora_target_modules") for a name that selects nothing.
    """
    layers = architecture.linear_layers
    if target_modules == LORA_ALL_LINEAR:
        chosen_all = tuple(layer for layer in layers if layer.lora_all_linear)
        _refuse_peft_incompatible(architecture, chosen_all)
        return chosen_all
    wanted = {target_modules} if isinstance(target_modules, str) else set(target_modules)
    mapped = any(layer.routed_expert and layer.lora_all_linear for layer in layers)
    if mapped and len(wanted & {"gate_proj", "up_proj"}) == 1:
        raise EstimateError(
            "lora_target_modules",
            "gate_proj and up_proj are one fused gate_up_proj parameter per expert layer in "
            "transformers 5: target both or neither",
        )
    chosen: list[LinearLayer] = []
    matched: set[str] = set()
    for layer in layers:
        if mapped and layer.routed_expert:
            hits = {name for name in wanted if _EXPERT_NAMES.get(name) == layer.name}
        elif layer.routed_expert or layer.router or (mapped and layer.name in _EXPERT_NAMES):
            hits = set()
        else:
            hits = wanted & {layer.name}
        if hits:
            chosen.append(layer)
            matched |= hits
    _refuse_peft_incompatible(architecture, chosen)
    missing = sorted(wanted - matched)
    if missing:
        raise EstimateError(
            "lora_target_modules",
            f"{', '.join(missing)}: no such linear layer in this model "
            f"({', '.join(sorted({layer.name for layer in layers}))})",
        )
    return tuple(chosen)


# --- Shared pieces of the readers ----------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool


@dataclass(frozen=True)
class _Parsed:
    layout: _Layout
    sliding_window: int = 0
    num_sliding_window_layers: int = 0
    max_position_embeddings: int = 0
    exact: bool = True


def _divided_head_dim(r: _Reader, hidden: int, heads: int, heads_key: str) -> int:
    if hidden % heads:
        raise EstimateError(
            r.field(heads_key),
            f"{heads} attention heads do not divide hidden_size {hidden}; "
            "give head_dim to say how wide each head is",
        )
    return hidden // heads


def _head_dim(r: _Reader, hidden: int, heads: int, heads_key: str, default: int | None) -> int:
    """config `head_dim`, else the family's default, else hidden / heads (which must divide)."""
    if r.has("head_dim"):
        return r.number("head_dim", "head_dim")
    if default is not None and "head_dim" not in r.config:
        r.notes.append(f"head_dim not in config.json: transformers' {r.family} default {default}")
        return default
    return _divided_head_dim(r, hidden, heads, heads_key)


def _key_value_heads(r: _Reader, heads: int, key: str, default: int | None) -> int:
    if r.has(key):
        kv_heads = r.number(key, "num_key_value_heads")
    elif default is None or key in r.config:  # transformers: None means as many as the heads
        kv_heads = heads
    else:
        kv_heads = default
        r.notes.append(f"{key} not in config.json: transformers' {r.family} default {default}")
    if heads % kv_heads:
        raise EstimateError(
            r.field(key),
            f"{kv_heads} key/value heads must divide the {heads} attention heads evenly",
        )
    return kv_heads


def _tied(r: _Reader, default: bool) -> bool:
    if not r.has("tie_word_embeddings"):
        state = "tied to" if default else "separate from"
        r.notes.append(
            f"tie_word_embeddings not in config.json: transformers' {r.family} default, "
            f"LM head {state} the embeddings"
        )
    return r.flag("tie_word_embeddings", default)


def _decoder_shape(
    r: _Reader,
    *,
    head_dim: int | None,
    kv_heads: int | None,
    tied: bool,
    hidden_keys: tuple[str, ...] = ("hidden_size",),
    layers_keys: tuple[str, ...] = ("num_hidden_layers",),
    heads_keys: tuple[str, ...] = ("num_attention_heads",),
    intermediate_keys: tuple[str, ...] = ("intermediate_size",),
) -> _Shape:
    """The llama-style core of most families: hidden, layers, heads, kv heads, widths, vocab."""
    hidden = r.number(hidden_keys, "hidden_size")
    layers = r.number(layers_keys, "num_layers")
    heads = r.number(heads_keys, "num_attention_heads")
    heads_key = r.find(heads_keys) or heads_keys[0]
    return _Shape(
        hidden_size=hidden,
        num_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=_key_value_heads(r, heads, "num_key_value_heads", kv_heads),
        head_dim=_head_dim(r, hidden, heads, heads_key, head_dim),
        intermediate_size=r.number(intermediate_keys, "intermediate_size"),
        vocab_size=r.number("vocab_size", "vocab_size"),
        tie_word_embeddings=_tied(r, tied),
    )


def _layout(shape: _Shape, **details: Any) -> _Layout:
    return _Layout(
        hidden_size=shape.hidden_size,
        num_layers=shape.num_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        head_dim=shape.head_dim,
        intermediate_size=shape.intermediate_size,
        vocab_size=shape.vocab_size,
        tie_word_embeddings=shape.tie_word_embeddings,
        **details,
    )


def _window(r: _Reader, default: int | None) -> int:
    """config `sliding_window` (None or 0: no window) or the family default."""
    if "sliding_window" in r.config:
        value = r.config["sliding_window"]
        return 0 if value is None else r.number("sliding_window", "sliding_window")
    return default or 0


def _layer_types(r: _Reader, layers: int, computed: Callable[[int], bool]) -> int:
    """Sliding layers from config `layer_types`, else as the family's config class computes them."""
    if not r.has("layer_types"):
        return sum(1 for i in range(layers) if computed(i))
    layer_types = r.config["layer_types"]
    if not isinstance(layer_types, list) or not all(isinstance(t, str) for t in layer_types):
        raise EstimateError(r.field("layer_types"), "must be a list of layer type names")
    if len(layer_types) != layers:
        raise EstimateError(
            r.field("layer_types"),
            f"has {len(layer_types)} entries for {layers} layers (num_hidden_layers)",
        )
    return layer_types.count(_SLIDING)


def _max_positions(r: _Reader, default: int, key: str = "max_position_embeddings") -> int:
    return r.number(key, "max_position_embeddings", default)


def _experts_per_token(r: _Reader, experts: int, default: int | None) -> int:
    key = "num_experts_per_tok"
    if not experts:  # no expert is built: every layer keeps a dense MLP
        return 0
    per_token = r.number(key, "num_experts_per_token", default)
    if per_token is None:
        raise EstimateError(r.field(key), "is required for a mixture-of-experts model")
    if per_token > experts:
        raise EstimateError(
            r.field(key), f"{per_token} experts per token is more than the {experts} experts"
        )
    if per_token == 0:
        raise EstimateError(r.field(key), "must be at least 1 for a mixture-of-experts model")
    return per_token


def _qwen_window_layers(r: _Reader, layers: int, default_window: int) -> tuple[int, int]:
    # configuration_qwen2.py / qwen3: a window only with use_sliding_window,
    # on the layers from max_window_layers on
    use = r.flag("use_sliding_window", False)
    window = _window(r, default_window) if use else 0
    first = r.number("max_window_layers", "layer_index", 28)
    sliding = _layer_types(r, layers, lambda i: bool(window) and i >= first)
    return (window if sliding else 0), sliding


# --- Family readers ------------------------------------------------------------------------------
