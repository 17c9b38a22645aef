"""The shape of a model that memory depends on, and its exact parameter count.

Built from manual fields (`architecture_from_fields`) or a Hugging Face `config.json`
(`architecture_from_hf_config`). Pure Python: nothing here imports Django.

For the families in `KNOWN_MODEL_TYPES` the count equals what transformers 5 instantiates
(`sum(p.numel() for p in AutoModelForCausalLM.from_config(cfg).parameters())`, tied weights
once): each family's reader mirrors its `modeling_<family>.py` and the defaults of its
`configuration_<family>.py` for keys a config.json leaves out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypedDict

from calculator.engine.checkpoint import CheckpointFormat, checkpoint_format
from calculator.engine.errors import EstimateError


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

    kind: str  # "gated_deltanet" (Qwen3-Next) or "mamba" (Jamba's Mamba-1 mixer)
    count: int  # layers with such a mixer (none of them has a KV cache)
    conv_dim: int  # channels of the causal depthwise convolution
    conv_kernel: int  # positions of its state (transformers keeps conv_kernel_size, not - 1)
    state_heads: int  # recurrent state: heads x rows x cols
    state_rows: int
    state_cols: int
    # what the prefill scan works on (values per token), for activations
    projection_width: int  # outputs of the input projections (in_proj_qkvz + in_proj_ba, in_proj)
    inner_width: int  # the width entering out_proj (value_dim; Mamba's intermediate_size)

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

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def num_attention_layers(self) -> int:
        """Layers with self-attention, the ones that keep a KV cache."""
        return self.num_layers - (self.state_layers.count if self.state_layers else 0)

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

    @property
    def num_dense_layers(self) -> int:
        return self.num_layers - self.num_moe_layers

    @property
    def num_attention_layers(self) -> int:
        return self.num_layers - (self.mixer.state.count if self.mixer else 0)


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
    expert = _mlp_parameters(h, layout.moe_intermediate_size, True, layout.expert_bias)
    experts = moe_layers * layout.num_experts * expert
    router = layout.num_experts * h + (layout.num_experts if layout.router_bias else 0)
    router += h if layout.shared_expert_gate else 0
    shared = 0
    if layout.shared_expert_intermediate_size:
        shared = _mlp_parameters(h, layout.shared_expert_intermediate_size, True, layout.mlp_bias)
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
            "gate_up_proj",
            h,
            2 * width,
            experts,
            active,
            f"{mlp}.experts.gate_up_proj",
            routed_expert=True,
            lora_all_linear=lora,
            lora_rank_factor=2,
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
        return tuple(layer for layer in layers if layer.lora_all_linear)
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


def _read_llama(r: _Reader) -> _Parsed:
    # configuration_llama.py defaults; modeling_llama.py: attention_bias on q/k/v/o, mlp_bias
    shape = _decoder_shape(r, head_dim=None, kv_heads=None, tied=False)
    attention_bias = r.flag("attention_bias", False)
    layout = _layout(
        shape, qkv_bias=attention_bias, o_bias=attention_bias, mlp_bias=r.flag("mlp_bias", False)
    )
    return _Parsed(layout, max_position_embeddings=_max_positions(r, 2048))


def _read_mistral(r: _Reader) -> _Parsed:
    # configuration_mistral.py: num_key_value_heads 8, sliding_window 4096 on every layer
    shape = _decoder_shape(r, head_dim=None, kv_heads=8, tied=False)
    window = _window(r, 4096)
    return _Parsed(
        _layout(shape),
        sliding_window=window,
        num_sliding_window_layers=shape.num_layers if window else 0,
        max_position_embeddings=_max_positions(r, 131_072),
    )


def _read_mixtral(r: _Reader) -> _Parsed:
    # modeling_mixtral.py: every layer is sparse; experts are intermediate_size wide
    shape = _decoder_shape(r, head_dim=None, kv_heads=8, tied=False)
    experts = r.number(("num_local_experts", "num_experts"), "num_experts", 8)
    window = _window(r, None)
    layout = _layout(
        shape,
        num_moe_layers=shape.num_layers,
        num_experts=experts,
        num_experts_per_token=_experts_per_token(r, experts, 2),
        peft_targets_experts=True,
        moe_intermediate_size=shape.intermediate_size,
    )
    return _Parsed(
        layout,
        sliding_window=window,
        num_sliding_window_layers=shape.num_layers if window else 0,
        max_position_embeddings=_max_positions(r, 131_072),
    )


def _read_qwen2(r: _Reader) -> _Parsed:
    # modeling_qwen2.py: q/k/v always have a bias, o_proj none
    shape = _decoder_shape(r, head_dim=None, kv_heads=32, tied=False)
    window, sliding = _qwen_window_layers(r, shape.num_layers, 4096)
    return _Parsed(
        _layout(shape, qkv_bias=True),
        sliding_window=window,
        num_sliding_window_layers=sliding,
        max_position_embeddings=_max_positions(r, 32_768),
    )


def _sparse_layers(r: _Reader, layers: int, experts: int) -> int:
    # modeling_qwen2_moe.py / qwen3_moe: sparse unless in mlp_only_layers or off the sparse step
    step = r.number("decoder_sparse_step", "layer_period", 1)
    mlp_only = r.config.get("mlp_only_layers") or []
    if not isinstance(mlp_only, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in mlp_only
    ):
        raise EstimateError(r.field("mlp_only_layers"), "must be a list of layer indices")
    dense = set(mlp_only)
    return sum(1 for i in range(layers) if i not in dense and experts > 0 and (i + 1) % step == 0)


def _read_qwen2_moe(r: _Reader) -> _Parsed:
    shape = _decoder_shape(r, head_dim=None, kv_heads=16, tied=False)
    experts = r.number("num_experts", "num_experts", 60)
    layers = shape.num_layers
    # configuration_qwen2_moe.py computes its layer_types differently from qwen2
    use_window = r.flag("use_sliding_window", False)
    window = _window(r, 4096) if use_window else 0
    first = r.number("max_window_layers", "layer_index", 28)
    sliding = _layer_types(r, layers, lambda i: bool(window) and (i + 1) % 2 == 1 and i < first)
    layout = _layout(
        shape,
        qkv_bias=r.flag("qkv_bias", True),
        num_moe_layers=_sparse_layers(r, layers, experts),
        num_experts=experts,
        num_experts_per_token=_experts_per_token(r, experts, 4),
        moe_intermediate_size=r.number("moe_intermediate_size", "moe_intermediate_size", 1408),
        shared_expert_intermediate_size=r.number(
            "shared_expert_intermediate_size", "shared_expert_intermediate_size", 5632
        ),
        shared_expert_gate=True,
        names=_Names(shared_expert="shared_expert"),
    )
    return _Parsed(
        layout,
        sliding_window=window if sliding else 0,
        num_sliding_window_layers=sliding,
        max_position_embeddings=_max_positions(r, 32_768),
    )


def _read_qwen3(r: _Reader) -> _Parsed:
    # modeling_qwen3.py: q_norm and k_norm are RMSNorm(head_dim)
    shape = _decoder_shape(r, head_dim=128, kv_heads=32, tied=False)
    attention_bias = r.flag("attention_bias", False)
    window, sliding = _qwen_window_layers(r, shape.num_layers, 4096)
    layout = _layout(
        shape, qkv_bias=attention_bias, o_bias=attention_bias, qk_norm_parameters=2 * shape.head_dim
    )
    return _Parsed(
        layout,
        sliding_window=window,
        num_sliding_window_layers=sliding,
        max_position_embeddings=_max_positions(r, 32_768),
    )


def _read_qwen3_moe(r: _Reader) -> _Parsed:
    shape = _decoder_shape(r, head_dim=None, kv_heads=4, tied=False)
    experts = r.number(("num_experts", "num_local_experts"), "num_experts", 128)
    attention_bias = r.flag("attention_bias", False)
    # configuration_qwen3_moe.py: with use_sliding_window every layer slides
    window = _window(r, 4096) if r.flag("use_sliding_window", False) else 0
    layout = _layout(
        shape,
        qkv_bias=attention_bias,
        o_bias=attention_bias,
        qk_norm_parameters=2 * shape.head_dim,
        num_moe_layers=_sparse_layers(r, shape.num_layers, experts),
        num_experts=experts,
        num_experts_per_token=_experts_per_token(r, experts, 8),
        peft_targets_experts=True,
        moe_intermediate_size=r.number("moe_intermediate_size", "moe_intermediate_size", 768),
    )
    return _Parsed(
        layout,
        sliding_window=window,
        num_sliding_window_layers=shape.num_layers if window else 0,
        max_position_embeddings=_max_positions(r, 32_768),
    )


def _read_gemma(r: _Reader) -> _Parsed:
    shape = _decoder_shape(r, head_dim=256, kv_heads=16, tied=True)
    attention_bias = r.flag("attention_bias", False)
    layout = _layout(shape, qkv_bias=attention_bias, o_bias=attention_bias)
    return _Parsed(layout, max_position_embeddings=_max_positions(r, 8192))


def _read_gemma2(r: _Reader) -> _Parsed:
    # modeling_gemma2.py: four RMSNorms per layer; configuration: sliding on even layers
    shape = _decoder_shape(r, head_dim=256, kv_heads=4, tied=True)
    attention_bias = r.flag("attention_bias", False)
    window = _window(r, 4096)
    sliding = _layer_types(r, shape.num_layers, lambda i: (i + 1) % 2 == 1) if window else 0
    layout = _layout(shape, qkv_bias=attention_bias, o_bias=attention_bias, norms_per_layer=4)
    return _Parsed(
        layout,
        sliding_window=window if sliding else 0,
        num_sliding_window_layers=sliding,
        max_position_embeddings=_max_positions(r, 8192),
    )


# Gemma3TextConfig defaults, used for the keys a multimodal config's text_config leaves out
_GEMMA3_TEXT_DEFAULTS = {
    "hidden_size": 2304,
    "num_hidden_layers": 26,
    "num_attention_heads": 8,
    "intermediate_size": 9216,
    "vocab_size": 262_208,
}


def _read_gemma3_text(r: _Reader) -> _Parsed:
    # modeling_gemma3.py: four RMSNorms per layer, q_norm/k_norm RMSNorm(head_dim)
    shape = _decoder_shape(r, head_dim=256, kv_heads=4, tied=True)
    attention_bias = r.flag("attention_bias", False)
    window = _window(r, 4096)
    if window and r.flag("use_bidirectional_attention", False):
        window = window // 2 + 1  # configuration_gemma3.py: exclusive bounds
    pattern = r.number("sliding_window_pattern", "layer_period", 6)
    sliding = _layer_types(r, shape.num_layers, lambda i: (i + 1) % pattern != 0) if window else 0
    layout = _layout(
        shape,
        qkv_bias=attention_bias,
        o_bias=attention_bias,
        qk_norm_parameters=2 * shape.head_dim,
        norms_per_layer=4,
    )
    return _Parsed(
        layout,
        sliding_window=window if sliding else 0,
        num_sliding_window_layers=sliding,
        max_position_embeddings=_max_positions(r, 131_072),
    )


def _read_phi(r: _Reader) -> _Parsed:
    # modeling_phi.py: biases everywhere (LM head too), one LayerNorm per layer (parallel block)
    shape = _decoder_shape(r, head_dim=None, kv_heads=None, tied=False)
    qk_norms = 0
    if r.flag("qk_layernorm", False):  # two LayerNorm(hidden // heads), weight and bias
        qk_norms = 2 * 2 * (shape.hidden_size // shape.num_attention_heads)
    layout = _layout(
        shape,
        names=_Names(o="dense", up="fc1", down="fc2"),
        lm_head_bias=True,
        qkv_bias=True,
        o_bias=True,
        qk_norm_parameters=qk_norms,
        mlp_bias=True,
        gated_mlp=False,
        norm_bias=True,
        norms_per_layer=1,
    )
    return _Parsed(layout, max_position_embeddings=_max_positions(r, 2048))


def _read_phi3(r: _Reader) -> _Parsed:
    # modeling_phi3.py: fused qkv_proj and gate_up_proj, no biases; the window is on every layer
    shape = _decoder_shape(r, head_dim=None, kv_heads=None, tied=False)
    window = _window(r, None)
    layout = _layout(shape, names=_Names(qkv="qkv_proj", gate_up="gate_up_proj"))
    return _Parsed(
        layout,
        sliding_window=window,
        num_sliding_window_layers=shape.num_layers if window else 0,
        max_position_embeddings=_max_positions(r, 4096),
    )


def _read_olmo2(r: _Reader) -> _Parsed:
    # modeling_olmo2.py: q_norm/k_norm over all heads; post-attention and post-feedforward norms
    shape = _decoder_shape(r, head_dim=None, kv_heads=None, tied=False)
    attention_bias = r.flag("attention_bias", False)
    qk_norms = (shape.num_attention_heads + shape.num_key_value_heads) * shape.head_dim
    layout = _layout(
        shape, qkv_bias=attention_bias, o_bias=attention_bias, qk_norm_parameters=qk_norms
    )
    return _Parsed(layout, max_position_embeddings=_max_positions(r, 2048))


def _read_starcoder2(r: _Reader) -> _Parsed:
    # modeling_starcoder2.py: use_bias on every projection, LayerNorms, plain c_fc/c_proj MLP
    shape = _decoder_shape(r, head_dim=None, kv_heads=2, tied=True)
    bias = r.flag("use_bias", True)
    window = _window(r, None)
    layout = _layout(
        shape,
        names=_Names(up="c_fc", down="c_proj"),
        qkv_bias=bias,
        o_bias=bias,
        mlp_bias=bias,
        gated_mlp=False,
        norm_bias=True,
    )
    return _Parsed(
        layout,
        sliding_window=window,
        num_sliding_window_layers=shape.num_layers if window else 0,
        max_position_embeddings=_max_positions(r, 4096),
    )


def _read_gpt_oss(r: _Reader) -> _Parsed:
    # modeling_gpt_oss.py: attention biases and sinks, biased router and experts, every layer MoE
    shape = _decoder_shape(r, head_dim=64, kv_heads=8, tied=False)
    experts = r.number(("num_local_experts", "num_experts"), "num_experts", 128)
    attention_bias = r.flag("attention_bias", True)
    window = _window(r, 128)
    sliding = _layer_types(r, shape.num_layers, lambda i: (i + 1) % 2 == 1) if window else 0
    layout = _layout(
        shape,
        qkv_bias=attention_bias,
        o_bias=attention_bias,
        attention_sinks=True,
        num_moe_layers=shape.num_layers,
        num_experts=experts,
        num_experts_per_token=_experts_per_token(r, experts, 4),
        moe_intermediate_size=shape.intermediate_size,
        expert_bias=True,
        router_bias=True,
        names=_Names(router="router"),
    )
    return _Parsed(
        layout,
        sliding_window=window if sliding else 0,
        num_sliding_window_layers=sliding,
        max_position_embeddings=_max_positions(r, 131_072),
    )


def _read_deepseek(r: _Reader, defaults: Mapping[str, Any]) -> _Parsed:
    # modeling_deepseek_v2.py / v3: MLA attention; layers >= first_k_dense_replace are MoE with
    # n_shared_experts x moe_intermediate_size of shared expert (moe_layer_freq is not used)
    shape = _decoder_shape(r, head_dim=None, kv_heads=defaults["kv_heads"], tied=False)
    experts = r.number(("n_routed_experts", "num_experts"), "num_experts", defaults["experts"])
    moe_width = r.number("moe_intermediate_size", "moe_intermediate_size", defaults["moe_width"])
    shared = r.number("n_shared_experts", "num_shared_experts", defaults["shared"])
    first_dense = r.number("first_k_dense_replace", "num_dense_layers", defaults["first_dense"])
    q_lora_rank = 0
    if "q_lora_rank" not in r.config:
        q_lora_rank = 1536
    elif r.has("q_lora_rank"):  # null: queries come straight from q_proj (V2-Lite)
        q_lora_rank = r.number("q_lora_rank", "q_lora_rank")
    kv_lora_rank = r.number("kv_lora_rank", "kv_lora_rank", 512)
    if kv_lora_rank < 1:
        raise EstimateError(r.field("kv_lora_rank"), "must be at least 1 for this family")
    attention_bias = r.flag("attention_bias", False)
    layers = shape.num_layers
    moe_layers = max(layers - first_dense, 0)
    layout = _layout(
        shape,
        qkv_bias=attention_bias,
        o_bias=attention_bias,
        mlp_bias=r.flag("mlp_bias", False) if defaults["reads_mlp_bias"] else False,
        q_lora_rank=q_lora_rank,
        kv_lora_rank=kv_lora_rank,
        qk_rope_head_dim=r.number("qk_rope_head_dim", "qk_rope_head_dim", 64),
        qk_nope_head_dim=r.number("qk_nope_head_dim", "qk_nope_head_dim", 128),
        v_head_dim=r.number("v_head_dim", "v_head_dim", 128),
        num_moe_layers=moe_layers,
        num_experts=experts,
        num_experts_per_token=_experts_per_token(r, experts, defaults["per_token"]),
        peft_targets_experts=True,
        moe_intermediate_size=moe_width,
        shared_expert_intermediate_size=shared * moe_width,
    )
    return _Parsed(layout, max_position_embeddings=_max_positions(r, defaults["positions"]))


def _read_deepseek_v2(r: _Reader) -> _Parsed:
    defaults = {
        "kv_heads": None,
        "experts": 64,
        "moe_width": 1407,
        "shared": 2,
        "first_dense": 0,
        "per_token": None,
        "reads_mlp_bias": True,  # DeepseekV2MLP(bias=config.mlp_bias)
        "positions": 2048,
    }
    return _read_deepseek(r, defaults)


def _read_deepseek_v3(r: _Reader) -> _Parsed:
    if r.has("num_nextn_predict_layers"):
        r.notes.append(
            "num_nextn_predict_layers: transformers does not build the multi-token-prediction "
            "module, so its weights are not counted"
        )
    defaults = {
        "kv_heads": 128,
        "experts": 256,
        "moe_width": 2048,
        "shared": 1,
        "first_dense": 3,
        "per_token": 8,
        "reads_mlp_bias": False,  # DeepseekV3MLP: bias=False
        "positions": 4096,
    }
    return _read_deepseek(r, defaults)


def _hybrid_state_layers(
    r: _Reader, layers: int, state_kind: str, computed: Callable[[int], bool]
) -> int:
    """Layers with a fixed-state mixer: config `layer_types` entries `state_kind` (the others
    "full_attention"), else as the family's config class computes them."""
    if not r.has("layer_types"):
        return sum(1 for i in range(layers) if computed(i))
    layer_types = r.config["layer_types"]
    kinds = ("full_attention", state_kind)
    if not isinstance(layer_types, list) or not all(t in kinds for t in layer_types):
        raise EstimateError(r.field("layer_types"), f"must be a list of {' / '.join(kinds)}")
    if len(layer_types) != layers:
        raise EstimateError(
            r.field("layer_types"),
            f"has {len(layer_types)} entries for {layers} layers (num_hidden_layers)",
        )
    return layer_types.count(state_kind)


