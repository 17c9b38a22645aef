"""Readers of the Mamba-2 families: pure state space (mamba2), single-mixer hybrid blocks
(nemotron_h) and attention beside Mamba-2 in every layer (falcon_h1), as transformers 5.25
builds them (models/mamba2, models/nemotron_h, models/falcon_h1)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from calculator.engine.errors import EstimateError
from calculator.engine.families.common import (
    StateLayers,
    _decoder_shape,
    _key_value_heads,
    _Layout,
    _layout,
    _max_positions,
    _Mixer,
    _Names,
    _Parsed,
    _Reader,
    _Shape,
    _tied,
)


@dataclass(frozen=True)
class _Mamba2Shape:
    """One Mamba2Mixer (modeling_mamba2.py; NemotronHMamba2Mixer and FalconH1Mixer copy it)."""

    hidden_size: int
    intermediate_size: int  # heads x head_dim
    num_heads: int
    head_dim: int
    state_size: int
    groups: int
    conv_kernel: int
    chunk_size: int
    proj_bias: bool  # in_proj (and, but for Falcon-H1, out_proj)
    out_proj_bias: bool
    conv_bias: bool
    gated_norm: bool  # the gated RMSNorm over intermediate_size (Falcon-H1: mamba_rms_norm)


def _mamba2_mixer(shape: _Mamba2Shape, path: str, count: int, beside_attention: bool) -> _Mixer:
    h, inner, heads = shape.hidden_size, shape.intermediate_size, shape.num_heads
    # Mamba2Mixer.__init__: conv_dim = intermediate_size + 2 * n_groups * ssm_state_size (x, B
    # and C go through the depthwise convolution); in_proj makes the gate z (intermediate), x/B/C
    # (conv_dim) and dt (num_heads)
    conv_dim = inner + 2 * shape.groups * shape.state_size
    projection = inner + conv_dim + heads
    return _Mixer(
        path=path,
        linears=(
            ("in_proj", h, projection, shape.proj_bias),
            ("out_proj", inner, h, shape.out_proj_bias),
        ),
        # conv1d (conv_dim x 1 x conv_kernel, its bias), dt_bias, A_log and D (num_heads each),
        # the gated RMSNorm's weight (intermediate_size)
        other=conv_dim * shape.conv_kernel
        + (conv_dim if shape.conv_bias else 0)
        + 3 * heads
        + (inner if shape.gated_norm else 0),
        state=StateLayers(
            kind="mamba2",
            count=count,
            conv_dim=conv_dim,
            conv_kernel=shape.conv_kernel,
            # mamba2_chunk_scan's final state: (batch, num_heads, head_dim, ssm_state_size)
            state_heads=heads,
            state_rows=shape.head_dim,
            state_cols=shape.state_size,
            projection_width=projection,
            inner_width=inner,
            chunk_size=shape.chunk_size,
            groups=shape.groups,
            beside_attention=beside_attention,
        ),
    )


def _check_heads(r: _Reader, inner: int, heads: int, head_dim: int, inner_key: str) -> None:
    if heads * head_dim != inner:
        raise EstimateError(
            r.field(inner_key),
            f"the Mamba-2 width {inner} must equal heads x head_dim ({heads} x {head_dim})",
        )


def _check_groups(r: _Reader, heads: int, groups: int, key: str) -> None:
    # mamba2_chunk_scan repeats B and C over num_heads // n_groups heads per group
    if heads % groups:
        raise EstimateError(r.field(key), f"{groups} groups must divide the {heads} Mamba-2 heads")


def _read_mamba2(r: _Reader) -> _Parsed:
    # configuration_mamba2.py (transformers 5.25) defaults; Mamba2ForCausalLM: backbone.embeddings,
    # per layer an RMSNorm and a Mamba2Mixer (no attention, no MLP), norm_f, lm_head
    h = r.number("hidden_size", "hidden_size", 4096)
    layers = r.number("num_hidden_layers", "num_layers", 64)
    heads = r.number("num_heads", "num_attention_heads", 128)
    head_dim = r.number("head_dim", "head_dim", 64)
    expand = r.number("expand", "expand", 2)
    groups = r.number("n_groups", "num_attention_heads", 8)
    inner = expand * h  # Mamba2Mixer: int(config.expand * hidden_size)
    _check_heads(r, inner, heads, head_dim, "expand")
    _check_groups(r, heads, groups, "n_groups")
    mixer = _mamba2_mixer(
        _Mamba2Shape(
            hidden_size=h,
            intermediate_size=inner,
            num_heads=heads,
            head_dim=head_dim,
            state_size=r.number("state_size", "state_size", 128),
            groups=groups,
            conv_kernel=r.number("conv_kernel", "conv_kernel", 4),
            chunk_size=r.number("chunk_size", "chunk_size", 256),
            proj_bias=r.flag("use_bias", False),
            out_proj_bias=r.flag("use_bias", False),
            conv_bias=r.flag("use_conv_bias", True),
            gated_norm=True,
        ),
        "backbone.layers.*.mixer",
        layers,
        beside_attention=False,
    )
    shape = _Shape(
        hidden_size=h,
        num_layers=layers,
        # no attention: the Mamba-2 heads stand in the attention fields (no layer uses them)
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=head_dim,
        intermediate_size=inner,
        vocab_size=r.number("vocab_size", "vocab_size", 32768),
        tie_word_embeddings=_tied(r, False),
    )
    layout = _layout(
        shape,
        names=_Names(attention="backbone.layers.*.mixer", mlp="backbone.layers.*.mixer"),
        norms_per_layer=1,  # Mamba2Block.norm
        layers_without_mlp=layers,
        mixer=mixer,
    )
    # no position embedding: the context is bounded by memory only
    return _Parsed(layout, max_position_embeddings=0)


# NemotronHConfig._pattern_to_list, and the legacy names remap_legacy_layer_types accepts
_NEMOTRON_PATTERN = {"M": "linear_attention", "E": "moe", "*": "full_attention", "-": "mlp"}
_LEGACY_LAYER_TYPES = {"mamba": "linear_attention", "attention": "full_attention"}
_NEMOTRON_DEFAULT_LAYERS = ("linear_attention", "moe", "full_attention", "mlp")


def _nemotron_layer_types(r: _Reader) -> list[str]:
    """NemotronHConfig.__post_init__: layers_block_type (its alias layer_types), else
    hybrid_override_pattern, else the default four blocks; num_hidden_layers is ignored."""
    key = r.find(("layers_block_type", "layer_types"))
    if key is not None:
        types = r.config[key]
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise EstimateError(r.field(key), "must be a list of layer type names")
        types = [_LEGACY_LAYER_TYPES.get(t, t) for t in types]
        invalid = sorted(set(types) - set(_NEMOTRON_PATTERN.values()))
        if invalid:
            raise EstimateError(r.field(key), f"has unknown layer types {', '.join(invalid)}")
    elif r.has("hybrid_override_pattern"):
        pattern = r.config["hybrid_override_pattern"]
        if not isinstance(pattern, str) or not set(pattern) <= set(_NEMOTRON_PATTERN):
            raise EstimateError(
                r.field("hybrid_override_pattern"), "must be a string of M, E, * and - blocks"
            )
        types = [_NEMOTRON_PATTERN[block] for block in pattern]
    else:
        types = list(_NEMOTRON_DEFAULT_LAYERS)
        r.notes.append("no layers_block_type or hybrid_override_pattern: NemotronHConfig's default")
    if not types:
        raise EstimateError(r.field(key or "hybrid_override_pattern"), "has no layers")
    return types


def _read_nemotron_h(r: _Reader) -> _Parsed:
    # configuration_nemotron_h.py (transformers 5.25) defaults; NemotronHBlock: one RMSNorm and
    # one mixer per layer, a Mamba-2 mixer (M), attention (*), a plain MLP (-) or MoE (E)
    types = _nemotron_layer_types(r)
    layers = len(types)
    mamba, attention = types.count("linear_attention"), types.count("full_attention")
    moe, mlp = types.count("moe"), types.count("mlp")
    if r.has("moe_latent_size"):
        raise EstimateError(
            r.field("moe_latent_size"),
            "latent MoE projections (fc1/fc2_latent_proj) are not counted by this calculator",
        )
    h = r.number("hidden_size", "hidden_size", 4096)
    heads = r.number("num_attention_heads", "num_attention_heads", 32)
    kv_heads = _key_value_heads(r, heads, "num_key_value_heads", 8)
    m_heads = r.number("mamba_num_heads", "num_attention_heads", 128)
    m_head_dim = r.number("mamba_head_dim", "head_dim", 64)
    groups = r.number(("mamba_n_groups", "n_groups"), "num_attention_heads", 8)
    _check_groups(r, m_heads, groups, "n_groups")
    use_bias = r.flag("use_bias", False)
    # NemotronHMamba2Mixer: intermediate_size = mamba_num_heads * mamba_head_dim; in_proj and
    # out_proj take config.use_bias (mamba_proj_bias is not read); mamba_conv_bias and
    # mamba_d_conv / mamba_chunk_size are renamed to use_conv_bias, conv_kernel, chunk_size
    conv_bias_key = "mamba_conv_bias" if r.has("mamba_conv_bias") else "use_conv_bias"
    mixer = _mamba2_mixer(
        _Mamba2Shape(
            hidden_size=h,
            intermediate_size=m_heads * m_head_dim,
            num_heads=m_heads,
            head_dim=m_head_dim,
            state_size=r.number("ssm_state_size", "state_size", 128),
            groups=groups,
            conv_kernel=r.number(("mamba_d_conv", "conv_kernel"), "conv_kernel", 4),
            chunk_size=r.number(("mamba_chunk_size", "chunk_size"), "chunk_size", 128),
            proj_bias=use_bias,
            out_proj_bias=use_bias,
            conv_bias=r.flag(conv_bias_key, True),
            gated_norm=True,
        ),
        "backbone.layers.*.mixer",
        mamba,
        beside_attention=False,
    )
    head_dim = r.number("head_dim", "head_dim", 128)
    if r.has("attention_head_dim") and r.config["attention_head_dim"] != head_dim:
        # the remote-code configs' key; NemotronHAttention reads config.head_dim only
        r.notes.append(
            f"attention_head_dim is not read by transformers' NemotronHAttention: heads of "
            f"head_dim {head_dim}"
        )
    experts = r.number("n_routed_experts", "num_experts", 8) if moe else 0
    per_token = r.number("num_experts_per_tok", "num_experts_per_token", 2) if moe else 0
    if per_token > experts:
        raise EstimateError(
            r.field("num_experts_per_tok"),
            f"{per_token} experts per token is more than the {experts} experts",
        )
    shape = _Shape(
        hidden_size=h,
        num_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=r.number("intermediate_size", "intermediate_size", 21504),
        vocab_size=r.number("vocab_size", "vocab_size", 131072),
        # NemotronHForCausalLM._tied_weights_keys = {}: the LM head is never tied
        tie_word_embeddings=False,
    )
    layout = _layout(
        shape,
        names=_Names(attention="backbone.layers.*.mixer", mlp="backbone.layers.*.mixer"),
        mlp_bias=r.flag("mlp_bias", False),
        gated_mlp=False,  # NemotronHMLP: up_proj, relu2, down_proj
        experts_gated=False,  # NemotronHExperts: up_proj and down_proj per expert
        norms_per_layer=1,  # NemotronHBlock.norm
        num_moe_layers=moe,
        num_experts=experts,
        num_experts_per_token=per_token,
        moe_intermediate_size=r.number("moe_intermediate_size", "moe_intermediate_size", 7688)
        if moe
        else 0,
        shared_expert_intermediate_size=r.number(
            "moe_shared_expert_intermediate_size", "shared_expert_intermediate_size", 7688
        )
        if moe
        else 0,
        layers_without_attention=moe + mlp,
        layers_without_mlp=mamba + attention,
        mixer=mixer,
    )
    return _Parsed(layout, max_position_embeddings=_max_positions(r, 4096))


def _read_falcon_h1(r: _Reader) -> _Parsed:
    # configuration_falcon_h1.py (transformers 5.25) defaults; FalconH1DecoderLayer: attention
    # and a Mamba-2 mixer side by side on the input_layernorm output, then a gated MLP after
    # pre_ff_layernorm. The mu-P multipliers scale activations, not parameters (mup_vector is a
    # non-persistent buffer)
    shape = _decoder_shape(r, head_dim=None, kv_heads=8, tied=False)
    h, layers = shape.hidden_size, shape.num_layers
    inner = r.number("mamba_d_ssm", "intermediate_size", None)
    if inner is None:
        inner = r.number("mamba_expand", "expand", 2) * h
    heads = r.number("mamba_n_heads", "num_attention_heads", 128)
    if r.config.get("mamba_d_head", "auto") == "auto":
        if inner % heads:
            raise EstimateError(
                r.field("mamba_n_heads"), f"{heads} Mamba heads must divide the width {inner}"
            )
        head_dim = inner // heads
    else:
        head_dim = r.number("mamba_d_head", "head_dim")
    _check_heads(r, inner, heads, head_dim, "mamba_d_ssm")
    groups = r.number("mamba_n_groups", "num_attention_heads", 1)
    _check_groups(r, heads, groups, "mamba_n_groups")
    mixer = _mamba2_mixer(
        _Mamba2Shape(
            hidden_size=h,
            intermediate_size=inner,
            num_heads=heads,
            head_dim=head_dim,
            state_size=r.number("mamba_d_state", "state_size", 256),
            groups=groups,
            conv_kernel=r.number("mamba_d_conv", "conv_kernel", 4),
            chunk_size=r.number("mamba_chunk_size", "chunk_size", 256),
            proj_bias=r.flag("mamba_proj_bias", False),
            out_proj_bias=r.flag("projectors_bias", False),
            conv_bias=r.flag("mamba_conv_bias", True),
            gated_norm=r.flag("mamba_rms_norm", False),
        ),
        "model.layers.*.mamba",
        layers,
        beside_attention=True,
    )
    attention_bias = r.flag("attention_bias", False)
    layout: _Layout = _layout(
        shape,
        names=_Names(mlp="model.layers.*.feed_forward"),
        qkv_bias=attention_bias,
        o_bias=attention_bias,
        mlp_bias=r.flag("mlp_bias", False),
        mixer=mixer,
    )
    return _Parsed(layout, max_position_embeddings=_max_positions(r, 8192))


SSM_READERS: dict[str, Callable[[_Reader], _Parsed]] = {
    "mamba2": _read_mamba2,
    "nemotron_h": _read_nemotron_h,
    "falcon_h1": _read_falcon_h1,
}
