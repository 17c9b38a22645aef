"""Which GPUs, how many, how fast, what cost: answers on top of the memory estimate.

Every memory figure here comes from the engine's own estimate (`parse_inputs`, then the
method's plan and breakdown, exactly as `calculate()` and `sweep()` run them): this module
searches over batch sizes, sequence lengths and parallel layouts, and adds the speed and cost
formulas (roofline bounds with an efficiency factor each, visible and overridable).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from calculator.engine.architecture import Architecture
from calculator.engine.breakdown import Breakdown
from calculator.engine.errors import EstimateError
from calculator.engine.inputs import (
    HARDWARE_FIELDS,
    INPUT_LIMITS,
    MAX_TENSOR_PARALLEL,
    EstimateInputs,
    parse_inputs,
    suggested_layout,
    tensor_parallel_sizes,
)
from calculator.engine.memory import Plan, plan_for, worst_breakdown
from calculator.engine.standard import standard_estimate

# Training keeps tensor parallelism inside one 8-GPU node's NVLink domain (Narayanan et al.
# 2021, "Efficient Large-Scale Language Model Training on GPU Clusters Using Megatron-LM")
MAX_TRAINING_TENSOR_PARALLEL = 8
# Most GPUs of one type the fit search considers (training: tensor x ZeRO-3 data parallel)
MAX_FIT_GPUS = 4096
# The one definition of usable memory: `memory_utilization` x the device's memory, for the
# headline, "fits", the fewest GPUs and capacity alike. By default the whole device: the estimate
# already counts the runtime overhead (CUDA context, allocator reserve); 0.9 is vLLM's
# gpu_memory_utilization default, for a serving engine's margin.
DEFAULT_MEMORY_UTILIZATION = 1.0

# Decode is memory-bandwidth bound; serving engines measure 60-80% model bandwidth utilisation
# (MBU, Databricks "LLM Inference Performance Engineering: Best Practices", 2023)
DEFAULT_DECODE_EFFICIENCY = 0.7
# Prefill is compute bound, a forward pass over many tokens: model FLOPs utilisation near the
# best training runs (PaLM 46.2%, Chowdhery et al. 2022; Megatron-LM 52%, Narayanan et al. 2021)
DEFAULT_PREFILL_EFFICIENCY = 0.5
# Training MFU: Llama 3 pre-training reached 38-43% of bf16 peak on H100s (Dubey et al. 2024,
# Table 4)
DEFAULT_TRAINING_EFFICIENCY = 0.4

SECONDS_PER_HOUR = 3600
TOKENS_PER_MILLION = 1_000_000


@dataclass(frozen=True)
class GpuSpec:
    """One accelerator's figures (the catalog's `Gpu`, as plain data)."""

    slug: str
    name: str
    memory_bytes: int
    memory_bandwidth_bytes_per_s: int
    bf16_dense_tflops: float
    price_per_hour_usd: float | None = None

    @property
    def bf16_dense_flops_per_s(self) -> float:
        return self.bf16_dense_tflops * 1e12


@dataclass(frozen=True)
class Efficiencies:
    """Shares of the peak each bound reaches: decode of memory bandwidth (MBU), prefill and
    training of bf16 compute (MFU)."""

    decode: float = DEFAULT_DECODE_EFFICIENCY
    prefill: float = DEFAULT_PREFILL_EFFICIENCY
    training: float = DEFAULT_TRAINING_EFFICIENCY

    def as_dict(self) -> dict[str, float]:
        return {"decode": self.decode, "prefill": self.prefill, "training": self.training}


@dataclass(frozen=True)
class Configuration:
    """How `num_gpus` GPUs share the model (the contract's parallelism fields)."""

    num_gpus: int
    tensor_parallel: int
    pipeline_parallel: int
    zero_stage: int
    # MoE: inference tp x dp, or 1; training a divisor of cp x dp (engine/inputs.py)
    expert_parallel: int = 1
    context_parallel: int = 1  # training: the sequence split over this many GPUs

    @property
    def data_parallel(self) -> int:
        return self.num_gpus // (
            self.tensor_parallel * self.pipeline_parallel * self.context_parallel
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "num_gpus": self.num_gpus,
            "tensor_parallel": self.tensor_parallel,
            "pipeline_parallel": self.pipeline_parallel,
            "data_parallel": self.data_parallel,
            "zero_stage": self.zero_stage,
            "expert_parallel": self.expert_parallel,
            "context_parallel": self.context_parallel,
        }