def _read_qwen3_next(r: _Reader) -> _Parsed:
    # configuration_qwen3_next.py (transformers 5.24) defaults and layer_types: "full_attention"
    # on every full_attention_interval-th layer, Gated DeltaNet ("linear_attention") elsewhere
    shape = _decoder_shape(r, head_dim=256, kv_heads=2, tied=False)
    layers, h = shape.num_layers, shape.hidden_size
    interval = r.number("full_attention_interval", "layer_period", 4)
    linear = _hybrid_state_layers(r, layers, "linear_attention", lambda i: bool((i + 1) % interval))
    # modeling_qwen3_next.py Qwen3NextGatedDeltaNet
    k_heads = r.number("linear_num_key_heads", "num_attention_heads", 16)
    v_heads = r.number("linear_num_value_heads", "num_attention_heads", 32)
    k_dim = r.number("linear_key_head_dim", "head_dim", 128)
    v_dim = r.number("linear_value_head_dim", "head_dim", 128)
    kernel = r.number("linear_conv_kernel_dim", "conv_kernel", 4)
    if v_heads % k_heads:
        raise EstimateError(
            r.field("linear_num_key_heads"),
            f"{k_heads} key heads must divide the {v_heads} value heads evenly",
        )
    key_dim, value_dim = k_heads * k_dim, v_heads * v_dim
    conv_dim = 2 * key_dim + value_dim  # q, k and v go through the convolution
    qkvz, ba = 2 * key_dim + 2 * value_dim, 2 * v_heads
    mixer = _Mixer(
        path="model.layers.*.linear_attn",
        linears=(("in_proj_qkvz", h, qkvz, False), ("in_proj_ba", h, ba, False))
        + (("out_proj", value_dim, h, False),),
        # conv1d (depthwise, bias=False), dt_bias and A_log per value head, RMSNormGated(v_dim)
        other=conv_dim * kernel + 2 * v_heads + v_dim,
        state=StateLayers(
            kind="gated_deltanet",
            count=linear,
            conv_dim=conv_dim,
            conv_kernel=kernel,
            # torch_chunk_gated_delta_rule: (batch, num_v_heads, k_head_dim, v_head_dim)
            state_heads=v_heads,
            state_rows=k_dim,
            state_cols=v_dim,
            projection_width=qkvz + ba,
            inner_width=value_dim,
        ),
    )
    experts = r.number("num_experts", "num_experts", 512)
    attention_bias = r.flag("attention_bias", False)
    layout = _layout(
        shape,
        qkv_bias=attention_bias,
        o_bias=attention_bias,
        qk_norm_parameters=2 * shape.head_dim,
        attention_output_gate=True,  # Qwen3NextAttention: q_proj is heads x head_dim x 2 wide
        num_moe_layers=_sparse_layers(r, layers, experts),
        num_experts=experts,
        num_experts_per_token=_experts_per_token(r, experts, 10),
        moe_intermediate_size=r.number("moe_intermediate_size", "moe_intermediate_size", 512),
        shared_expert_intermediate_size=r.number(
            "shared_expert_intermediate_size", "shared_expert_intermediate_size", 512
        ),
        shared_expert_gate=True,
        # conversion_mapping.py maps qwen3_next onto the qwen2_moe pattern, which PEFT converts
        peft_targets_experts=True,
        names=_Names(shared_expert="shared_expert"),
        mixer=mixer,
    )
    return _Parsed(layout, max_position_embeddings=_max_positions(r, 32_768))


