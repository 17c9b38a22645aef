"""The format a published checkpoint stores its weights in, read from config.json's
`quantization_config`: the engine's default weight_dtype when the request names none.

Each quantizer's own rules decide which modules stay 16-bit; `CheckpointFormat.keeps` holds the
config's exclusion patterns (modules_to_not_convert, llm_int8_skip_modules, compressed-tensors
`ignore`, ModelOpt `exclude_modules`), matched against the engine's module paths
(`LinearLayer.path`, "model.layers.*.self_attn.q_proj") as transformers' quantizers match them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from calculator.engine.dtypes import (
    FP8_BLOCK,
    GROUP_QUANT_SIZE,
    LINEAR_MODULE_ONLY_DTYPES,
    NVFP4_BLOCK,
    ROUTER_16_BIT_DTYPES,
)

# config keys listing modules a quantizer leaves unconverted, by quantizer
_EXCLUSION_KEYS = ("modules_to_not_convert", "llm_int8_skip_modules", "ignore", "exclude_modules")
# short names for people: what the page shows as "published checkpoint: ..."
FORMAT_NAMES = {
    "mxfp4": "MXFP4",
    "fp8_block": "FP8 with 128x128 block scales",
    "float8": "FP8",
    "nvfp4": "NVFP4",
    "nf4": "bitsandbytes NF4",
    "nf4_no_dq": "bitsandbytes NF4",
    "fp4": "bitsandbytes FP4",
    "int8": "bitsandbytes int8",
    "gptq_int4": "GPTQ 4-bit",
    "awq_int4": "AWQ 4-bit",
}


@dataclass(frozen=True)
class CheckpointFormat:
    """What `quantization_config` says the checkpoint stores."""

    quant_method: str  # as config.json spells it ("mxfp4", "fp8", "compressed-tensors", ...)
    weight_dtype: str | None  # the contract's format, None where no engine format matches
    keeps: tuple[str, ...] = ()  # module patterns the quantizer leaves in 16-bit
    notes: tuple[str, ...] = ()  # where the format is approximated or unknown

    def keeps_16_bit(self, path: str) -> bool:
        """Whether the module at `path` is excluded from quantisation by the config."""
        return any(_matches(pattern, path) for pattern in self.keeps)


class _Layer(Protocol):
    # read-only: a frozen dataclass (LinearLayer) satisfies it
    @property
    def path(self) -> str: ...
    @property
    def router(self) -> bool: ...
    @property
    def routed_expert(self) -> bool: ...


def keeps_layer_16_bit(layer: _Layer, dtype: str, checkpoint: CheckpointFormat | None) -> bool:
    """Whether a linear layer stays 16-bit when the model's weights are in `dtype`: bitsandbytes
    swaps nn.Linear modules only (not fused experts or routers), the MX/FP8-block/NVFP4 formats
    leave routers alone, and a checkpoint's own exclusions hold for its own format."""
    if dtype in LINEAR_MODULE_ONLY_DTYPES and (layer.routed_expert or layer.router):
        return True
    if dtype in ROUTER_16_BIT_DTYPES and layer.router:
        return True
    if checkpoint is None or checkpoint.weight_dtype != dtype:
        return False
    if checkpoint.quant_method.lower() == "mxfp4" and not layer.routed_expert:
        # transformers' Mxfp4HfQuantizer swaps the experts modules only (GptOssExperts)
        return True
    return checkpoint.keeps_16_bit(layer.path)


def describe_checkpoint(
    checkpoint: CheckpointFormat, layers: Sequence[_Layer], default_dtype: str
) -> str:
    """For people: "MXFP4 (experts), bfloat16 elsewhere"."""
    dtype = checkpoint.weight_dtype
    if dtype is None:
        return f"{checkpoint.quant_method} (a format the engine does not size)"
    name = FORMAT_NAMES.get(dtype, dtype)
    converted = [layer for layer in layers if not keeps_layer_16_bit(layer, dtype, checkpoint)]
    if converted and all(layer.routed_expert for layer in converted):
        where = " (experts)"
    elif converted and len(converted) == sum(not layer.router for layer in layers):
        where = " (linear layers)"
    elif converted:
        where = " (some linear layers)"
    else:
        where = ""
    rest = default_dtype if default_dtype in ("bfloat16", "float16") else "16-bit"
    return f"{name}{where}, {rest} elsewhere"


def _matches(pattern: str, path: str) -> bool:
    """Whether a config's exclusion pattern names the module at `path`.

    compressed-tensors writes "re:<regex>"; transformers' quantizers (quantizers_utils
    should_convert_module) skip a module when the pattern, as a regex, matches the start of its
    name, or the name ends with it; older ones test `pattern in name`. The engine's paths hold a
    literal "*" for the layer index, as gpt-oss's "model.layers.*.self_attn" does."""
    if pattern.startswith("re:"):
        return _search(pattern[3:], path)
    if pattern in path or path.endswith(pattern):
        return True
    return _search("^" + pattern.replace(".*.", r"\.[^.]+\."), path)


