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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypedDict

from calculator.engine.checkpoint import checkpoint_format
from calculator.engine.errors import EstimateError
from calculator.engine.families import KNOWN_MODEL_TYPES, READERS
from calculator.engine.families.common import (
    _DTYPE_ALIASES,
    ARCHITECTURE_FIELDS,
    DEFAULT_DTYPE,
    FIELDS_PREFIX,
    HF_PREFIX,
    LIMITS,
    LORA_ALL_LINEAR,
    MAX_EXPERTS,
    MAX_HEAD_DIM,
    MAX_HEADS,
    MAX_HIDDEN_SIZE,
    MAX_INTERMEDIATE_SIZE,
    MAX_LAYERS,
    MAX_LORA_RANK_DIM,
    MAX_MODEL_TYPE_LENGTH,
    MAX_PARAMETERS,
    MAX_SEQUENCE_POSITIONS,
    MAX_VOCAB_SIZE,
    MODEL_DTYPES,
    Architecture,
    LinearLayer,
    ParameterBreakdown,
    StateLayers,
    _count,
    _describe,
    _experts_per_token,
    _head_dim,
    _key_value_heads,
    _Layout,
    _linear_layers,
    _max_positions,
    _Parsed,
    _Reader,
    _window,
    lora_target_layers,
)
from calculator.engine.families.decoders import (
    _GEMMA3_TEXT_DEFAULTS,
)
from calculator.engine.vision import (
    MLLAMA_TEXT_DEFAULTS,
    MODELS,
    TEXT_DEFAULTS,
    TEXT_FAMILIES,
    VISION_MODELS,
    describe,
    mllama_text_extras,
    siglip_vision_parameters,
    tied_embeddings,
    vision_tower,
)

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

# The public API of the engine's model shape; the readers live in calculator/engine/families/
__all__ = [
    "ARCHITECTURE_FIELDS",
    "Architecture",
    "DEFAULT_DTYPE",
    "FIELDS_PREFIX",
    "HF_PREFIX",
    "KNOWN_MODEL_TYPES",
    "LIMITS",
    "LORA_ALL_LINEAR",
    "LinearLayer",
    "MAX_EXPERTS",
    "MAX_HEADS",
    "MAX_HEAD_DIM",
    "MAX_HIDDEN_SIZE",
    "MAX_INTERMEDIATE_SIZE",
    "MAX_LAYERS",
    "MAX_LORA_RANK_DIM",
    "MAX_MODEL_TYPE_LENGTH",
    "MAX_PARAMETERS",
    "MAX_SEQUENCE_POSITIONS",
    "MAX_VOCAB_SIZE",
    "MODEL_DTYPES",
    "ParameterBreakdown",
    "StateLayers",
    "architecture_from_fields",
    "architecture_from_hf_config",
    "lora_target_layers",
    "siglip_vision_parameters",
]


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
    "nemotron_h": ("mlp_hidden_act", "relu2"),  # NemotronHConfig (transformers 5.25)
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
    # falcon's own compute-dtype softmax (5.24 FalconAttention.forward: scores, `/=` in place,
    # `F.softmax(scores + mask, dtype=hidden_states.dtype)`, three at once) is gone in 5.25:
    # modeling_falcon.py calls eager_attention_forward (line 229, `softmax(attn_weights,
    # dim=-1, dtype=torch.float32).to(query.dtype)`), as the llama family (live-tensor snapshot
    # at the peak of falcon-infer-b4-s1024-bf16-eager: the float32 `_to_copy` and `_softmax`
    # beside the bfloat16 masked scores; measured 501.6 MiB, 23.6 % above three copies)
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
# modeling_nemotron_h.py (transformers 5.25): _keep_in_fp32_modules_strict = ["gate.weight", ...]
_FLOAT32_ROUTER = ("deepseek_v2", "deepseek_v3", "nemotron_h")


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
        num_layers_without_attention=layout.layers_without_attention,
        num_layers_without_mlp=layout.layers_without_mlp,
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
    if model_type in VISION_MODELS and text_config is None and model_type == "qwen2_5_vl":
        # Qwen2.5-VL's published config.json keeps the text model's keys at the top level
        outer, model_type = config, MODELS[model_type].text_type
    elif model_type in VISION_MODELS or (model_type not in READERS and text_config is not None):
        if not isinstance(text_config, Mapping):
            raise EstimateError(f"{HF_PREFIX}.text_config", "must be an object")
        outer, config, prefix = config, text_config, f"{HF_PREFIX}.text_config"
        inner_type = text_config.get("model_type")
        if model_type in VISION_MODELS:
            config = {**text_config, "tie_word_embeddings": tied_embeddings(outer, text_config)}
            if model_type == "mllama":
                # MllamaTextConfig's defaults, not LlamaConfig's, for the keys it leaves out
                config = {**MLLAMA_TEXT_DEFAULTS, **config}
            inner_type = TEXT_FAMILIES.get(str(inner_type), inner_type)
            inner_type = inner_type or MODELS[model_type].text_type
            fallback = TEXT_DEFAULTS.get(str(inner_type))
        if model_type == "gemma3":
            inner_type = "gemma3_text"
            fallback = _GEMMA3_TEXT_DEFAULTS
        if model_type not in VISION_MODELS:
            notes.append(
                f"{model_type or 'this'} config is multimodal: counted its text_config "
                f"({inner_type or 'unknown model_type'}); the vision tower and projector are "
                "not counted"
            )
        model_type = inner_type if isinstance(inner_type, str) else None
    reader = READERS.get(model_type) if model_type else None
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
    if outer is not None and outer.get("model_type") in VISION_MODELS:
        architecture = _with_vision(architecture, outer, notes)
    return architecture, notes


def _with_vision(
    architecture: Architecture, outer: Mapping[str, Any], notes: list[str]
) -> Architecture:
    """The whole multimodal model: the vision tower and the projector counted beside the text
    model (<Family>ForConditionalGeneration, as its safetensors hold them)."""
    tower = vision_tower(outer, architecture.hidden_size)
    counts = architecture.parameters
    assert counts is not None
    notes.append(describe(tower))
    embeddings = cross = 0
    if outer.get("model_type") == "mllama":
        text = {**MLLAMA_TEXT_DEFAULTS, **outer["text_config"]}
        embeddings, cross = mllama_text_extras(
            text, architecture.hidden_size, architecture.head_dim
        )
    text_extras = embeddings + cross
    return replace(
        architecture,
        parameters=replace(
            counts,
            vision=tower.parameters,
            embeddings=counts.embeddings + embeddings,
            attention=counts.attention + cross,
        ),
        num_parameters=architecture.num_parameters + text_extras + tower.parameters,
        num_active_parameters=architecture.num_active_parameters + text_extras,
        vision=tower,
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