def _read_jamba(r: _Reader) -> _Parsed:
    # configuration_jamba.py (transformers 5.24): attention where i % attn_layer_period ==
    # attn_layer_offset, Mamba elsewhere; experts where i % expert_layer_period ==
    # expert_layer_offset (a dense JambaMLP elsewhere)
    shape = _decoder_shape(r, head_dim=None, kv_heads=8, tied=False)
    layers, h = shape.num_layers, shape.hidden_size
    attention_period = r.number("attn_layer_period", "layer_period", 8)
    attention_offset = r.number("attn_layer_offset", "layer_index", 4)
    expert_period = r.number("expert_layer_period", "layer_period", 2)
    expert_offset = r.number("expert_layer_offset", "layer_index", 1)
    for key, offset, period in (
        ("attn_layer_offset", attention_offset, attention_period),
        ("expert_layer_offset", expert_offset, expert_period),
    ):
        if offset >= period:
            raise EstimateError(r.field(key), f"{offset} must be smaller than its period {period}")
    mamba_layers = sum(1 for i in range(layers) if i % attention_period != attention_offset)
    experts = r.number("num_experts", "num_experts", 16)
    moe_layers = sum(1 for i in range(layers) if i % expert_period == expert_offset)
    # modeling_jamba.py JambaMambaMixer (Mamba-1 with dt/B/C RMSNorms)
    state_size = r.number("mamba_d_state", "state_size", 16)
    kernel = r.number("mamba_d_conv", "conv_kernel", 4)
    inner = r.number("mamba_expand", "expand", 2) * h
    dt_rank = math.ceil(h / 16)
    if r.config.get("mamba_dt_rank", "auto") != "auto":
        dt_rank = r.number("mamba_dt_rank", "state_size")
    conv_bias = r.flag("mamba_conv_bias", True)
    proj_bias = r.flag("mamba_proj_bias", False)
    mixer = _Mixer(
        path="model.layers.*.mamba",
        linears=(
            ("in_proj", h, 2 * inner, proj_bias),
            ("x_proj", inner, dt_rank + 2 * state_size, False),
            ("dt_proj", dt_rank, inner, True),
            ("out_proj", inner, h, proj_bias),
        ),
        # conv1d (depthwise, its bias), A_log (inner x state), D, dt/B/C RMSNorms
        other=inner * kernel
        + (inner if conv_bias else 0)
        + inner * state_size
        + inner
        + dt_rank
        + 2 * state_size,
        state=StateLayers(
            kind="mamba",
            count=mamba_layers,
            conv_dim=inner,
            conv_kernel=kernel,
            # mamba_selective_scan: ssm_state (batch, intermediate_size, ssm_state_size)
            state_heads=1,
            state_rows=inner,
            state_cols=state_size,
            projection_width=2 * inner,
            inner_width=inner,
        ),
    )
    layout = _layout(
        shape,
        names=_Names(
            attention="model.layers.*.self_attn", mlp="model.layers.*.feed_forward", router="router"
        ),
        num_moe_layers=moe_layers if experts > 1 else 0,
        num_experts=experts if experts > 1 else 0,
        num_experts_per_token=_experts_per_token(r, experts, 2) if experts > 1 else 0,
        moe_intermediate_size=shape.intermediate_size,
        mixer=mixer,
    )
    return _Parsed(layout, max_position_embeddings=_max_positions(r, 262_144))