def _search(regex: str, path: str) -> bool:
    try:
        return re.search(regex, path) is not None
    except re.error:
        return False


def _patterns(config: Mapping[str, Any]) -> tuple[str, ...]:
    found: list[str] = []
    for key in _EXCLUSION_KEYS:
        value = config.get(key)
        if isinstance(value, Sequence) and not isinstance(value, str):
            found += [item for item in value if isinstance(item, str) and 0 < len(item) <= 200]
    return tuple(found[:256])


def _number(config: Mapping[str, Any], key: str, default: int) -> int:
    value = config.get(key, default)
    return value if type(value) is int else default


def _group_format(method: str, config: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """GPTQ / AWQ: the engine's 4-bit group-128 formats, with a note where the config differs."""
    bits = _number(config, "bits", 4)
    group = _number(config, "group_size", GROUP_QUANT_SIZE)
    if bits != 4:
        return None, [
            f"{method.upper()} {bits}-bit has no engine format: weights sized in the model's "
            "16-bit dtype; choose weight_dtype to match"
        ]
    name = "gptq_int4" if method == "gptq" else "awq_int4"
    notes = []
    if group != GROUP_QUANT_SIZE:
        notes.append(
            f"{method.upper()} group_size {group}: sized as {name} (group {GROUP_QUANT_SIZE}); "
            "smaller groups keep more scales"
        )
    return name, notes


def _bitsandbytes_format(config: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    if config.get("load_in_8bit") or config.get("_load_in_8bit"):
        return "int8", []
    if not (config.get("load_in_4bit") or config.get("_load_in_4bit")):
        return None, []
    double = bool(config.get("bnb_4bit_use_double_quant"))
    if config.get("bnb_4bit_quant_type") == "fp4":
        notes = ["bitsandbytes FP4 with double quantisation: sized without it"] if double else []
        return "fp4", notes
    return ("nf4" if double else "nf4_no_dq"), []


def _compressed_tensors_format(config: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """compressed-tensors config_groups: the first group's weight scheme (float8, nvfp4, int4)."""
    groups = config.get("config_groups")
    weights: Any = None
    if isinstance(groups, Mapping):
        for group in groups.values():
            if isinstance(group, Mapping) and isinstance(group.get("weights"), Mapping):
                weights = group["weights"]
                break
    if weights is None:
        return None, []
    bits = weights.get("num_bits")
    kind = weights.get("type")
    strategy = weights.get("strategy")
    group = weights.get("group_size")
    if bits == 8 and kind == "float":
        if strategy == "block" and weights.get("block_structure") in (
            [FP8_BLOCK, FP8_BLOCK],
            None,
        ):
            return "fp8_block", []
        return "float8", []
    if bits == 8 and kind == "int":
        return "int8", []
    if bits == 4 and kind == "float" and group == NVFP4_BLOCK:
        return "nvfp4", []
    if bits == 4 and kind == "int":
        notes = [
            "compressed-tensors int4: sized as AWQ's layout (group 128, a scale and a packed "
            "zero per group)"
        ]
        if type(group) is int and group != GROUP_QUANT_SIZE:
            notes.append(f"group_size {group} sized as group {GROUP_QUANT_SIZE}")
        return "awq_int4", notes
    return None, []


def checkpoint_format(quantization: Any) -> CheckpointFormat | None:
    """The checkpoint's format from a config.json `quantization_config`, or None without one."""
    if not isinstance(quantization, Mapping):
        return None
    method = quantization.get("quant_method")
    if not isinstance(method, str) or not method:
        return None
    method = method[:64]
    key = method.lower()
    notes: list[str] = []
    dtype: str | None = None
    if key == "mxfp4":
        dtype = "mxfp4"
    elif key == "fp8":
        block = quantization.get("weight_block_size")
        if block is None:
            dtype = "float8"
        else:
            dtype = "fp8_block"
            if block != [FP8_BLOCK, FP8_BLOCK]:
                notes.append(
                    f"FP8 weight_block_size {block!r}: scales sized for {FP8_BLOCK}x{FP8_BLOCK} "
                    "blocks"
                )
    elif key == "fbgemm_fp8":
        dtype = "float8"
    elif key == "bitsandbytes":
        dtype, notes = _bitsandbytes_format(quantization)
    elif key in ("gptq", "awq"):
        dtype, notes = _group_format(key, quantization)
    elif key == "compressed-tensors":
        dtype, notes = _compressed_tensors_format(quantization)
    elif key == "modelopt":
        algorithm = str(quantization.get("quant_algo", "")).upper()
        dtype = {"NVFP4": "nvfp4", "FP8": "float8"}.get(algorithm)
    if dtype is None and not notes:
        notes.append(
            f"quantization_config ({method!r}): the published weights are quantised in a format "
            "the engine does not size; weights in the model's 16-bit dtype unless weight_dtype "
            "is chosen"
        )
    return CheckpointFormat(method, dtype, _patterns(quantization), tuple(notes))