def memory_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload without the hardware fields: what the memory estimate takes."""
    return {name: value for name, value in payload.items() if name not in HARDWARE_FIELDS}


def usable_bytes(gpu: GpuSpec, memory_utilization: float) -> int:
    return int(gpu.memory_bytes * memory_utilization)


class Sizer:
    """Memory per GPU of one request under other batch sizes, lengths or layouts.

    The payload is validated and the model resolved once; each layout's plan is made once
    (as `sweep()` does), so each further point only re-runs the size formulas."""

    def __init__(
        self, payload: Mapping[str, Any], architecture: Architecture | None = None
    ) -> None:
        self.payload = memory_payload(payload)
        resolved = None if architecture is None else (architecture, ())
        self.inputs, self.architecture, _ = parse_inputs(self.payload, resolved)
        # later layouts reuse the parsed model
        self.resolved: tuple[Architecture, tuple[str, ...]] = (self.architecture, ())
        self._layouts: dict[Configuration, tuple[EstimateInputs, Plan | None] | None] = {}
        self._totals: dict[tuple[Configuration, int, int], Breakdown | None] = {}

    @property
    def configuration(self) -> Configuration:
        inputs = self.inputs
        return Configuration(
            inputs.num_gpus,
            inputs.tensor_parallel,
            inputs.pipeline_parallel,
            inputs.zero_stage,
            inputs.expert_parallel,
            inputs.context_parallel,
        )

    @property
    def expert_parallel_asked(self) -> bool:
        """Whether the request splits the experts: then every layout searched does, over all
        tensor x data parallel ranks of a stage (vLLM --enable-expert-parallel) in inference,
        the asked size in training (Megatron-Core)."""
        return self.inputs.expert_parallel > 1

    @property
    def data_parallel_step(self) -> int:
        """Training: data-parallel sizes the searched layouts step by, so that the asked
        expert parallelism divides context x data parallel (Megatron-Core's rule): with
        ep / gcd(ep, cp) | dp, cp x dp is a multiple of lcm(cp, ep)."""
        inputs = self.inputs
        return inputs.expert_parallel // math.gcd(inputs.expert_parallel, inputs.context_parallel)

    def _layout(self, configuration: Configuration) -> tuple[EstimateInputs, Plan | None] | None:
        if configuration in self._layouts:
            return self._layouts[configuration]
        payload = {
            **self.payload,
            "num_gpus": configuration.num_gpus,
            "tensor_parallel": configuration.tensor_parallel,
            "pipeline_parallel": configuration.pipeline_parallel,
            "zero_stage": configuration.zero_stage,
            "expert_parallel": configuration.expert_parallel,
            "context_parallel": configuration.context_parallel,
        }
        try:
            inputs, _, _ = parse_inputs(payload, self.resolved)
            plan = None if inputs.method == "standard" else plan_for(inputs, self.architecture, [])
            layout: tuple[EstimateInputs, Plan | None] | None = (inputs, plan)
        except EstimateError:
            layout = None  # a layout the engine rejects (heads not divisible, ...)
        self._layouts[configuration] = layout
        return layout

    def breakdown(
        self,
        configuration: Configuration | None = None,
        *,
        batch_size: int | None = None,
        sequence_length: int | None = None,
    ) -> Breakdown | None:
        """The busiest GPU's breakdown, or None when the engine rejects the layout."""
        configuration = configuration or self.configuration
        batch = self.inputs.batch_size if batch_size is None else batch_size
        length = self.inputs.sequence_length if sequence_length is None else sequence_length
        key = (configuration, batch, length)
        if key in self._totals:
            return self._totals[key]
        layout = self._layout(configuration)
        result: Breakdown | None = None
        if layout is not None:
            inputs, plan = layout
            inputs = inputs.with_value("batch_size", batch).with_value("sequence_length", length)
            if plan is None:
                try:
                    result = standard_estimate(inputs, self.architecture).breakdown
                except EstimateError:
                    result = None
            else:
                result = worst_breakdown(plan, inputs, self.architecture)[1]
        self._totals[key] = result
        return result

    def total_bytes(self, configuration: Configuration | None = None, **sizes: int) -> int | None:
        breakdown = self.breakdown(configuration, **sizes)
        return None if breakdown is None else breakdown.total


# --- layouts -----------------------------------------------------------------------------------


def configuration_for(sizer: Sizer, gpu_count: int) -> Configuration:
    """How `gpu_count` GPUs run the request: its own layout when it asked for that many GPUs;
    else inference splits the model with the widest tensor parallelism that divides the count
    and pipeline stages for the rest (replicas beyond the layers), training keeps its tensor and
    pipeline sizes when they divide the count and shards the rest with ZeRO-3 data parallelism
    (or the ZeRO stage it asked for)."""
    inputs, architecture = sizer.inputs, sizer.architecture
    if gpu_count == inputs.num_gpus:
        return sizer.configuration
    if inputs.training:
        # an asked context and expert parallelism are kept where the count holds them
        tp, pp, cp = inputs.tensor_parallel, inputs.pipeline_parallel, inputs.context_parallel
        ep = inputs.expert_parallel
        if gpu_count % (tp * pp * cp):
            tp = pp = 1
        if gpu_count % (tp * pp * cp):
            cp = 1
        if (gpu_count // (tp * pp)) % ep:
            ep = 1
        dp = gpu_count // (tp * pp * cp)
        zero = 0
        if dp * cp > 1:
            zero = inputs.zero_stage if "zero_stage" in inputs.given else 3
        return Configuration(gpu_count, tp, pp, zero, ep, cp)
    tp, pp = suggested_layout(architecture, gpu_count, training=False)
    ep = gpu_count // pp if sizer.expert_parallel_asked else 1
    return Configuration(gpu_count, tp, pp, 0, ep)


# --- fit ---------------------------------------------------------------------------------------


def _smallest_fitting(
    fits: Callable[[int], bool], low: int, high: int, guess: int | None = None
) -> int | None:
    """The smallest k in [low, high] with fits(k), for fits monotone (false, then true); None
    when even `high` does not fit. Starts at `guess` (else `low`): when it fits and guess - 1
    does not, two calls suffice; otherwise galloping away from it, then bisection."""
    if low > high:
        return None
    probe = low if guess is None else min(max(guess, low), high)
    if fits(probe):
        lo, hi = low, probe  # hi fits
        step = 1
        while lo < hi:  # gallop down from the guess, then bisect
            below = max(hi - step, lo)
            if fits(below):
                hi, step = below, step * 2
            else:
                lo = below + 1
                break
        return _bisect_fitting(fits, lo, hi)
    step, previous = 1, probe
    while True:  # gallop up from the guess
        if previous == high:
            return None
        probe = min(previous + step, high)
        if fits(probe):
            break
        previous, step = probe, step * 2
    return _bisect_fitting(fits, previous + 1, probe)  # previous does not fit, probe fits


def _bisect_fitting(fits: Callable[[int], bool], lo: int, hi: int) -> int:
    """Bisection: the smallest value in [lo, hi] that fits, given that hi fits."""
    while lo < hi:
        middle = (lo + hi) // 2
        if fits(middle):
            hi = middle
        else:
            lo = middle + 1
    return hi


def _guess_count(points: Mapping[int, int], usable: int, low: int) -> int | None:
    """Where memory per GPU reaches `usable`, from the smallest and largest counts k >= `low`
    evaluated so far, modelling memory as a + b / k (sharded or staged parts fall as 1 / k);
    0 when the model says no count gets there; None without two points. Only a starting point
    for the search, which checks every answer with the engine."""
    ks = sorted(k for k in points if k >= low)
    if len(ks) < 2:
        return None
    k1, k2 = ks[0], ks[-1]
    f1, f2 = points[k1], points[k2]
    b = (f1 - f2) * k1 * k2 / (k2 - k1)
    a = f1 - b / k1
    if b <= 0 or usable <= a:
        return 0
    return max(math.ceil(b / (usable - a)), 1)


def _fewest_gpus(sizer: Sizer, usables: Iterable[int]) -> dict[int, tuple[Configuration, int]]:
    """For each usable memory, the layout with the fewest GPUs whose busiest GPU fits in it
    (and its bytes); memories that no layout within the limits fits are left out.

    Inference: for each tensor-parallel size (ascending), the fewest pipeline stages; training:
    for each tensor-parallel size up to a node, the fewest ZeRO-3 data-parallel ranks. Memory
    per GPU falls as stages or ranks are added, so each family is searched by galloping and
    bisection, starting where the next larger memory's answer stopped. At an equal count
    inference takes the wider tensor parallelism (fewer stages in a token's path) and training
    the narrower one (ZeRO-3 shards more, with fewer all-reduces in each layer)."""
    inputs, architecture = sizer.inputs, sizer.architecture
    training = inputs.training
    answers: dict[int, tuple[Configuration, int]] = {}
    if inputs.method == "standard":
        # the original formulas have no multi-GPU model
        one = single_gpu_configuration()
        total = sizer.total_bytes(one)
        return {usable: (one, total) for usable in usables if total is not None and total <= usable}

    # training keeps an asked context and expert parallelism in every layout: k counts steps of
    # `step` data-parallel ranks, each `cp` GPUs wide (the search never picks cp by itself)
    cp, ep = inputs.context_parallel, inputs.expert_parallel
    step = sizer.data_parallel_step if training else 1

    def layout(tp: int, k: int) -> Configuration:
        if training:
            dp = k * step
            return Configuration(tp * cp * dp, tp, 1, 3 if dp * cp > 1 else 0, ep, cp)
        # an asked expert parallelism spans the stage's tp ranks (dp is 1 here)
        return Configuration(tp * k, tp, k, 0, tp if sizer.expert_parallel_asked else 1)

    width = cp * step if training else 1  # GPUs per step of k, beside tp
    widest = MAX_TRAINING_TENSOR_PARALLEL if training else MAX_TENSOR_PARALLEL
    families = tensor_parallel_sizes(architecture, widest)
    # the smallest k of each family not yet known to miss (a smaller memory misses it too)
    family_low = dict.fromkeys(families, 1)
    family_points: dict[int, dict[int, int]] = {tp: {} for tp in families}
    for usable in sorted(set(usables), reverse=True):
        best: tuple[Configuration, int] | None = None
        for tp in families:
            best_count = best[0].num_gpus if best else None
            if best_count is not None and tp > best_count:
                break
            limit = MAX_FIT_GPUS // (tp * width) if training else architecture.num_layers
            if best_count is not None:
                # inference: an equal count with wider tensor parallelism has fewer pipeline
                # stages, so a lower latency; training keeps the first (narrower) one found
                limit = min(
                    limit, (best_count - 1) // (tp * width) if training else best_count // tp
                )

            points = family_points[tp]

            def fits(k: int, tp: int = tp, usable: int = usable, points: dict = points) -> bool:
                total = sizer.total_bytes(layout(tp, k))
                if total is not None:
                    points[k] = total
                return total is not None and total <= usable

            # ZeRO-3 starts at two ranks: one rank (no ZeRO) is another regime
            guess = _guess_count(points, usable, 2 if training else 1)
            if guess == 0 and family_low[tp] <= limit and not fits(limit):
                k = None  # as the model said: not even the most GPUs of this family fit
            else:
                k = _smallest_fitting(fits, family_low[tp], limit, guess or None)
            if k is None:
                family_low[tp] = max(family_low[tp], limit + 1)
                continue
            family_low[tp] = k
            configuration = layout(tp, k)
            total = sizer.total_bytes(configuration)
            assert total is not None
            best = (configuration, total)
        if best is not None:
            answers[usable] = best
    return answers


def single_gpu_configuration() -> Configuration:
    return Configuration(1, 1, 1, 0)


def fit(
    payload: Mapping[str, Any],
    gpus: Iterable[GpuSpec],
    *,
    memory_utilization: float = DEFAULT_MEMORY_UTILIZATION,
    architecture: Architecture | None = None,
    sizer: Sizer | None = None,
) -> list[dict[str, Any]]:
    """For each GPU: whether the request fits on one (its batch and length on a single GPU),
    with what headroom, and the fewest GPUs of that type that fit and how they are laid out.

    A GPU "fits" when the estimate is at most `memory_utilization` of its memory (1.0: the whole
    device; the estimate already counts the runtime overhead)."""
    sizer = sizer or Sizer(payload, architecture)
    gpus = list(gpus)
    required = sizer.total_bytes(single_gpu_configuration())
    fewest_by_memory = _fewest_gpus(sizer, [usable_bytes(gpu, memory_utilization) for gpu in gpus])
    results = []
    for gpu in gpus:
        usable = usable_bytes(gpu, memory_utilization)
        fewest = fewest_by_memory.get(usable)
        headroom = None if required is None else usable - required
        results.append(
            {
                "gpu": gpu.slug,
                "name": gpu.name,
                "memory_bytes": gpu.memory_bytes,
                "usable_bytes": usable,
                "required_bytes": required,
                "fits_on_one": required is not None and required <= usable,
                "headroom_bytes": headroom,
                "headroom_percent": (
                    None if headroom is None else round(100 * headroom / gpu.memory_bytes, 2)
                ),
                "fewest_gpus": fewest[0].num_gpus if fewest else None,
                "configuration": fewest[0].as_dict() if fewest else None,
                "per_gpu_bytes": fewest[1] if fewest else None,
            }
        )
    return results


# --- capacity ----------------------------------------------------------------------------------


def _largest_fitting(fits: Callable[[int], bool], high: int, guess: int | None = None) -> int:
    """The largest n in [1, high] with fits(n), for fits monotone (true, then false); 0 when
    1 does not fit. Gallops away from `guess` (else from 1), then bisects: two calls when the
    guess is the boundary, about 2 log2(n) without a guess."""
    if not fits(1):
        return 0
    start = 1 if guess is None else min(max(guess, 1), high)
    if start == 1 or fits(start):
        low, step = start, 1  # low fits: gallop up
        while True:
            if low == high:
                return high
            probe = min(low + step, high)
            if not fits(probe):
                miss = probe
                break
            low, step = probe, step * 2
    else:
        miss, step = start, 1  # miss does not fit: gallop down (1 fits)
        while True:
            probe = max(miss - step, 1)
            if fits(probe):
                low = probe
                break
            miss, step = probe, step * 2
    while miss - low > 1:  # low fits, miss does not
        middle = (low + miss) // 2
        if fits(middle):
            low = middle
        else:
            miss = middle
    return low


def _capacity_guess(total_at: Callable[[int], int | None], usable: int, high: int) -> int | None:
    """Where total_at(n) reaches `usable`: secant steps from n = 1 and 2 (memory grows almost
    linearly with batch size and length). Only a starting point, checked by the search."""
    known_n, known_total = 1, total_at(1)
    probe_n = min(2, high)
    probe_total = total_at(probe_n)
    guess = None
    for _ in range(3):
        if known_total is None or probe_total is None or probe_n == known_n:
            break
        slope = (probe_total - known_total) / (probe_n - known_n)
        if slope <= 0:
            break
        guess = min(max(known_n + int((usable - known_total) / slope), 1), high)
        if guess == probe_n:
            break
        known_n, known_total = probe_n, probe_total
        probe_n, probe_total = guess, total_at(guess)
    return guess


def kv_cache_tokens(sizer: Sizer, configuration: Configuration, usable: int) -> dict[str, int]:
    """Serving-engine style (vLLM): the memory left for KV cache once the weights, the peak
    activations of the request's batch and the runtime overhead are placed, in tokens."""
    breakdown = sizer.breakdown(configuration)
    per_token = sizer.breakdown(configuration, batch_size=1, sequence_length=1)
    assert breakdown is not None and per_token is not None
    # vLLM: KV blocks = (gpu_memory_utilization x memory - weights - peak activations - other)
    reserved = breakdown.total - breakdown.kv_cache
    budget = max(usable - reserved, 0)
    bytes_per_token = per_token.kv_cache
    tokens = budget // bytes_per_token if bytes_per_token else 0
    return {
        "budget_bytes": budget,
        "reserved_bytes": reserved,
        "bytes_per_token": bytes_per_token,
        "tokens": tokens,
        "concurrent_sequences": tokens // sizer.inputs.sequence_length,
    }


def _whole_chunks(sequence_length: int, configuration: Configuration) -> int:
    """The longest length at most `sequence_length` that context parallelism can split: a
    multiple of 2 x cp (megatron/training/arguments.py)."""
    chunks = 2 * configuration.context_parallel
    if chunks == 2:
        return sequence_length
    return sequence_length // chunks * chunks


def capacity(
    payload: Mapping[str, Any],
    gpu: GpuSpec,
    gpu_count: int,
    *,
    memory_utilization: float = DEFAULT_MEMORY_UTILIZATION,
    architecture: Architecture | None = None,
    sizer: Sizer | None = None,
) -> dict[str, Any]:
    """On `gpu_count` GPUs of a type: the largest batch size (at the request's length) and the
    longest sequence (at its batch size) whose busiest GPU fits in `memory_utilization` of the
    memory, and the KV-cache tokens and concurrent sequences a serving engine would hold."""
    sizer = sizer or Sizer(payload, architecture)
    configuration = configuration_for(sizer, gpu_count)
    usable = usable_bytes(gpu, memory_utilization)

    def largest(field: str) -> int:
        high = INPUT_LIMITS[field][1]

        def total_at(value: int) -> int | None:
            return sizer.total_bytes(configuration, **{field: value})

        def fits(value: int) -> bool:
            total = total_at(value)
            return total is not None and total <= usable

        return _largest_fitting(fits, high, _capacity_guess(total_at, usable, high))

    result: dict[str, Any] = {
        "gpu": gpu.slug,
        "gpu_count": gpu_count,
        "configuration": configuration.as_dict(),
        "memory_utilization": memory_utilization,
        "usable_bytes": usable,
        "max_batch_size": largest("batch_size"),
        # context parallelism runs multiples of 2 x cp tokens only (Megatron-Core)
        "max_sequence_length": _whole_chunks(largest("sequence_length"), configuration),
        "kv_cache": None,
        # the longest context the model was trained for (0: unknown), beside the memory's limit
        "max_position_embeddings": sizer.architecture.max_position_embeddings,
    }
    if not sizer.inputs.training and sizer.breakdown(configuration) is not None:
        result["kv_cache"] = kv_cache_tokens(sizer, configuration, usable)
    return result


def capacity_by_gpu_count(
    payload: Mapping[str, Any],
    gpu: GpuSpec,
    gpu_counts: Sequence[int] = (1, 2, 4, 8),
    *,
    memory_utilization: float = DEFAULT_MEMORY_UTILIZATION,
    architecture: Architecture | None = None,
    sizer: Sizer | None = None,
    known: Mapping[int, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """`capacity` for each GPU count (a chart of max batch and context against GPUs); `known`:
    capacities the caller computed already, by GPU count, with the same memory utilization."""
    sizer = sizer or Sizer(payload, architecture)
    known = {} if known is None else known
    return [
        known.get(count)
        or capacity(payload, gpu, count, memory_utilization=memory_utilization, sizer=sizer)
        for count in gpu_counts
    ]


# --- throughput --------------------------------------------------------------------------------


def attended_positions(architecture: Architecture, sequence_length: int) -> int:
    """Key positions one query attends to, summed over the layers (sliding-window layers see at
    most the window)."""
    sliding = architecture.num_sliding_window_layers if architecture.sliding_window else 0
    window = min(sequence_length, architecture.sliding_window) if sliding else 0
    # hybrid models: linear-attention / state-space layers attend to no positions (their
    # recurrent state is a fixed size), only the attention layers do
    attention_layers = architecture.num_attention_layers
    return (attention_layers - sliding) * sequence_length + sliding * window


def forward_flops_per_token(architecture: Architecture, sequence_length: int) -> int:
    """Model FLOPs of one token's forward pass over a context of `sequence_length` tokens."""
    active = architecture.num_active_parameters or architecture.num_parameters
    attention_width = architecture.num_attention_heads * architecture.head_dim
    # PaLM (Chowdhery et al. 2022, appendix B): 2N for the matmuls with the weights, plus
    # 4 * layers * attention width * context for the scores (QK^T) and their use on V
    return 2 * active + 4 * attention_width * attended_positions(architecture, sequence_length)


def training_flops_per_token(architecture: Architecture, sequence_length: int) -> int:
    # PaLM appendix B: forward + backward = 3 x forward (6N + 12 * L * H * Q * T)
    return 3 * forward_flops_per_token(architecture, sequence_length)


def throughput(
    payload: Mapping[str, Any],
    gpu: GpuSpec,
    gpu_count: int,
    efficiencies: Efficiencies | None = None,
    *,
    architecture: Architecture | None = None,
    sizer: Sizer | None = None,
) -> dict[str, Any]:
    """Roofline speeds on `gpu_count` GPUs: inference gives decode (memory-bandwidth bound)
    and prefill (compute bound) tokens/s, training gives training tokens/s (compute bound)."""
    sizer = sizer or Sizer(payload, architecture)
    efficiencies = efficiencies or Efficiencies()
    inputs, model = sizer.inputs, sizer.architecture
    configuration = configuration_for(sizer, gpu_count)
    peak_flops = gpu.bf16_dense_flops_per_s * gpu_count
    result: dict[str, Any] = {
        "gpu": gpu.slug,
        "gpu_count": gpu_count,
        "configuration": configuration.as_dict(),
        "efficiencies": efficiencies.as_dict(),
        "decode": None,
        "prefill": None,
        "training": None,
    }
    if inputs.training:
        flops = training_flops_per_token(model, inputs.sequence_length)
        result["training"] = {
            "flops_per_token": flops,
            "tokens_per_s": peak_flops * efficiencies.training / flops,
        }
        return result
    breakdown = sizer.breakdown(configuration)
    if breakdown is not None:
        result["decode"] = decode_rate(
            breakdown, model, inputs.batch_size, configuration, gpu, efficiencies.decode
        )
    flops = forward_flops_per_token(model, inputs.sequence_length)
    result["prefill"] = {
        "flops_per_token": flops,
        "tokens_per_s": peak_flops * efficiencies.prefill / flops,
    }
    return result


def decode_rate(
    breakdown: Breakdown,
    architecture: Architecture,
    batch_size: int,
    configuration: Configuration,
    gpu: GpuSpec,
    efficiency: float,
) -> dict[str, Any]:
    """Decode speed from the busiest GPU's bytes: each step reads its active weights and the
    whole KV cache of its batch once (memory-bandwidth bound, the weights shared by the batch)."""
    total = architecture.num_parameters
    active = architecture.num_active_parameters or total
    # MoE: a step reads the experts its tokens are routed to, about active / total of the weights
    active_weight_bytes = breakdown.weights * active // total
    bytes_per_step = active_weight_bytes + breakdown.kv_cache
    # pipeline stages run one after another for a token: a step takes pp stage times
    step_seconds = (
        configuration.pipeline_parallel
        * bytes_per_step
        / (gpu.memory_bandwidth_bytes_per_s * efficiency)
    )
    per_sequence = 1 / step_seconds
    return {
        "active_weight_bytes": active_weight_bytes,
        "kv_cache_bytes": breakdown.kv_cache,
        "bytes_per_step": bytes_per_step,
        "step_seconds": step_seconds,
        "tokens_per_s_per_sequence": per_sequence,
        # every data-parallel replica decodes its own batch
        "tokens_per_s": per_sequence * batch_size * configuration.data_parallel,
    }


# --- cost --------------------------------------------------------------------------------------


def cost(
    rates: Mapping[str, Any],
    gpu: GpuSpec,
    gpu_count: int,
    *,
    price_per_hour: float | None = None,
    training_tokens: int | None = None,
    epochs: float = 1,
) -> dict[str, Any]:
    """What the configuration costs: per hour, per million generated tokens (at the aggregate
    decode rate of `rates`, a `throughput` result) and for a training run of `training_tokens`
    tokens over `epochs` epochs. `price_per_hour` (per GPU) overrides the GPU's price; without
    a price every figure is None."""
    price = gpu.price_per_hour_usd if price_per_hour is None else price_per_hour
    result: dict[str, Any] = {
        "price_per_gpu_hour": price,
        "gpu_count": gpu_count,
        "per_hour": None,
        "per_million_tokens": None,
        "training_run": None,
    }
    if price is None:
        return result
    per_hour = gpu_count * price
    result["per_hour"] = per_hour
    decode = rates.get("decode")
    if decode and decode["tokens_per_s"]:
        seconds_per_million = TOKENS_PER_MILLION / decode["tokens_per_s"]
        result["per_million_tokens"] = per_hour * seconds_per_million / SECONDS_PER_HOUR
    training = rates.get("training")
    if training and training_tokens is not None:
        seconds = training_tokens * epochs / training["tokens_per_s"]
        result["training_run"] = {
            "tokens": training_tokens,
            "epochs": epochs,
            "seconds": seconds,
            "hours": seconds / SECONDS_PER_HOUR,
            "cost": per_hour * seconds / SECONDS_PER_HOUR,
        }
    return result


# --- the contract's hardware fields ------------------------------------------------------------

# Defaults of the request's hardware fields (None: not asked, or taken from elsewhere)
HARDWARE_DEFAULTS: dict[str, Any] = {
    "gpu": None,  # no GPU: no fit, capacity, throughput or cost
    "gpu_count": None,  # num_gpus
    "price_per_hour": None,  # the GPU's price
    "memory_utilization": DEFAULT_MEMORY_UTILIZATION,
    "decode_efficiency": DEFAULT_DECODE_EFFICIENCY,
    "prefill_efficiency": DEFAULT_PREFILL_EFFICIENCY,
    "training_efficiency": DEFAULT_TRAINING_EFFICIENCY,
    "training_tokens": None,  # no training run to cost
    "epochs": 1,
}
# Shares of memory or of a peak below 1% describe no real setup, and would drive times and
# costs past what a float holds
MIN_FRACTION = 0.01
# (min, max) of the numeric hardware fields
HARDWARE_LIMITS: dict[str, tuple[float, float]] = {
    "gpu_count": INPUT_LIMITS["num_gpus"],
    "price_per_hour": (0, 1_000_000),
    "memory_utilization": (MIN_FRACTION, 1),
    "decode_efficiency": (MIN_FRACTION, 1),
    "prefill_efficiency": (MIN_FRACTION, 1),
    "training_efficiency": (MIN_FRACTION, 1),
    "training_tokens": (1, 10**16),
    "epochs": (0, 10_000),
}
FRACTION_FIELDS = (
    "memory_utilization",
    "decode_efficiency",
    "prefill_efficiency",
    "training_efficiency",
)
GPU_SPEC_LIMITS: dict[str, tuple[float, float]] = {
    "memory_bytes": (1, 2**50),
    "memory_bandwidth_bytes_per_s": (1, 10**15),
    "bf16_dense_tflops": (0.001, 10**6),
    "price_per_hour_usd": (0, 1_000_000),
}
# the catalog slug or a name saying which GPU it is; figures are what the formulas use
GPU_SPEC_FIELDS = ("slug", "name", *GPU_SPEC_LIMITS)


@dataclass(frozen=True)
class HardwareRequest:
    gpu: GpuSpec | None
    gpu_count: int
    price_per_hour: float | None
    memory_utilization: float
    efficiencies: Efficiencies
    training_tokens: int | None
    epochs: float

    def as_dict(self) -> dict[str, Any]:
        """The normalised hardware fields, for the response's `inputs` (null when not asked)."""
        gpu = self.gpu
        return {
            "gpu": None
            if gpu is None
            else {
                "slug": gpu.slug,
                "name": gpu.name,
                "memory_bytes": gpu.memory_bytes,
                "memory_bandwidth_bytes_per_s": gpu.memory_bandwidth_bytes_per_s,
                "bf16_dense_tflops": gpu.bf16_dense_tflops,
                "price_per_hour_usd": gpu.price_per_hour_usd,
            },
            "gpu_count": self.gpu_count,
            "price_per_hour": self.price_per_hour,
            "memory_utilization": self.memory_utilization,
            "decode_efficiency": self.efficiencies.decode,
            "prefill_efficiency": self.efficiencies.prefill,
            "training_efficiency": self.efficiencies.training,
            "training_tokens": self.training_tokens,
            "epochs": self.epochs,
        }


def _number(field: str, value: Any, low: float, high: float, *, open_low: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EstimateError(field, f"must be a number, not {value!r:.40}")
    if value < low or value > high or (open_low and value == low):
        bound = f"more than {low:g}" if open_low else f"at least {low:g}"
        raise EstimateError(field, f"must be {bound} and at most {high:g}, not {value:g}")
    return value


def _whole(field: str, value: Any, low: float, high: float) -> int:
    number = _number(field, value, low, high, open_low=False)
    if not float(number).is_integer():
        raise EstimateError(field, f"must be a whole number, not {number:g}")
    return int(number)


def gpu_spec(value: Any, field: str = "gpu") -> GpuSpec:
    """A GpuSpec from the contract's `gpu` object, or EstimateError naming the bad member."""
    if not isinstance(value, Mapping):
        raise EstimateError(
            field,
            "must be an object with memory_bytes, memory_bandwidth_bytes_per_s and "
            "bf16_dense_tflops (a catalog slug is resolved by the web layer)",
        )
    unknown = sorted(str(name) for name in value if name not in GPU_SPEC_FIELDS)
    if unknown:
        raise EstimateError(
            f"{field}.{unknown[0]}", f"unknown; allowed: {', '.join(GPU_SPEC_FIELDS)}"
        )
    for name in ("memory_bytes", "memory_bandwidth_bytes_per_s", "bf16_dense_tflops"):
        if value.get(name) is None:
            raise EstimateError(f"{field}.{name}", "is required")
    figures: dict[str, Any] = {}
    for name in ("memory_bytes", "memory_bandwidth_bytes_per_s"):
        figures[name] = _whole(f"{field}.{name}", value[name], *GPU_SPEC_LIMITS[name])
    figures["bf16_dense_tflops"] = float(
        _number(
            f"{field}.bf16_dense_tflops",
            value["bf16_dense_tflops"],
            *GPU_SPEC_LIMITS["bf16_dense_tflops"],
            open_low=False,
        )
    )
    price = value.get("price_per_hour_usd")
    if price is not None:
        price = _number(
            f"{field}.price_per_hour_usd",
            price,
            *GPU_SPEC_LIMITS["price_per_hour_usd"],
            open_low=False,
        )
    labels = {}
    for name in ("slug", "name"):
        label = value.get(name, "")
        if not isinstance(label, str) or len(label) > 200:
            raise EstimateError(f"{field}.{name}", "must be text of at most 200 characters")
        labels[name] = label
    return GpuSpec(
        slug=labels["slug"],
        name=labels["name"] or labels["slug"] or "GPU",
        price_per_hour_usd=price,
        **figures,
    )


def parse_hardware(payload: Mapping[str, Any], num_gpus: int) -> HardwareRequest:
    """Validate the request's hardware fields (each error names its field)."""

    def get(name: str) -> Any:
        value = payload.get(name)
        return HARDWARE_DEFAULTS[name] if value is None else value

    gpu = None if payload.get("gpu") is None else gpu_spec(payload["gpu"])
    count = payload.get("gpu_count")
    gpu_count = (
        num_gpus if count is None else _whole("gpu_count", count, *HARDWARE_LIMITS["gpu_count"])
    )
    price = payload.get("price_per_hour")
    if price is not None:
        price = _number("price_per_hour", price, *HARDWARE_LIMITS["price_per_hour"], open_low=False)
    fractions = {
        name: _number(name, get(name), *HARDWARE_LIMITS[name], open_low=False)
        for name in FRACTION_FIELDS
    }
    tokens = payload.get("training_tokens")
    if tokens is not None:
        tokens = _whole("training_tokens", tokens, *HARDWARE_LIMITS["training_tokens"])
    epochs = _number("epochs", get("epochs"), *HARDWARE_LIMITS["epochs"], open_low=True)
    return HardwareRequest(
        gpu=gpu,
        gpu_count=gpu_count,
        price_per_hour=price,
        memory_utilization=fractions["memory_utilization"],
        efficiencies=Efficiencies(
            decode=fractions["decode_efficiency"],
            prefill=fractions["prefill_efficiency"],
            training=fractions["training_efficiency"],
        ),
        training_tokens=tokens,
        epochs=epochs,
    )


def gpu_answer(
    sizer: Sizer,
    gpu: GpuSpec,
    gpu_count: int,
    memory_utilization: float,
    fit_row: Mapping[str, Any],
) -> dict[str, Any]:
    """The headline for the GPU asked for: whether the request's own layout on `gpu_count` of
    them fits their usable memory and with what to spare, else the fewest that do (the same
    layout as capacity, throughput and cost describe)."""
    configuration = configuration_for(sizer, gpu_count)
    per_gpu = sizer.total_bytes(configuration)
    usable = usable_bytes(gpu, memory_utilization)
    fits = per_gpu is not None and per_gpu <= usable
    return {
        "gpu": gpu.slug,
        "name": gpu.name,
        "gpu_count": gpu_count,
        "configuration": configuration.as_dict(),
        "memory_utilization": memory_utilization,
        "usable_bytes": usable,
        "per_gpu_bytes": per_gpu,
        "fits": fits,
        "spare_bytes": None if per_gpu is None else usable - per_gpu,
        # when it does not fit: the fewest GPUs of this type that do, and how they are laid out
        "needs": None
        if fits or fit_row["fewest_gpus"] is None
        else {
            "gpu_count": fit_row["fewest_gpus"],
            "configuration": fit_row["configuration"],
            "per_gpu_bytes": fit_row["per_gpu_bytes"],
        },
    }


# GPU counts of the capacity chart
CAPACITY_CHART_GPU_COUNTS = (1, 2, 4, 8)


def hardware_answers(
    payload: Mapping[str, Any],
    request: HardwareRequest,
    *,
    architecture: Architecture | None = None,
    fit_gpus: Sequence[GpuSpec] | None = None,
) -> dict[str, Any]:
    """The response's `fit`, `capacity`, `throughput` and `cost` for a request with a `gpu`.

    `fit` covers `fit_gpus` when given (the web layer passes its catalog) and the GPU asked
    for; `capacity` adds `by_gpu_count`, the capacity on 1, 2, 4 and 8 GPUs for a chart."""
    gpu = request.gpu
    assert gpu is not None
    sizer = Sizer(payload, architecture)
    count = request.gpu_count
    utilization = request.memory_utilization
    # the GPU asked for is always among the fit rows, first when it is not one of `fit_gpus`
    fit_list = list(fit_gpus or ())
    fit_rows = fit(
        payload,
        fit_list if gpu in fit_list else [gpu, *fit_list],
        memory_utilization=utilization,
        sizer=sizer,
    )
    capacity_answer = capacity(payload, gpu, count, memory_utilization=utilization, sizer=sizer)
    asked_row = next(row for row in fit_rows if row["gpu"] == gpu.slug)
    capacity_answer["by_gpu_count"] = [
        {
            name: row[name]
            for name in ("gpu_count", "configuration", "max_batch_size", "max_sequence_length")
        }
        for row in capacity_by_gpu_count(
            payload,
            gpu,
            CAPACITY_CHART_GPU_COUNTS,
            memory_utilization=utilization,
            sizer=sizer,
            known={count: capacity_answer},
        )
    ]
    rates = throughput(payload, gpu, count, request.efficiencies, sizer=sizer)
    return {
        "answer": gpu_answer(sizer, gpu, count, utilization, asked_row),
        "fit": fit_rows,
        "capacity": capacity_answer,
        "throughput": rates,
        "cost": cost(
            rates,
            gpu,
            count,
            price_per_hour=request.price_per_hour,
            training_tokens=request.training_tokens,
            epochs=request.epochs,
        ),
    }