def _read_falcon(r: _Reader) -> _Parsed:
    # configuration_falcon.py / modeling_falcon.py: fused query_key_value, LayerNorms, ffn 4h
    hidden = r.number(("hidden_size", "n_embed"), "hidden_size")
    layers = r.number("num_hidden_layers", "num_layers")
    heads = r.number("num_attention_heads", "num_attention_heads")
    head_dim = _divided_head_dim(r, hidden, heads, "num_attention_heads")  # a property
    new_architecture = r.flag("new_decoder_architecture", False)
    if new_architecture:
        kv_heads = _key_value_heads(r, heads, "num_kv_heads", None)
    elif r.flag("multi_query", True):
        kv_heads = 1
    else:
        kv_heads = heads
    if r.flag("parallel_attn", True):
        ln_count = r.number("num_ln_in_parallel_attn", "layer_period", 2 if new_architecture else 1)
        norms_per_layer = 2 if ln_count == 2 else 1
    else:
        norms_per_layer = 2
    bias = r.flag("bias", False)
    width = r.number("ffn_hidden_size", "intermediate_size", 4 * hidden)
    layout = _Layout(
        hidden_size=hidden,
        num_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=width,
        vocab_size=r.number("vocab_size", "vocab_size"),
        tie_word_embeddings=_tied(r, True),
        names=_Names(
            attention="transformer.h.*.self_attention",
            mlp="transformer.h.*.mlp",
            qkv="query_key_value",
            o="dense",
            up="dense_h_to_4h",
            down="dense_4h_to_h",
        ),
        qkv_bias=bias,
        o_bias=bias,
        mlp_bias=bias,
        gated_mlp=False,
        norm_bias=True,
        norms_per_layer=norms_per_layer,
    )
    return _Parsed(layout, max_position_embeddings=_max_positions(r, 2048))


def _gpt2_layout(r: _Reader, multi_query: bool) -> tuple[_Layout, int]:
    """GPT-2's layout (Conv1D/Linear c_attn, c_proj, c_fc with biases, learned positions wpe,
    LayerNorms, tied head), with one key/value head when `multi_query` (gpt_bigcode)."""
    hidden = r.number(("n_embd", "hidden_size"), "hidden_size")
    heads = r.number(("n_head", "num_attention_heads"), "num_attention_heads")
    heads_key = r.find(("n_head", "num_attention_heads")) or "n_head"
    head_dim = _divided_head_dim(r, hidden, heads, heads_key)
    positions = r.number(
        ("n_positions", "max_position_embeddings"), "max_position_embeddings", 1024
    )
    layout = _Layout(
        hidden_size=hidden,
        num_layers=r.number(("n_layer", "num_hidden_layers"), "num_layers"),
        num_attention_heads=heads,
        num_key_value_heads=1 if multi_query else heads,
        head_dim=head_dim,
        intermediate_size=r.number("n_inner", "intermediate_size", 4 * hidden),
        vocab_size=r.number("vocab_size", "vocab_size"),
        tie_word_embeddings=_tied(r, True),
        names=_Names(
            attention="transformer.h.*.attn",
            mlp="transformer.h.*.mlp",
            qkv="c_attn",
            o="c_proj",
            up="c_fc",
            down="c_proj",
        ),
        position_embeddings=positions,
        qkv_bias=True,
        o_bias=True,
        mlp_bias=True,
        gated_mlp=False,
        norm_bias=True,
    )
    return layout, positions


def _read_gpt2(r: _Reader) -> _Parsed:
    # modeling_gpt2.py: Conv1D c_attn/c_proj/c_fc with biases, learned positions (wpe), LayerNorms
    exact = True
    if r.flag("add_cross_attention", False):
        r.notes.append("add_cross_attention: the cross-attention blocks are not counted")
        exact = False
    layout, positions = _gpt2_layout(r, multi_query=False)
    return _Parsed(layout, max_position_embeddings=positions, exact=exact)


def _read_gpt_bigcode(r: _Reader) -> _Parsed:
    # modeling_gpt_bigcode.py: GPT-2's layout with nn.Linear layers and multi-query attention:
    # c_attn is hidden -> hidden + 2 x head_dim when multi_query (GPTBigCodeConfig default True)
    layout, positions = _gpt2_layout(r, multi_query=r.flag("multi_query", True))
    return _Parsed(layout, max_position_embeddings=positions)


