"""How a model is split over GPUs: tensor, pipeline, context, expert and data parallelism.

Tensor parallel (Megatron-LM, Shoeybi et al. 2019) splits attention heads, MLP columns and the
vocabulary over `tp` GPUs; pipeline parallel splits the layers over `pp` stages; context parallel
(training, Megatron-Core / TransformerEngine ring attention) splits each sequence over `cp` GPUs;
the remaining `dp = num_gpus / (tp * pp * cp)` replicas share training state under ZeRO
(Rajbhandari et al. 2020), sharded over dp x cp ranks as Megatron's distributed optimizer does.
Expert parallel splits the routed experts: over tp x dp ranks in inference (vLLM), over `ep`
ranks of cp x dp with each expert still split over tp in training (Megatron-Core, etp = tp).
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
    # each routed expert's matrices split over this many ranks: 1 in inference (vLLM EP keeps
    # experts whole), tp in training (Megatron-Core expert_tensor_parallel_size defaults to tp)
    expert_tensor_parallel: int = 1
    # the sequence split over this many ranks (training; weights replicated over them)
    context_parallel: int = 1

    @property
    def sharding_ranks(self) -> int:
        """Ranks ZeRO / FSDP shard dense training state over: data x context parallel, as
        Megatron-Core's distributed optimizer does (megatron/core/optimizer/__init__.py:
        data_parallel_group=intra_dp_cp_group)."""
        return self.data_parallel * self.context_parallel

    @property
    def expert_sharding_ranks(self) -> Fraction:
        """Ranks routed-expert training state is sharded over: Megatron's expert data parallel
        group, (tp x cp x dp) / (etp x ep) (parallel_state.py expert_data_parallel_size)."""
        return Fraction(self.sharding_ranks, self.expert_parallel)


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
        expert_tensor_parallel=tp if inputs.training else 1,
        context_parallel=inputs.context_parallel,
    )
