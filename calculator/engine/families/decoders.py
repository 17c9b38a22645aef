"""Readers of the attention-only families (dense, mixture of experts, MLA): each mirrors its
transformers `modeling_<family>.py` and the defaults of `configuration_<family>.py`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from calculator.engine.errors import EstimateError
from calculator.engine.families.common import (
    _LLAMA_NAMES,
    _decoder_shape,
    _divided_head_dim,
    _experts_per_token,
    _key_value_heads,
    _layer_types,
    _Layout,
    _layout,
    _max_positions,
    _Names,
    _Parsed,
    _qwen_window_layers,
    _Reader,
    _tied,
    _window,
)

# --- Llama-like families: one reader, a row each ---------------------------------------------


@dataclass(frozen=True)
class _Decoder:
    """A family that is Llama but for its config class's defaults and a few fixed choices.

    Each row's comment names the transformers files it mirrors.
    """

    head_dim: int | None  # configuration default when config.json has no head_dim
    kv_heads: int | None  # num_key_value_heads default (None: as many as the heads)
    tied: bool  # tie_word_embeddings default
    positions: int  # max_position_embeddings default
    bias_key: str = ""  # config flag putting a bias on q/k/v/o ("attention_bias")
    bias_default: bool = False
    bias_on_mlp: bool = False  # the same flag biases the MLP too (starcoder2 use_bias)
    mlp_bias_key: str = ""  # a separate flag for the MLP's bias (llama mlp_bias)
    qkv_bias: bool = False  # q/k/v always biased (qwen2)
    window: str = ""  # "": none; "every": sliding_window on every layer; "qwen": qwen2 rule
    window_default: int | None = None
    qk_norm: str = ""  # "head": RMSNorm(head_dim) on q and k; "all": over all q and kv heads
    names: _Names = _LLAMA_NAMES
    gated_mlp: bool = True
    norm_bias: bool = False


DECODER_ROWS: dict[str, _Decoder] = {
    # configuration_llama.py defaults; modeling_llama.py: attention_bias on q/k/v/o, mlp_bias
    "llama": _Decoder(None, None, False, 2048, bias_key="attention_bias", mlp_bias_key="mlp_bias"),
    # configuration_mistral.py: num_key_value_heads 8, sliding_window 4096 on every layer
    "mistral": _Decoder(None, 8, False, 131_072, window="every", window_default=4096),
    # modeling_qwen2.py: q/k/v always have a bias, o_proj none
    "qwen2": _Decoder(None, 32, False, 32_768, qkv_bias=True, window="qwen", window_default=4096),
    # modeling_qwen3.py: q_norm and k_norm are RMSNorm(head_dim)
    "qwen3": _Decoder(
        128,
        32,
        False,
        32_768,
        bias_key="attention_bias",
        window="qwen",
        window_default=4096,
        qk_norm="head",
    ),
    # configuration_gemma.py / modeling_gemma.py
    "gemma": _Decoder(256, 16, True, 8192, bias_key="attention_bias"),
    # modeling_phi3.py: fused qkv_proj and gate_up_proj, no biases; the window is on every layer
    "phi3": _Decoder(
        None,
        None,
        False,
        4096,
        window="every",
        names=_Names(qkv="qkv_proj", gate_up="gate_up_proj"),
    ),
    # modeling_olmo2.py: q_norm/k_norm over all heads; post-attention and post-feedforward norms
    "olmo2": _Decoder(None, None, False, 2048, bias_key="attention_bias", qk_norm="all"),
    # modeling_starcoder2.py: use_bias on every projection, LayerNorms, plain c_fc/c_proj MLP
    "starcoder2": _Decoder(
        None,
        2,
        True,
        4096,
        bias_key="use_bias",
        bias_default=True,
        bias_on_mlp=True,
        window="every",
        names=_Names(up="c_fc", down="c_proj"),
        gated_mlp=False,
        norm_bias=True,
    ),
}


def _read_row(row: _Decoder, r: _Reader) -> _Parsed:
    shape = _decoder_shape(r, head_dim=row.head_dim, kv_heads=row.kv_heads, tied=row.tied)
    bias = r.flag(row.bias_key, row.bias_default) if row.bias_key else False
    mlp_bias = r.flag(row.mlp_bias_key, False) if row.mlp_bias_key else row.bias_on_mlp and bias
    if row.window == "qwen":
        window, sliding = _qwen_window_layers(r, shape.num_layers, row.window_default or 0)
    elif row.window == "every":
        window = _window(r, row.window_default)
        sliding = shape.num_layers if window else 0
    else:
        window = sliding = 0
    qk_norms = {
        "head": 2 * shape.head_dim,
        "all": (shape.num_attention_heads + shape.num_key_value_heads) * shape.head_dim,
    }.get(row.qk_norm, 0)
    layout = _layout(
        shape,
        names=row.names,
        qkv_bias=row.qkv_bias or bias,
        o_bias=bias,
        mlp_bias=mlp_bias,
        gated_mlp=row.gated_mlp,
        norm_bias=row.norm_bias,
        qk_norm_parameters=qk_norms,
    )
    return _Parsed(
        layout,
        sliding_window=window,
        num_sliding_window_layers=sliding,
        max_position_embeddings=_max_positions(r, row.positions),
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


def _fused_qkv_names(attention: str, mlp: str) -> _Names:
    """Falcon's and GPT-NeoX's module names: one fused query_key_value, dense, and a plain
    dense_h_to_4h / dense_4h_to_h MLP."""
    return _Names(
        attention=attention,
        mlp=mlp,
        qkv="query_key_value",
        o="dense",
        up="dense_h_to_4h",
        down="dense_4h_to_h",
    )


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
        names=_fused_qkv_names("transformer.h.*.self_attention", "transformer.h.*.mlp"),
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
        names=_fused_qkv_names("gpt_neox.layers.*.attention", "gpt_neox.layers.*.mlp"),
        qkv_bias=attention_bias,
        o_bias=attention_bias,
        mlp_bias=True,
        gated_mlp=False,
        norm_bias=True,
    )
    return _Parsed(layout, max_position_embeddings=_max_positions(r, 2048))


DECODER_READERS: dict[str, Callable[[_Reader], _Parsed]] = {
    **{family: partial(_read_row, row) for family, row in DECODER_ROWS.items()},
    "mixtral": _read_mixtral,
    "qwen2_moe": _read_qwen2_moe,
    "qwen3_moe": _read_qwen3_moe,
    "gemma2": _read_gemma2,
    "gemma3_text": _read_gemma3_text,
    "phi": _read_phi,
    "falcon": _read_falcon,
    "gpt2": _read_gpt2,
    "gpt_bigcode": _read_gpt_bigcode,
    "gpt_neox": _read_gpt_neox,
    "deepseek_v2": _read_deepseek_v2,
    "deepseek_v3": _read_deepseek_v3,
    "gpt_oss": _read_gpt_oss,
}