def _read_gpt_neox(r: _Reader) -> _Parsed:
    # modeling_gpt_neox.py: fused query_key_value (3 x hidden), attention_bias, biased MLP
    hidden = r.number("hidden_size", "hidden_size")
    heads = r.number("num_attention_heads", "num_attention_heads")
    head_dim = _divided_head_dim(r, hidden, heads, "num_attention_heads")
    attention_bias = r.flag("attention_bias", True)
    layout = _Layout(
        hidden_size=hidden,
        num_layers=r.number("num_hidden_layers", "num_layers"),
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=head_dim,
        intermediate_size=r.number("intermediate_size", "intermediate_size"),
        vocab_size=r.number("vocab_size", "vocab_size"),
        tie_word_embeddings=_tied(r, False),
        names=_Names(
            attention="gpt_neox.layers.*.attention",
            mlp="gpt_neox.layers.*.mlp",
            qkv="query_key_value",
            o="dense",
            up="dense_h_to_4h",
            down="dense_4h_to_h",
        ),
        qkv_bias=attention_bias,
        o_bias=attention_bias,
        mlp_bias=True,
        gated_mlp=False,
        norm_bias=True,
    )
    return _Parsed(layout, max_position_embeddings=_max_positions(r, 2048))


_READERS: dict[str, Callable[[_Reader], _Parsed]] = {
    "llama": _read_llama,
    "mistral": _read_mistral,
    "mixtral": _read_mixtral,
    "qwen2": _read_qwen2,
    "qwen2_moe": _read_qwen2_moe,
    "qwen3": _read_qwen3,
    "qwen3_moe": _read_qwen3_moe,
    "gemma": _read_gemma,
    "gemma2": _read_gemma2,
    "gemma3_text": _read_gemma3_text,
    "phi": _read_phi,
    "phi3": _read_phi3,
    "falcon": _read_falcon,
    "gpt2": _read_gpt2,
    "gpt_bigcode": _read_gpt_bigcode,
    "gpt_neox": _read_gpt_neox,
    "starcoder2": _read_starcoder2,
    "olmo2": _read_olmo2,
    "deepseek_v2": _read_deepseek_v2,
    "deepseek_v3": _read_deepseek_v3,
    "gpt_oss": _read_gpt_oss,
    "qwen3_next": _read_qwen3_next,
    "jamba": _read_jamba,
}

# Families counted exactly, plus "gemma3" (multimodal: its text_config is read)
KNOWN_MODEL_TYPES: tuple[str, ...] = (*_READERS, "gemma3")


# --- Generic (unknown family, manual entry) ------------------------------------------------------

_GENERIC_KEYS = {
    "hidden_size": ("hidden_size", "n_embd", "d_model", "n_embed", "dim"),
    "num_layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "num_attention_heads": ("num_attention_heads", "n_head", "num_heads", "n_heads"),
    "num_key_value_heads": ("num_key_value_heads", "num_kv_heads", "n_kv_heads"),
    "intermediate_size": ("intermediate_size", "ffn_dim", "n_inner", "ffn_hidden_size", "d_ff"),
    "vocab_size": ("vocab_size", "padded_vocab_size", "n_vocab"),
    "num_experts": ("num_local_experts", "num_experts", "n_routed_experts"),
    "moe_intermediate_size": ("moe_intermediate_size",),
}


_REQUIRED_GENERIC = (
    "hidden_size",
    "num_layers",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
)


def _read_generic(r: _Reader) -> _Parsed:
    """A config.json of an unknown family: llama-like layout from its generic fields."""
    missing = [
        _GENERIC_KEYS[name][0] for name in _REQUIRED_GENERIC if r.find(_GENERIC_KEYS[name]) is None
    ]
    if missing:
        raise EstimateError(
            r.field(missing[0]),
            f"unknown model_type {r.family!r} and no {', '.join(missing)} in config.json: "
            "enter the architecture by hand",
        )
    hidden = r.number(_GENERIC_KEYS["hidden_size"], "hidden_size")
    layers = r.number(_GENERIC_KEYS["num_layers"], "num_layers")
    heads_keys = _GENERIC_KEYS["num_attention_heads"]
    heads = r.number(heads_keys, "num_attention_heads")
    kv_key = r.find(_GENERIC_KEYS["num_key_value_heads"]) or "num_key_value_heads"
    kv_heads = _key_value_heads(r, heads, kv_key, None)
    head_dim = _head_dim(r, hidden, heads, r.find(heads_keys) or heads_keys[0], None)
    width = r.number(_GENERIC_KEYS["intermediate_size"], "intermediate_size")
    experts = r.number(_GENERIC_KEYS["num_experts"], "num_experts", 0)
    per_token = _experts_per_token(r, experts, 0) if experts else 0
    tied = r.flag("tie_word_embeddings", False)
    if not r.has("tie_word_embeddings"):
        r.notes.append("tie_word_embeddings not in config.json: LM head assumed separate")
    layout = _Layout(
        hidden_size=hidden,
        num_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=width,
        vocab_size=r.number(_GENERIC_KEYS["vocab_size"], "vocab_size"),
        tie_word_embeddings=tied,
        num_moe_layers=layers if experts else 0,
        num_experts=experts,
        num_experts_per_token=per_token,
        peft_targets_experts=True,  # as for Mixtral, the llama-like MoE
        moe_intermediate_size=r.number(
            _GENERIC_KEYS["moe_intermediate_size"], "moe_intermediate_size", width
        )
        if experts
        else 0,
    )
    window = _window(r, None)
    return _Parsed(
        layout,
        sliding_window=window,
        num_sliding_window_layers=layers if window else 0,
        max_position_embeddings=_max_positions(r, 0),
        exact=False,
    )


# --- Assembling ----------------------------------------------------------------------------------


def _default_dtype(r: _Reader, outer: Mapping[str, Any] | None = None) -> str:
    for source in (r.config, outer or {}):
        for key in ("dtype", "torch_dtype"):
            value = source.get(key)
            if value is None:
                continue
            name = _DTYPE_ALIASES.get(str(value).removeprefix("torch."))
            if name is None:
                r.notes.append(
                    f"{key} {_describe(value)} is not float32/float16/bfloat16: "
                    f"assuming {DEFAULT_DTYPE}"
                )
                return DEFAULT_DTYPE
            return name
    return DEFAULT_DTYPE


@dataclass(frozen=True)
class _Behaviour:
    """What the family's modeling code does that changes activations (not parameters)."""

    final_logit_softcapping: float = 0.0
    hidden_act: str = "silu"
    eager_softmax_float32: bool = True
    eager_score_copies: int = 0
    eager_probabilities_carried: int = 0
    router_float32: bool = False


