"""Readers of the hybrids: attention on some layers, a fixed-state mixer (linear attention,
state space) on the others."""

from __future__ import annotations

import math
from collections.abc import Callable

from calculator.engine.errors import EstimateError
from calculator.engine.families.common import (
    StateLayers,
    _decoder_shape,
    _experts_per_token,
    _layout,
    _max_positions,
    _Mixer,
    _Names,
    _Parsed,
    _Reader,
)
from calculator.engine.families.decoders import (
    _sparse_layers,
)


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


HYBRID_READERS: dict[str, Callable[[_Reader], _Parsed]] = {
    "qwen3_next": _read_qwen3_next,
    "jamba": _read_jamba,
}
