"""How a model is split over GPUs: tensor, pipeline and data parallelism (ZeRO).

Tensor parallel (Megatron-LM, Shoeybi et al. 2019) splits attention heads, MLP columns and the
vocabulary over `tp` GPUs; pipeline parallel splits the layers over `pp` stages; the remaining
`dp = num_gpus / (tp * pp)` replicas share training state under ZeRO (Rajbhandari et al. 2020).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from calculator.engine.architecture import Architecture
from calculator.engine.inputs import EstimateInputs


@dataclass(frozen=True)
class Stage:
    """One GPU's part of the model: the worst case of its pipeline stage."""

    name: str  # "only", "first", "last"
    num_layers: int  # layers held by this stage
    layer_fraction: Fraction  # num_layers / model layers
    has_embeddings: bool
    has_lm_head: bool
    in_flight_micro_batches: int  # 1F1B schedule: stage i of p holds p - i micro-batches


@dataclass(frozen=True)
class Layout:
    tensor_parallel: int
    pipeline_parallel: int
    data_parallel: int
    zero_stage: int
    kv_heads_per_gpu: int  # replicated when the model has fewer KV heads than tp
    kv_heads_replicated: bool
    stages: tuple[Stage, ...]  # the stages whose worst case is reported (first and last)
    # routed experts split over this many ranks of a stage (vLLM EP: tp x dp), whole experts
    expert_parallel: int = 1


def kv_heads_per_gpu(num_key_value_heads: int, tensor_parallel: int) -> int:
    # Megatron / vLLM: with fewer KV heads than tp ranks each rank keeps one (replicated) head
    return max(num_key_value_heads // tensor_parallel, 1)


def layout_for(inputs: EstimateInputs, architecture: Architecture) -> Layout:
    tp, pp = inputs.tensor_parallel, inputs.pipeline_parallel
    layers = architecture.num_layers
    # the busiest stages hold ceil(layers / pp) layers
    stage_layers = -(-layers // pp)
    fraction = Fraction(stage_layers, layers)
    if pp == 1:
        stages: tuple[Stage, ...] = (Stage("only", layers, Fraction(1), True, True, 1),)
    else:
        stages = (
            # 1F1B (Narayanan et al. 2021): the first stage holds pp micro-batches in flight
            Stage("first", stage_layers, fraction, True, False, pp),
            Stage("last", stage_layers, fraction, False, True, 1),
        )
    kv_heads = architecture.num_key_value_heads
    return Layout(
        tensor_parallel=tp,
        pipeline_parallel=pp,
        data_parallel=inputs.data_parallel,
        zero_stage=inputs.zero_stage,
        kv_heads_per_gpu=kv_heads_per_gpu(kv_heads, tp),
        kv_heads_replicated=kv_heads < tp and not architecture.is_mla,
        stages=stages,
        expert_parallel=inputs.expert_parallel,
    )