# config key of the MLP activation and the config class's default, per family (configuration_*.py)
_ACTIVATION_KEYS: dict[str, tuple[str, str]] = {
    "gpt2": ("activation_function", "gelu_new"),  # GPT2Config
    "gpt_bigcode": ("activation_function", "gelu_pytorch_tanh"),  # GPTBigCodeConfig
    "phi": ("hidden_act", "gelu_new"),  # PhiConfig
    "falcon": ("activation", "gelu"),  # FalconConfig
    "gpt_neox": ("hidden_act", "gelu"),  # GPTNeoXConfig
    "gemma": ("hidden_act", "gelu_pytorch_tanh"),  # GemmaConfig
    "gemma2": ("hidden_activation", "gelu_pytorch_tanh"),  # Gemma2Config
    "gemma3_text": ("hidden_activation", "gelu_pytorch_tanh"),  # Gemma3TextConfig
    "starcoder2": ("hidden_act", "gelu_pytorch_tanh"),  # Starcoder2Config
}
# final_logit_softcapping defaults: Gemma2Config 30.0, Gemma3TextConfig None
_SOFTCAP_DEFAULTS = {"gemma2": 30.0, "gemma3_text": 0.0}
# Eager attention without a float32 softmax upcast, and the score-sized (batch x heads x seq x
# seq) compute-dtype tensors alive at once while it runs (transformers 5.24 modeling code; each
# temporary is freed when its last reference goes, as CPython frees on reassignment):
_COMPUTE_DTYPE_SOFTMAX: dict[str, int] = {
    # modeling_gpt2.py eager_attention_forward, lines 59-67: `attn_weights = torch.matmul(query,
    # key.transpose(-1, -2)) * scaling` (the product lives while the scaled copy is made, then
    # goes), `attn_weights = attn_weights + attention_mask` (a new tensor, the old one freed on
    # reassignment), `softmax(attn_weights, dim=-1)` (its input lives until it returns),
    # `.type(value.dtype)` (no copy in the compute dtype): two at most (the default path;
    # reorder_and_upcast_attn, off in GPT-2's configs, takes another). Measured:
    # gpt2-infer-b2-s1024-bf16-eager, where counting three put the estimate 23 % high
    "gpt2": 2,
    # modeling_falcon.py FalconAttention.forward, lines 349-352 (rotary path, alibi False as in
    # falcon-7b/40b/180b): `attention_scores = query_layer @ key_layer.transpose(-1, -2)`,
    # `attention_scores /= math.sqrt(self.head_dim)` (in place), `F.softmax(attention_scores +
    # attention_mask, dim=-1, dtype=hidden_states.dtype)`: the scores, the masked temporary and
    # the probabilities
    "falcon": 3,
}
# Score-sized probabilities of the previous layer still alive during a layer's eager attention.
# modeling_falcon.py: FalconAttention returns `attn_output, attention_scores` (line 362, the
# probabilities), FalconDecoderLayer.forward returns `output, attn_weights` (line 623) even when
# output_attentions is off, and FalconModel.forward's loop keeps `outputs = block(...)` (lines
# 791-802) until the next layer's call returns. GPT-2 and the eager_attention_forward families
# drop them in the decoder layer (`attn_output, _ = self.attn(...)`, returning hidden states
# only), so nothing crosses a layer there. Measured: falcon-infer-b4-s1024-bf16-eager, 14.5 %
# under the measured peak with one layer's working set only
_CARRIED_PROBABILITIES: dict[str, int] = {"falcon": 1}
# modeling_deepseek_v2.py / v3: _keep_in_fp32_modules_strict = ["gate.weight", ...]
_FLOAT32_ROUTER = ("deepseek_v2", "deepseek_v3")


def _behaviour(r: _Reader, family: str) -> _Behaviour:
    key, default = _ACTIVATION_KEYS.get(family, ("hidden_act", "silu"))
    activation = r.config.get(key)
    if activation is None:
        activation = default
    if not isinstance(activation, str) or len(activation) > MAX_MODEL_TYPE_LENGTH:
        raise EstimateError(r.field(key), "must be an activation function name")
    softcap = 0.0
    if family in _SOFTCAP_DEFAULTS:
        value = r.config.get("final_logit_softcapping", _SOFTCAP_DEFAULTS[family])
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise EstimateError(r.field("final_logit_softcapping"), "must be a number")
            if not math.isfinite(value) or value < 0:
                raise EstimateError(
                    r.field("final_logit_softcapping"), "must be a finite number >= 0"
                )
            softcap = float(value)
    return _Behaviour(
        final_logit_softcapping=softcap,
        hidden_act=activation,
        eager_softmax_float32=family not in _COMPUTE_DTYPE_SOFTMAX,
        eager_score_copies=_COMPUTE_DTYPE_SOFTMAX.get(family, 0),
        eager_probabilities_carried=_CARRIED_PROBABILITIES.get(family, 0),
        router_float32=family in _FLOAT32_ROUTER,
    )


def _architecture(
    model_type: str,
    parsed: _Parsed,
    default_dtype: str,
    field: str,
    behaviour: _Behaviour = _Behaviour(),  # noqa: B008 - frozen, shared safely
) -> Architecture:
    layout = parsed.layout
    breakdown = _count(layout)
    total = breakdown.total
    if total > MAX_PARAMETERS:
        raise EstimateError(
            field, f"describes {total:,} parameters, more than the limit of {MAX_PARAMETERS:,}"
        )
    is_mla = layout.kv_lora_rank > 0
    head_dim = layout.qk_nope_head_dim + layout.qk_rope_head_dim if is_mla else layout.head_dim
    return Architecture(
        model_type=model_type,
        hidden_size=layout.hidden_size,
        num_layers=layout.num_layers,
        num_attention_heads=layout.num_attention_heads,
        num_key_value_heads=layout.num_key_value_heads,
        head_dim=head_dim,
        intermediate_size=layout.intermediate_size,
        vocab_size=layout.vocab_size,
        tie_word_embeddings=layout.tie_word_embeddings,
        gated_mlp=layout.gated_mlp,
        num_experts=layout.num_experts if layout.num_moe_layers else 0,
        num_experts_per_token=layout.num_experts_per_token if layout.num_moe_layers else 0,
        num_shared_experts=_shared_expert_count(layout),
        moe_intermediate_size=layout.moe_intermediate_size if layout.num_moe_layers else 0,
        num_dense_layers=layout.num_dense_layers if layout.num_moe_layers else 0,
        q_lora_rank=layout.q_lora_rank,
        kv_lora_rank=layout.kv_lora_rank,
        qk_rope_head_dim=layout.qk_rope_head_dim,
        qk_nope_head_dim=layout.qk_nope_head_dim,
        v_head_dim=layout.v_head_dim,
        sliding_window=parsed.sliding_window if parsed.num_sliding_window_layers else 0,
        num_sliding_window_layers=parsed.num_sliding_window_layers if parsed.sliding_window else 0,
        max_position_embeddings=parsed.max_position_embeddings,
        default_dtype=default_dtype,
        num_parameters=total,
        num_active_parameters=breakdown.active,
        parameters_exact=parsed.exact,
        parameters=breakdown,
        linear_layers=_linear_layers(layout),
        shared_expert_intermediate_size=layout.shared_expert_intermediate_size
        if layout.num_moe_layers
        else 0,
        final_logit_softcapping=behaviour.final_logit_softcapping,
        hidden_act=behaviour.hidden_act,
        eager_softmax_float32=behaviour.eager_softmax_float32,
        eager_score_copies=behaviour.eager_score_copies,
        eager_probabilities_carried=behaviour.eager_probabilities_carried,
        layer_norm=layout.norm_bias,
        router_float32=behaviour.router_float32,
        state_layers=layout.mixer.state if layout.mixer else None,
    )


def _shared_expert_count(layout: _Layout) -> int:
    if not layout.num_moe_layers or not layout.shared_expert_intermediate_size:
        return 0
    if layout.shared_expert_gate:  # Qwen2-MoE: one shared expert of its own width
        return 1
    return layout.shared_expert_intermediate_size // max(layout.moe_intermediate_size, 1)


