"""Speculative decoding in a serving plan, sized as vLLM's `speculative_config` lays it out.

Methods (vllm/config/speculative.py, SpeculativeConfig.method):
- "draft_model": a smaller model of the same tokenizer proposes tokens; its weights and its own
  KV cache (every draft layer is a layer of the KV cache config, vllm/v1/spec_decode/eagle.py
  and draft_model.py load it beside the target) come out of the same gpu_memory_utilization
  budget, so the blocks' bytes per token are the target's plus the draft's.
- "eagle" / "eagle3": an EAGLE head: one decoder layer of the target's shape (EAGLE's without
  its input_layernorm) and an fc that
  fuses the target's hidden state with the token embedding (EAGLE: fc 2h -> h with bias, Li et
  al. 2024 "EAGLE", model/cnets.py; EAGLE-3: fc 3h -> h, three hidden states). The head shares
  the target's embedding and LM head (vllm/v1/spec_decode/eagle.py, EagleProposer.load_model).
  Its one attention layer gets KV cache of its own.
- "mtp": the model's own multi-token-prediction layers (DeepSeek-V3 config.json
  num_nextn_predict_layers = 1): one more decoder layer of the target's shape, eh_proj
  (2h -> h, no bias) and enorm/hnorm (vllm/model_executor/models/deepseek_mtp.py); vLLM shares
  the embedding and head with the target. vLLM's num_speculative_tokens defaults to
  num_nextn_predict_layers for it.
- "ngram": prompt lookup, no weights and no KV cache.

Speed (Leviathan et al. 2023, "Fast Inference from Transformers via Speculative Decoding",
eq. 1): with per-token acceptance rate a and k speculative tokens a verification step yields
E = (1 - a^(k+1)) / (1 - a) tokens (k + 1 when a = 1). A step costs k draft forwards and one
target forward over k + 1 tokens per request; TPOT is that step over E.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from calculator.engine.architecture import Architecture
from calculator.engine.errors import EstimateError
from calculator.engine.hardware import _number, _whole
from calculator.engine.inputs import resolve_model

SPECULATIVE_METHODS = ("draft_model", "eagle", "eagle3", "mtp", "ngram")
# fc input widths, in hidden sizes: EAGLE concatenates the feature and the token embedding,
# EAGLE-3 three features of the target, DeepSeek's MTP eh_proj the embedding and hidden state
FC_INPUTS = {"eagle": 2, "eagle3": 3, "mtp": 2}
FC_BIAS = {"eagle": True, "eagle3": False, "mtp": False}
# Per-token acceptance rate when not given: 0.7, within the range Leviathan et al. 2023 measured
# for their draft/target pairs (Table 3) and below EAGLE's reported acceptance on MT-bench
DEFAULT_ACCEPTANCE_RATE = 0.7
NUM_SPECULATIVE_TOKENS_LIMITS = (1, 64)
ACCEPTANCE_RATE_LIMITS = (0, 1)
# config.json keys that count a model's MTP layers (DeepSeek-V3, MiMo; Qwen3-Next)
MTP_KEYS = ("num_nextn_predict_layers", "mtp_num_hidden_layers")


@dataclass(frozen=True)
class Speculation:
    method: str
    num_speculative_tokens: int
    acceptance_rate: float
    draft_model: Mapping[str, Any] | None  # the engine's model object ({"hf_config": ...})
    draft_architecture: Architecture | None
    mtp_layers: int  # "mtp": the model's MTP layers; else 0

    def tokens_per_step(self) -> float:
        return tokens_per_step(self.acceptance_rate, self.num_speculative_tokens)


def tokens_per_step(acceptance_rate: float, speculative_tokens: int) -> float:
    """Expected tokens one verification step yields (Leviathan et al. 2023, eq. 1)."""
    if acceptance_rate >= 1:
        return float(speculative_tokens + 1)
    return (1 - acceptance_rate ** (speculative_tokens + 1)) / (1 - acceptance_rate)


def _mtp_layers(payload: Mapping[str, Any]) -> int:
    model = payload.get("model")
    config = model.get("hf_config") if isinstance(model, Mapping) else None
    if isinstance(config, Mapping):
        for key in MTP_KEYS:
            value = config.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return 0


def parse_speculation(payload: Mapping[str, Any], engine: str) -> Speculation | None:
    """The speculative fields, validated; None when speculative decoding is off."""
    method = payload.get("speculative_method")
    given = [
        name
        for name in ("num_speculative_tokens", "draft_model", "acceptance_rate")
        if payload.get(name) is not None
    ]
    if method in (None, ""):
        if given:
            raise EstimateError(given[0], "needs speculative_method")
        return None
    if method not in SPECULATIVE_METHODS:
        raise EstimateError(
            "speculative_method", f"must be one of {', '.join(SPECULATIVE_METHODS)}"
        )
    if engine != "vllm":
        raise EstimateError(
            "speculative_method", "speculative decoding is sized as vLLM lays it out: engine vllm"
        )
    mtp_layers = 0
    if method == "mtp":
        mtp_layers = _mtp_layers(payload)
        if not mtp_layers:
            raise EstimateError(
                "speculative_method",
                "mtp needs a model whose config.json has MTP layers "
                "(num_nextn_predict_layers, e.g. DeepSeek-V3)",
            )
    tokens = payload.get("num_speculative_tokens")
    if tokens is None:
        if method != "mtp":
            # vllm/config/speculative.py: "num_speculative_tokens was provided" is required
            # unless the draft config says it (MTP's num_nextn_predict_layers)
            raise EstimateError("num_speculative_tokens", f"is required for {method}")
        tokens = mtp_layers
    tokens = _whole("num_speculative_tokens", tokens, *NUM_SPECULATIVE_TOKENS_LIMITS)
    rate = payload.get("acceptance_rate")
    rate = DEFAULT_ACCEPTANCE_RATE if rate is None else rate
    rate = float(_number("acceptance_rate", rate, *ACCEPTANCE_RATE_LIMITS, open_low=False))
    draft = payload.get("draft_model")
    architecture = None
    if method == "draft_model":
        if draft is None:
            raise EstimateError("draft_model", "is required for speculative_method draft_model")
        try:
            architecture, _ = resolve_model(draft)
        except EstimateError as error:
            raise EstimateError("draft_model", error.message) from None
    elif draft is not None:
        raise EstimateError("draft_model", "is only for speculative_method draft_model")
    return Speculation(method, tokens, rate, draft, architecture, mtp_layers)


def head_parameters(
    architecture: Architecture, method: str, layers: int = 1, *, active: bool = False
) -> int:
    """Parameters of an EAGLE head or MTP module: `layers` decoder layers of the target's
    average layer, the fc / eh_proj, and (MTP) enorm and hnorm; `active`: only the routed
    experts one token passes through (what a decode step reads)."""
    counts = architecture.parameters
    hidden = architecture.hidden_size
    if counts is not None:
        # the layers' mixers and norms (less the final norm) are alike layer by layer
        layers_total = architecture.num_layers
        layer = (counts.attention + counts.norms - hidden) // layers_total
        if architecture.is_moe:
            # the head is a sparse layer (DeepSeek-V3's MTP layer is an MoE layer): its routed
            # experts, router and shared experts
            sparse = layers_total - architecture.num_dense_layers
            shared = (3 if architecture.gated_mlp else 2) * hidden
            experts = counts.active_experts if active else counts.experts
            layer += (experts + counts.router) // sparse
            layer += shared * architecture.shared_expert_intermediate_size
        else:
            layer += counts.mlp // layers_total
    else:
        body = architecture.num_parameters - architecture.vocab_size * hidden * (
            1 if architecture.tie_word_embeddings else 2
        )
        layer = max(body, 0) // architecture.num_layers
    fc = FC_INPUTS[method] * hidden * hidden + (hidden if FC_BIAS[method] else 0)
    # MTP adds enorm and hnorm; EAGLE's first (only) layer has no input_layernorm (EAGLE
    # model/cnets.py LlamaDecoderLayer: `if self.index != 0`; vLLM llama_eagle.py likewise)
    norms = {"mtp": 2 * hidden, "eagle": -hidden}.get(method, 0)
    return layers * (layer + fc + norms)


def lm_head_parameters(architecture: Architecture) -> int:
    """What the head's forward reads for its logits: the target's LM head (shared)."""
    return architecture.vocab_size * architecture.hidden_size


@dataclass(frozen=True)
class DraftMemory:
    weights_bytes: int  # on the busiest GPU
    kv_bytes_per_token: int  # the draft's layers' KV cache a token, on that GPU
    parameters: int
    sizer: Any  # the draft model's Sizer ("draft_model"), else None


def draft_memory(sizer: Any, configuration: Any, speculation: Speculation) -> DraftMemory:
    """The draft's weights and KV cache per token on one GPU, as vLLM loads it beside the target
    with the target's tensor-parallel size (draft_tensor_parallel_size defaults to it)."""
    from calculator.engine.hardware import Sizer

    method = speculation.method
    if method == "ngram":
        return DraftMemory(0, 0, 0, None)
    if method == "draft_model":
        assert speculation.draft_model is not None
        # the draft's architecture as parse_speculation resolved it, not resolved again
        draft = Sizer(
            {**sizer.payload, "model": speculation.draft_model}, speculation.draft_architecture
        )
        one = draft.breakdown(configuration, batch_size=1, sequence_length=1)
        two = draft.breakdown(configuration, batch_size=1, sequence_length=2)
        if one is None or two is None:
            raise EstimateError("draft_model", "the draft cannot be laid out on these GPUs")
        parameters = draft.architecture.num_parameters
        return DraftMemory(one.weights, two.kv_cache - one.kv_cache, parameters, draft)
    architecture = sizer.architecture
    layers = speculation.mtp_layers or 1
    parameters = head_parameters(architecture, method, layers)
    one = sizer.breakdown(configuration, batch_size=1, sequence_length=1)
    two = sizer.breakdown(configuration, batch_size=1, sequence_length=2)
    assert one is not None and two is not None
    # the target's bytes a parameter on this GPU (dtype, tensor-parallel share)
    weights = one.weights * parameters // architecture.num_parameters
    per_layer = (two.kv_cache - one.kv_cache) // max(architecture.num_attention_layers, 1)
    return DraftMemory(weights, layers * per_layer, parameters, None)