def architecture_from_hf_config(config: Mapping[str, Any]) -> tuple[Architecture, list[str]]:
    """The Architecture a Hugging Face config.json describes, and notes on what was assumed.

    Raises EstimateError naming the offending "model.hf_config.<key>".
    """
    if not isinstance(config, Mapping):
        raise EstimateError(HF_PREFIX, "must be a config.json object")
    notes: list[str] = []
    model_type = config.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise EstimateError(f"{HF_PREFIX}.model_type", "must be a string")
    outer: Mapping[str, Any] | None = None
    prefix = HF_PREFIX
    fallback: Mapping[str, Any] | None = None
    text_config = config.get("text_config")
    if model_type == "gemma3" or (model_type not in _READERS and text_config is not None):
        if not isinstance(text_config, Mapping):
            raise EstimateError(f"{HF_PREFIX}.text_config", "must be an object")
        outer, config, prefix = config, text_config, f"{HF_PREFIX}.text_config"
        inner_type = text_config.get("model_type")
        if model_type == "gemma3":
            inner_type = "gemma3_text"
            fallback = _GEMMA3_TEXT_DEFAULTS
        if model_type != "gemma3":
            notes.append(
                f"{model_type or 'this'} config is multimodal: counted its text_config "
                f"({inner_type or 'unknown model_type'}); the vision tower and projector are "
                "not counted"
            )
        model_type = inner_type if isinstance(inner_type, str) else None
    reader = _READERS.get(model_type) if model_type else None
    family = model_type or "unknown"
    r = _Reader(config, prefix, notes, family, fallback)
    if reader is None:
        unknown = f"Unknown model_type {model_type!r}" if model_type else "No model_type"
        notes.append(
            f"{unknown}: counted from its generic fields (llama-like layout assumed), "
            "so the parameter count is an estimate"
        )
        parsed = _read_generic(r)
        family = "custom" if model_type is None else model_type
    else:
        parsed = reader(r)
    quantization = (outer or {}).get("quantization_config") or config.get("quantization_config")
    checkpoint = checkpoint_format(quantization)
    if checkpoint is not None:
        notes += checkpoint.notes
    behaviour = _behaviour(r, family)
    architecture = _architecture(family, parsed, _default_dtype(r, outer), prefix, behaviour)
    if checkpoint is not None:
        architecture = replace(architecture, checkpoint=checkpoint)
    if outer is not None and outer.get("model_type") == "gemma3":
        architecture = _with_gemma3_vision(architecture, outer, notes)
    return architecture, notes


# SiglipVisionConfig's defaults (transformers models/siglip/configuration_siglip.py) for the keys
# a Gemma 3 vision_config leaves out
_SIGLIP_DEFAULTS = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_channels": 3,
    "image_size": 224,
    "patch_size": 16,
}
GEMMA3_TOKENS_PER_IMAGE = 256  # Gemma3Config mm_tokens_per_image


def siglip_vision_parameters(vision: Mapping[str, Any]) -> int:
    """SiglipVisionModel's parameters (transformers models/siglip/modeling_siglip.py): the patch
    convolution (with bias), one learned position per patch, per layer q/k/v/out projections
    with biases, two LayerNorms and a two-layer MLP with biases, and the post LayerNorm (no
    pooling head: Gemma 3's vision_use_head is false)."""
    values = {name: vision.get(name, default) for name, default in _SIGLIP_DEFAULTS.items()}
    for name, value in values.items():
        if type(value) is not int or not 0 < value <= 1_000_000:
            raise EstimateError(f"{HF_PREFIX}.vision_config.{name}", "must be a positive integer")
    h, width, layers = (
        values["hidden_size"],
        values["intermediate_size"],
        values["num_hidden_layers"],
    )
    patch, channels = values["patch_size"], values["num_channels"]
    patches = (values["image_size"] // patch) ** 2
    embeddings = channels * patch * patch * h + h + patches * h
    per_layer = 4 * (h * h + h) + 2 * 2 * h + (h * width + width) + (width * h + h)
    head = 0
    if vision.get("vision_use_head", True):
        # SiglipMultiheadAttentionPoolingHead: a probe, nn.MultiheadAttention, a LayerNorm, an MLP
        head = h + (3 * h * h + 3 * h) + (h * h + h) + 2 * h + (h * width + width) + (width * h + h)
    return embeddings + layers * per_layer + 2 * h + head


def _with_gemma3_vision(
    architecture: Architecture, outer: Mapping[str, Any], notes: list[str]
) -> Architecture:
    """Gemma 3's whole multimodal model: the SigLIP tower and the projector counted beside the
    text model (Gemma3ForConditionalGeneration, as its safetensors hold them)."""
    vision = outer.get("vision_config") or {}
    if not isinstance(vision, Mapping):
        raise EstimateError(f"{HF_PREFIX}.vision_config", "must be an object")
    tower = siglip_vision_parameters(vision)
    width = vision.get("hidden_size", _SIGLIP_DEFAULTS["hidden_size"])
    # Gemma3MultiModalProjector: mm_input_projection_weight (vision width x text width) and
    # mm_soft_emb_norm (an RMSNorm of the vision width)
    projector = width * architecture.hidden_size + width
    counts = architecture.parameters
    assert counts is not None
    tokens = outer.get("mm_tokens_per_image", GEMMA3_TOKENS_PER_IMAGE)
    notes.append(
        f"Multimodal (Gemma 3): the SigLIP vision tower ({tower:,} parameters) and projector "
        f"({projector:,}) are in the weights, 16-bit; each image takes {tokens} tokens of the "
        "sequence length; the tower's activations (once per image) are not added"
    )
    return replace(
        architecture,
        parameters=replace(counts, vision=tower + projector),
        num_parameters=architecture.num_parameters + tower + projector,
    )


def architecture_from_fields(fields: Mapping[str, Any]) -> tuple[Architecture, list[str]]:
    """The Architecture of manually entered fields (the contract's "architecture" names).

    Raises EstimateError naming the offending "model.architecture.<name>".
    """
    if not isinstance(fields, Mapping):
        raise EstimateError(FIELDS_PREFIX, "must be an object of architecture fields")
    unknown = sorted(str(key) for key in fields if key not in ARCHITECTURE_FIELDS)
    if unknown:
        raise EstimateError(
            f"{FIELDS_PREFIX}.{unknown[0]}",
            f"unknown field; the architecture takes {', '.join(ARCHITECTURE_FIELDS)}",
        )
    notes: list[str] = []
    r = _Reader(fields, FIELDS_PREFIX, notes, "custom")
    hidden = r.number("hidden_size", "hidden_size")
    layers = r.number("num_layers", "num_layers")
    heads = r.number("num_attention_heads", "num_attention_heads")
    kv_heads = _key_value_heads(r, heads, "num_key_value_heads", None)
    head_dim = _head_dim(r, hidden, heads, "num_attention_heads", None)
    entered = r.number("num_parameters", "num_parameters", None)
    width = r.number("intermediate_size", "intermediate_size", None)
    vocab = r.number("vocab_size", "vocab_size", None)
    model_type = _model_type(r)
    moe = _manual_moe(r, layers)
    # a width left out is taken from num_parameters (see _inferred_width); moe_intermediate_size
    # falls back to intermediate_size (Mixtral), and intermediate_size to it when no layer is dense
    moe_width = moe.get("moe_intermediate_size") or width or 0
    dense_width = width or (moe_width if moe.get("num_dense_layers") == 0 else 0)
    if entered is None:
        if vocab is None:
            raise EstimateError(
                r.field("vocab_size"), "is required to count the parameters without num_parameters"
            )
        if not dense_width or (moe and not moe_width):
            raise EstimateError(
                r.field("intermediate_size"),
                "is required to count the parameters without num_parameters",
            )
    shared_width = moe.get("shared_expert_intermediate_size")
    num_shared = moe.get("num_shared_experts", 0)
    tied = r.flag("tie_word_embeddings", False)
    gated = r.flag("gated_mlp", True)
    mla = _manual_mla(r)

    def layout_with(unknown_width: int) -> _Layout:
        expert_width = moe_width or unknown_width
        return _Layout(
            hidden_size=hidden,
            num_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            head_dim=head_dim,
            intermediate_size=dense_width or unknown_width,
            vocab_size=vocab or 0,
            tie_word_embeddings=tied,
            gated_mlp=gated,
            num_moe_layers=layers - moe.get("num_dense_layers", layers),
            num_experts=moe.get("num_experts", 0),
            num_experts_per_token=moe.get("num_experts_per_token", 0),
            peft_targets_experts=True,  # as for Mixtral, the llama-like MoE
            moe_intermediate_size=expert_width if moe else 0,
            shared_expert_intermediate_size=num_shared * expert_width
            if shared_width is None
            else shared_width,
            **mla,
        )

    if entered is not None and (not dense_width or (moe and not moe_width)):
        layout = _inferred_width(r, layout_with, entered)
        inferred = (
            layout.moe_intermediate_size if moe and not moe_width else layout.intermediate_size
        )
        notes.append(f"MLP width inferred from num_parameters: {inferred:,}")
    else:
        layout = layout_with(0)
    parsed = _Parsed(
        layout,
        **_manual_window(r, layers),
        max_position_embeddings=r.number("max_position_embeddings", "max_position_embeddings", 0),
        exact=False,
    )
    architecture = _architecture(model_type, parsed, _manual_dtype(r), FIELDS_PREFIX)
    if entered is None:
        notes.append(
            "Parameters counted from the entered shape with a llama-like layout (no biases, "
            "RMSNorm, no learned positions); enter num_parameters to override"
        )
        return architecture, notes
    if vocab is None:
        notes.append("vocab_size not given: embeddings and LM head are not split out")
    breakdown = _scaled(architecture.parameters or _count(layout), entered)
    notes.append(
        f"num_parameters used as entered ({entered:,}); its split by kind is scaled from a "
        f"llama-like count of the entered shape ({architecture.num_parameters:,})"
    )
    architecture = replace(
        architecture,
        num_parameters=breakdown.total,
        num_active_parameters=breakdown.active,
        parameters=breakdown,
    )
    return architecture, notes


def _model_type(r: _Reader) -> str:
    key = r.find(("model_type", "family"))
    if key is None:
        return "custom"
    value = r.config[key]
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_MODEL_TYPE_LENGTH:
        raise EstimateError(
            r.field(key), f"must be a name of at most {MAX_MODEL_TYPE_LENGTH} characters"
        )
    return value.strip()


def _manual_moe(r: _Reader, layers: int) -> dict[str, int]:
    """The entered MoE fields, validated; empty for a dense model."""
    names = (
        "num_experts_per_token",
        "num_shared_experts",
        "num_dense_layers",
        "moe_intermediate_size",
        "shared_expert_intermediate_size",
    )
    experts = r.number("num_experts", "num_experts", 0)
    values = {name: r.number(name, name, None) for name in names}
    if not experts:
        for name, value in values.items():
            if value:
                raise EstimateError(r.field(name), "needs num_experts (a mixture of experts)")
        return {}
    per_token = values["num_experts_per_token"]
    if not per_token:
        raise EstimateError(
            r.field("num_experts_per_token"), "is required (at least 1) with num_experts"
        )
    if per_token > experts:
        raise EstimateError(
            r.field("num_experts_per_token"),
            f"{per_token} experts per token is more than the {experts} experts",
        )
    dense_layers = values["num_dense_layers"] or 0
    if dense_layers >= layers:
        raise EstimateError(
            r.field("num_dense_layers"),
            f"{dense_layers} dense layers leave none of the {layers} layers for the experts",
        )
    result = {
        "num_experts": experts,
        "num_experts_per_token": per_token,
        "num_dense_layers": dense_layers,
        "num_shared_experts": values["num_shared_experts"] or 0,
    }
    for name in ("moe_intermediate_size", "shared_expert_intermediate_size"):
        if values[name] is not None:
            result[name] = values[name]
    return result


class _Mla(TypedDict, total=False):
    """Multi-head latent attention's dimensions (all or none), as _Layout takes them."""

    kv_lora_rank: int
    q_lora_rank: int
    qk_rope_head_dim: int
    qk_nope_head_dim: int
    v_head_dim: int


def _manual_mla(r: _Reader) -> _Mla:
    kv_lora_rank = r.number("kv_lora_rank", "kv_lora_rank", 0)
    names = ("q_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim")
    values = {name: r.number(name, name, 0) for name in names}
    if not kv_lora_rank:
        for name, value in values.items():
            if value:
                raise EstimateError(
                    r.field(name), "needs kv_lora_rank (multi-head latent attention)"
                )
        return _Mla()
    for name in names[1:]:
        if not values[name]:
            raise EstimateError(r.field(name), "is required with kv_lora_rank")
    return _Mla(
        kv_lora_rank=kv_lora_rank,
        q_lora_rank=values["q_lora_rank"],
        qk_rope_head_dim=values["qk_rope_head_dim"],
        qk_nope_head_dim=values["qk_nope_head_dim"],
        v_head_dim=values["v_head_dim"],
    )


def _manual_window(r: _Reader, layers: int) -> dict[str, int]:
    window = r.number("sliding_window", "sliding_window", 0)
    sliding = r.number("num_sliding_window_layers", "num_sliding_window_layers", None)
    if sliding is not None and sliding > layers:
        raise EstimateError(
            r.field("num_sliding_window_layers"), f"{sliding} is more than the {layers} layers"
        )
    if sliding and not window:
        raise EstimateError(r.field("num_sliding_window_layers"), "needs sliding_window")
    if window and sliding is None:
        sliding = layers
        r.notes.append("sliding_window without num_sliding_window_layers: every layer slides")
    return {"sliding_window": window, "num_sliding_window_layers": sliding or 0}


def _manual_dtype(r: _Reader) -> str:
    if not r.has("default_dtype"):
        return DEFAULT_DTYPE
    value = r.config["default_dtype"]
    name = _DTYPE_ALIASES.get(value) if isinstance(value, str) else None
    if name is None:
        raise EstimateError(r.field("default_dtype"), f"must be one of {', '.join(MODEL_DTYPES)}")
    return name


def _inferred_width(r: _Reader, layout_with: Callable[[int], _Layout], entered: int) -> _Layout:
    """The layout whose unknown MLP width W makes it hold `entered` parameters.

    A llama-like layout without biases counts base + W x slope parameters.
    """
    base = _count(layout_with(0)).total
    slope = _count(layout_with(1)).total - base
    if entered <= base or slope <= 0:
        raise EstimateError(
            r.field("num_parameters"),
            f"{entered:,} is not more than this shape's embeddings, attention and norms "
            f"({base:,}); check hidden_size, num_layers and vocab_size",
        )
    width = max((entered - base) // slope, 1)
    if width > MAX_INTERMEDIATE_SIZE:
        raise EstimateError(
            r.field("num_parameters"),
            f"{entered:,} parameters would need an MLP {width:,} wide; give intermediate_size",
        )
    return layout_with(width)


def _scaled(breakdown: ParameterBreakdown, target: int) -> ParameterBreakdown:
    """`breakdown` rescaled to sum to `target`: embeddings and LM head kept when they fit."""
    fixed = breakdown.embeddings + breakdown.lm_head
    parts = {
        "attention": breakdown.attention,
        "mlp": breakdown.mlp,
        "experts": breakdown.experts,
        "router": breakdown.router,
        "norms": breakdown.norms,
    }
    if target > fixed and breakdown.total > fixed:
        numerator, denominator = target - fixed, breakdown.total - fixed
    else:  # fewer parameters than the entered vocab's embeddings: scale everything alike
        parts["embeddings"], parts["lm_head"] = breakdown.embeddings, breakdown.lm_head
        numerator, denominator, fixed = target, breakdown.total, 0
    scaled = {name: value * numerator // denominator for name, value in parts.items()}
    largest = max(scaled, key=lambda name: scaled[name])
    scaled[largest] += target - fixed - sum(scaled.values())
    experts = scaled["experts"]
    return ParameterBreakdown(
        embeddings=scaled.get("embeddings", breakdown.embeddings),
        lm_head=scaled.get("lm_head", breakdown.lm_head),
        attention=scaled["attention"],
        mlp=scaled["mlp"],
        experts=experts,
        active_experts=breakdown.active_experts * experts // breakdown.experts
        if breakdown.experts
        else 0,
        router=scaled["router"],
        norms=scaled["norms"],
    )
