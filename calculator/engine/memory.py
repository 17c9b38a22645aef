"""The `detailed` method's answer: one GPU's memory lines under a plan and the estimate.

engine/detailed.py sizes the parts (weights, KV cache, each layer's activations); this module
lays them out on the GPUs of a plan (tensor, pipeline, context and expert parallelism, ZeRO and
FSDP sharding and their working sets, CPU offload), adds what training keeps (gradients, the
optimizer's states and master weights), what the allocator or the device holds beyond the
tensors (`memory_view`), and writes the notes that say why.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction

from calculator.engine.architecture import (
    Architecture,
)
from calculator.engine.breakdown import Breakdown, MethodResult
from calculator.engine.detailed import (
    CHECKPOINTED_INPUTS_PER_LAYER,
    FP32_BYTES,
    ActivationDtypes,
    AttentionWidths,
    ModelParts,
    _activation_dtypes,
    _bnb_saves_inputs,
    _dequantisation_buffer,
    _inference_activations,
    _per_gpu,
    _stage_share,
    _stage_weights,
    _training_activations,
    attention_widths,
    cross_attention_cache_bytes,
    gptq_cuda_old_dequantised,
    gptq_kernel_buffers,
    inference_dispatch_bytes,
    inference_layer_activations,
    kv_cache_bytes,
    lora_adapter_bytes,
    lora_adapter_parameters,
    lora_targets,
    model_parts,
    parallel_buffers,
    state_layer_bytes,
    training_layer_activations,
)
from calculator.engine.dtypes import (
    BNB_4BIT_DTYPES,
    DTYPES,
    ELEMENT_BYTES,
    LINEAR_MODULE_ONLY_DTYPES,
    other_parameter_bytes,
)
from calculator.engine.inputs import ALL_LINEAR, EstimateInputs
from calculator.engine.parallel import Layout, Stage, layout_for
from calculator.engine.vision import MODELS, image_load, tower_architecture

# CUDA context, kernels and caching-allocator slack: transformers docs measured 1,343 MB on a
# V100, gpu_poor uses 650 MB (memory-model.md "Runtime overhead"); 1 GiB sits in that range
DEFAULT_RUNTIME_OVERHEAD_BYTES = 2**30

# memory_view "device" (nvidia-smi): the CUDA context and kernels a process holds before any
# tensor; transformers docs model_memory_anatomy.md: NVML "used" 1343 MB (MiB, info.used // 1024**2)
# right after torch.ones((1, 1)).to("cuda") (driver 460.91.03)
CUDA_CONTEXT_BYTES = 1343 * 2**20

# memory_view "reserved" (torch.cuda.max_memory_reserved): the segments PyTorch's CUDA caching
# allocator holds (c10/cuda/CUDACachingAllocator.cpp, torch 2.x): every request is rounded up to
# kMinBlockSize (512 B, round_size); requests of at most kSmallSize (1 MiB) are carved from 2 MiB
# segments (kSmallBuffer), larger ones below kMinLargeAlloc (10 MiB) from 20 MiB segments
# (kLargeBuffer), and from 10 MiB on each gets a segment of its size rounded up to kRoundLarge
# (2 MiB) (get_allocation_size)
ALLOCATOR_MIN_BLOCK = 512
ALLOCATOR_SMALL_SIZE = 2**20
ALLOCATOR_SMALL_BUFFER = 2 * 2**20
ALLOCATOR_MIN_LARGE_ALLOC = 10 * 2**20
ALLOCATOR_LARGE_BUFFER = 20 * 2**20
ALLOCATOR_ROUND_LARGE = 2 * 2**20

# fraction of the gradients allocated at the activation peak: with zero_grad(set_to_none=True)
# (HF Trainer, torch's default) no gradient exists when backward starts and gradients appear as
# activations are freed, so the peak is max(activations, gradients) above weights + optimizer
# (every full-training validation case peaks in LogSoftmaxBackward0, e.g.
# llama-train-b2-s256-adamw-fp32-sdpa); 1 would model gradient accumulation
GRADIENTS_ALLOCATED_AT_ACTIVATION_PEAK = 0

# DeepSpeed's own ZeRO defaults (deepspeed/runtime/zero/config.py, DeepSpeedZeroConfig):
# reduce_bucket_size 5e8 elements, stage3_prefetch_bucket_size 5e7, stage3_max_reuse_distance 1e9.
# The HF Trainer's "auto" fills reduce_bucket_size = hidden_size**2 and the prefetch bucket
# 0.9 x that (transformers integrations/deepspeed.py, trainer_config_finalize): sharding
# "deepspeed_hf_auto".
DEEPSPEED_REDUCE_BUCKET = 500_000_000
DEEPSPEED_PREFETCH_BUCKET = 50_000_000
DEEPSPEED_MAX_REUSE_DISTANCE = 1_000_000_000

# autocast's 16-bit copy of a float32 matmul weight (saved by F.linear for backward): nn.Linear
# weight matrices and the LM head only; biases are cast but not saved, embeddings, norms and
# transformers 5's fused 3-D experts are not copied (validation autocast_copy_bytes of the
# llama, gpt2 and deepseek_v2 bf16mixed cases)
AUTOCAST_COPY_BYTES = 2

# AdamW keeps exp_avg and exp_avg_sq; SGD with momentum keeps momentum_buffer
OPTIMIZER_STATES = {
    "adamw": 2,
    "adamw_8bit": 2,
    "sgd": 0,
    "sgd_momentum": 1,
    "paged_adamw": 2,
    "paged_adamw_8bit": 2,
}

# bitsandbytes 8-bit Adam: uint8 states, blockwise, one fp32 absmax per 2048 values per state
ADAM_8BIT_STATE_BYTES = 1
ADAM_8BIT_BLOCK = 2048
ADAM_8BIT_ABSMAX_BYTES = 4

# bitsandbytes 32-bit optimizers (PagedAdamW) keep float32 states whatever the parameter dtype
# (bitsandbytes optim/optimizer.py Optimizer2State.init_state: dtype=torch.float32 for 32 bits)
BNB_32BIT_STATE_BYTES = 4
PAGED_OPTIMIZERS = ("paged_adamw", "paged_adamw_8bit")

# bitsandbytes optim/optimizer.py (0.41-0.45) Optimizer8bit.get_state_buffer: `if not
# self.is_paged or p.numel() < 1e5: return torch.zeros_like(p, ...)`, a device tensor; only larger
# parameters get paged (F.get_paged) states
BNB_PAGED_MIN_NUMEL = 100_000

# transformers.optimization.Adafactor (defaults: beta1=None, so no exp_avg): per parameter of 2 or
# more dimensions a row and a column second-moment vector, exp_avg_sq_row (shape[:-1]) and
# exp_avg_sq_col (shape[:-2] + shape[-1:]); per 1-D parameter a whole exp_avg_sq; all float32
# (its step casts 16-bit gradients with grad.float() before `torch.zeros(...).to(grad)`)
ADAFACTOR_STATE_BYTES = 4

# DeepEP (vLLM --all2all-backend deepep_high_throughput / deepep_low_latency) reserves an NVLink
# buffer of VLLM_DEEPEP_BUFFER_SIZE_MB (vllm/envs.py default 1024) MiB per GPU at start-up
DEEPEP_NVL_BUFFER_BYTES = 1024 * 2**20


@dataclass(frozen=True)
class TrainingPrecision:
    gradient_bytes: int
    state_bytes: int  # per optimizer state value (AdamW / momentum), zeros_like(param)
    master_bytes: int  # fp32 master copy per trainable parameter (0 without one)
    autocast_copy_bytes: int  # 16-bit copy autocast saves of each float32 matmul weight


def _training_precision(inputs: EstimateInputs) -> TrainingPrecision:
    if inputs.finetuning in ("lora", "qlora"):
        # gradients and states in the adapters' dtype, no separate master copy; autocast keeps a
        # 16-bit copy of float32 adapters for backward
        adapter = lora_adapter_bytes(inputs)
        copy = AUTOCAST_COPY_BYTES if inputs.mixed_precision and adapter == FP32_BYTES else 0
        return TrainingPrecision(adapter, adapter, 0, copy)
    weights_fp32 = inputs.weight_dtype == "float32"
    if inputs.mixed_precision:
        if weights_fp32:
            # AMP: fp32 weights are the master copy; autocast keeps a 16-bit copy for backward
            return TrainingPrecision(FP32_BYTES, FP32_BYTES, 0, AUTOCAST_COPY_BYTES)
        # 16-bit weights + fp32 master weights (transformers "model memory anatomy": 18 B/param)
        return TrainingPrecision(FP32_BYTES, FP32_BYTES, FP32_BYTES, 0)
    element = int(ELEMENT_BYTES[inputs.weight_dtype])
    return TrainingPrecision(element, element, 0, 0)


def _optimizer_bytes(optimizer: str, trainable: Fraction, state_bytes: int) -> Fraction:
    if optimizer == "paged_adamw":
        return OPTIMIZER_STATES[optimizer] * trainable * BNB_32BIT_STATE_BYTES
    if optimizer in ("adamw_8bit", "paged_adamw_8bit"):
        # bitsandbytes blockwise 8-bit Adam: 2 uint8 states + fp32 absmax per 2048-value block
        states = OPTIMIZER_STATES[optimizer]
        blocks = -(-trainable // ADAM_8BIT_BLOCK)
        return states * (trainable * ADAM_8BIT_STATE_BYTES + blocks * ADAM_8BIT_ABSMAX_BYTES)
    # torch.optim: each state is zeros_like(param), in the trainable parameter's dtype
    return OPTIMIZER_STATES[optimizer] * trainable * state_bytes


def _unpaged_share(architecture: Architecture, inputs: EstimateInputs) -> Fraction:
    """The share of the trainable values whose paged-optimizer states bitsandbytes keeps on the
    device: those of parameters under 1e5 values (1-D norms and biases, small LoRA matrices)."""
    if inputs.finetuning in ("lora", "qlora"):
        small = total = 0
        for layer in lora_targets(architecture, inputs):
            rank = inputs.lora_rank * layer.lora_rank_factor
            for numel in (rank * layer.in_features, rank * layer.out_features):
                total += numel * layer.count
                small += numel * layer.count if numel < BNB_PAGED_MIN_NUMEL else 0
        return Fraction(small, total) if total else Fraction(0)
    parts = model_parts(architecture, inputs.weight_dtype)
    small = parts.norms + parts.layer_other  # 1-D parameters, each under 1e5 values
    small += sum(
        layer.in_features * layer.out_features * layer.count
        for layer in architecture.linear_layers
        if layer.in_features * layer.out_features < BNB_PAGED_MIN_NUMEL
    )
    return Fraction(small, parts.total) if parts.total else Fraction(0)


def adafactor_state_elements(architecture: Architecture, inputs: EstimateInputs) -> int:
    """Values of Adafactor's factored second moment over the trainable parameters of the whole
    model: out + in per weight matrix (a fused expert tensor E x out x in: E x (out + in), the
    same as its E matrices), every value of a 1-D parameter (norms, biases)."""
    if inputs.finetuning in ("lora", "qlora"):
        # A is rank x in, B is out x rank: (rank + in) + (out + rank) per adapted matrix
        return sum(
            layer.count
            * (
                layer.in_features
                + layer.out_features
                + 2 * inputs.lora_rank * layer.lora_rank_factor
            )
            for layer in lora_targets(architecture, inputs)
        )
    parts = model_parts(architecture, inputs.weight_dtype)
    hidden = architecture.hidden_size
    matrices = sum(
        layer.count * (layer.in_features + layer.out_features)
        for layer in architecture.linear_layers
    )
    if not architecture.linear_layers:
        # matrices unknown: hidden_size-wide rows, as model_parts counts them
        matrices = parts.layer_linear // hidden + hidden
    # token (and position) embeddings and an untied LM head: hidden-wide matrices
    for table in (parts.embeddings, parts.lm_head):
        if table:
            matrices += table // hidden + hidden
    elements = matrices + parts.layer_other + parts.norms
    if inputs.finetuning == "partial":
        return round(elements * Fraction(inputs.trainable_percent) / 100)
    return elements


@dataclass(frozen=True)
class Plan:
    """Everything of an estimate that does not depend on batch size or sequence length."""

    layout: Layout
    parts: ModelParts
    widths: AttentionWidths
    dtypes: ActivationDtypes
    # per reported stage: (parameters on the GPU, their bytes)
    stage_weights: tuple[tuple[Fraction | int, Fraction | int], ...]
    overhead: int
    trainable: int  # trainable parameters of the whole model
    trainable_share: Fraction | int  # share of the base parameters trained
    lora_parameters: int
    adafactor_elements: int = 0  # optimizer adafactor: its factored states' values, whole model
    unpaged_share: Fraction | int = 1  # paged optimizers: the states' share left on the device


def plan_for(inputs: EstimateInputs, architecture: Architecture, notes: list[str]) -> Plan:
    layout = layout_for(inputs, architecture)
    parts = model_parts(architecture, inputs.weight_dtype, inputs.quantise_lm_head)
    if layout.tensor_parallel == layout.pipeline_parallel == layout.expert_parallel == 1:
        stage_weights: tuple[tuple[Fraction | int, Fraction | int], ...] = (
            (parts.total, parts.total_bytes),
        )
    else:
        stage_weights = _stage_weights(architecture, inputs.weight_dtype, layout, parts)
    overhead = inputs.runtime_overhead_bytes
    if overhead is None and inputs.memory_view == "reserved":
        overhead = 0
        notes.append(
            "Memory view reserved: tensors rounded as PyTorch's caching allocator reserves them "
            "(512-byte blocks, 2 MiB segments for tensors up to 1 MiB, 20 MiB below 10 MiB, "
            "larger ones rounded to 2 MiB), in runtime_overhead; fragmentation left out"
        )
    elif overhead is None and inputs.memory_view == "allocated":
        overhead = 0
        notes.append(
            "Memory view allocated: tensors only, as torch.cuda.max_memory_allocated reports "
            "(no CUDA context)"
        )
    elif overhead is None and inputs.memory_view == "device":
        overhead = CUDA_CONTEXT_BYTES
        notes.append(
            "Memory view device: tensors rounded as PyTorch's caching allocator reserves them "
            "(as the reserved view), plus the CUDA context and kernels nvidia-smi shows "
            "(1,343 MiB, transformers docs), in runtime_overhead"
        )
    elif overhead is None:
        overhead = DEFAULT_RUNTIME_OVERHEAD_BYTES
        notes.append(
            "Runtime overhead: 1 GiB default for the CUDA context, kernels and allocator "
            "(set runtime_overhead_bytes to change it, 0 to remove it)"
        )
    trainable_share: Fraction | int = 1
    lora_parameters = trainable = 0
    if inputs.training:
        trainable, trainable_share, lora_parameters = _trainable(inputs, architecture, notes)
    return Plan(
        layout=layout,
        parts=parts,
        widths=attention_widths(architecture, layout),
        dtypes=_activation_dtypes(inputs),
        stage_weights=stage_weights,
        overhead=overhead,
        trainable=trainable,
        trainable_share=trainable_share,
        lora_parameters=lora_parameters,
        # neither depends on the batch or the length: once per plan, not per breakdown
        adafactor_elements=adafactor_state_elements(architecture, inputs)
        if inputs.training and inputs.optimizer == "adafactor"
        else 0,
        unpaged_share=_unpaged_share(architecture, inputs)
        if inputs.training and inputs.optimizer in PAGED_OPTIMIZERS
        else 1,
    )


def _stage_breakdown(
    architecture: Architecture, inputs: EstimateInputs, plan: Plan, index: int
) -> Breakdown:
    lines = _stage_tensors(architecture, inputs, plan, index)
    if inputs.memory_view in ("reserved", "device") and inputs.runtime_overhead_bytes is None:
        # nvidia-smi shows the segments the caching allocator reserved, and the CUDA context
        # beside them (plan.overhead: 0 for reserved, CUDA_CONTEXT_BYTES for device)
        stage = plan.layout.stages[index]
        slack = _allocator_slack(architecture, inputs, plan, stage, lines)
        return dataclasses.replace(lines, runtime_overhead=plan.overhead + slack)
    return lines


def _stage_tensors(
    architecture: Architecture, inputs: EstimateInputs, plan: Plan, index: int
) -> Breakdown:
    layout, parts, dtypes, widths = plan.layout, plan.parts, plan.dtypes, plan.widths
    stage = layout.stages[index]
    params_on_gpu, weights = plan.stage_weights[index]
    overhead = plan.overhead
    if not inputs.training:
        kv_cache = kv_cache_bytes(
            architecture,
            layout,
            stage,
            inputs.batch_size,
            inputs.sequence_length,
            inputs.kv_cache_dtype,
            conv_state_bytes=dtypes.compute,
        )
        images = image_load(inputs, architecture.vision)
        if images is not None:
            kv_cache += cross_attention_cache_bytes(
                architecture,
                layout,
                stage,
                inputs.batch_size,
                images.cross_attention_states,
                inputs.kv_cache_dtype,
            )
        activations = _inference_activations(
            architecture, inputs, layout, stage, dtypes, widths, parts
        )
        if architecture.vision is not None and stage.has_embeddings:
            # the tower encodes the images before the language model runs: the larger peak
            tower = vision_activations(architecture, inputs, layout, stage)[0]
            activations = max(activations, Fraction(tower))
        # the kernels' buffers held through every step (exllama, exllamav2)
        activations += gptq_kernel_buffers(inputs, parts, layout.tensor_parallel)
        return Breakdown(
            weights=round(weights),
            kv_cache=round(kv_cache),
            activations=round(activations),
            gradients=0,
            optimizer_states=0,
            runtime_overhead=overhead,
        )

    precision = _training_precision(inputs)
    zero = layout.zero_stage
    # ZeRO / FSDP shard over data x context parallel ranks (Megatron's distributed optimizer);
    # routed experts over the expert data-parallel ranks, ep times fewer
    ranks = layout.sharding_ranks
    ep = layout.expert_parallel
    routed_parameters = routed_bytes = Fraction(0)
    if ep > 1:
        routed_parameters = _routed_on_gpu(parts.layer_routed_linear, layout, stage)
        routed_bytes = _routed_on_gpu(parts.layer_routed_linear_bytes, layout, stage)
    trainable: Fraction
    if inputs.finetuning in ("lora", "qlora"):
        trainable = Fraction(plan.lora_parameters * stage.layer_fraction) / layout.tensor_parallel
        adapters = trainable * (precision.gradient_bytes + precision.autocast_copy_bytes)
        base = weights
        master = Fraction(0)
    else:
        trainable = Fraction(params_on_gpu * plan.trainable_share)
        adapters = Fraction(0)
        base = weights + _autocast_copied(architecture, layout, stage, parts) * (
            precision.autocast_copy_bytes
        )
        master = trainable * precision.master_bytes
    # parameters that get a gradient, and so an optimizer state (fused AdamW / foreach SGD skip
    # a p.grad of None); the tower's weights are spread over the layers as in the weights line
    graded = trainable - _ungraded_on_gpu(architecture, inputs, layout, stage, plan)
    gradients = graded * precision.gradient_bytes
    if inputs.optimizer_in_backward:
        # torchtune training/memory.py register_optim_in_bwd_hooks: each parameter's
        # post-accumulate-grad hook steps its own optimizer and zeroes its gradient, so one
        # gradient exists at a time, at most the largest parameter's (a tied embedding's lives
        # from the LM head's backward to the embedding's)
        largest = _largest_trainable(architecture, inputs, layout, parts)
        gradients = min(gradients, largest * precision.gradient_bytes)
    if inputs.optimizer == "adafactor":
        # the factored states scale with the model's matrices, not their values: this GPU's
        # share of the trainable parameters takes that share of them
        share = graded / plan.trainable if plan.trainable else Fraction(0)
        optimizer_states = plan.adafactor_elements * share * ADAFACTOR_STATE_BYTES
    else:
        optimizer_states = _optimizer_bytes(inputs.optimizer, graded, precision.state_bytes)
    if inputs.optimizer in PAGED_OPTIMIZERS and inputs.memory_view in ("allocated", "reserved"):
        # paged states live in CUDA unified memory (cudaMallocManaged), outside torch's allocator:
        # neither torch.cuda.max_memory_allocated nor max_memory_reserved counts them; those of
        # small parameters are ordinary device tensors
        optimizer_states *= plan.unpaged_share
    # the share of this GPU's trainable state that is routed experts (sharded ep times less)
    routed_share = Fraction(routed_parameters, params_on_gpu) if ep > 1 else Fraction(0)
    if zero >= 1:
        # ZeRO-1 partitions optimizer states (and fp32 master weights) over the dp (x cp) ranks
        optimizer_states = _sharded(optimizer_states, ranks, ep, routed_share)
        master = _sharded(master, ranks, ep, routed_share)
    if zero >= 2:
        # ZeRO-2 also partitions gradients
        gradients = _sharded(gradients, ranks, ep, routed_share)
    sharding = _sharding_working_set(architecture, inputs, layout, stage, parts, params_on_gpu)
    quant_states = Fraction(0)
    if zero >= 3 and inputs.weight_dtype in BNB_4BIT_DTYPES:
        # bitsandbytes keeps each 4-bit layer's quant_state (absmax, code) on the module, not
        # in the parameter the framework flattens and shards (bitsandbytes nn/modules.py
        # fix_4bit_weight_quant_state_from_module: "the quant state got lost when the parameter
        # got converted. This happens for example for fsdp"): whole on every GPU, and on the
        # GPU when the parameters are offloaded
        quant_states = _bnb_quant_state_bytes(parts, layout, stage)
        base -= quant_states
    if zero >= 3:
        # ZeRO-3 / FSDP FULL_SHARD also partition parameters; what is gathered is added below
        base = _sharded(Fraction(base), ranks, ep, Fraction(routed_bytes) / base if ep > 1 else 0)
        adapters /= ranks
    host = Fraction(0)
    if inputs.offload != "none":
        # ZeRO-Offload (DeepSpeed offload_optimizer) / FSDP CPUOffload: the optimizer step runs
        # on the CPU over float32 states, master weights and gradient partitions kept there;
        # the GPU keeps only the gradients being reduced (buckets, whole layers)
        host += optimizer_states + master + gradients * FP32_BYTES / precision.gradient_bytes
        optimizer_states = master = gradients = Fraction(0)
    if inputs.offload == "optimizer_and_parameters":
        # ZeRO-Infinity offload_param / FSDP offload_params: the parameter shards live on the
        # host, the GPU gathers each layer as it computes (the working set below)
        host += base + adapters
        base = adapters = Fraction(0)
    base += sharding.parameters + quant_states
    gradients += sharding.gradients
    # context parallelism: each rank computes sequence_length / cp of every sequence
    local = _context_parallel_share(inputs, layout)
    activations, beside_gradients = _training_activations(
        architecture, local, layout, stage, dtypes, widths
    )
    if architecture.vision is not None and stage.has_embeddings:
        tower, kept = vision_activations(architecture, inputs, layout, stage)
        activations = activations + tower if kept else max(activations, Fraction(tower))
    activations += _dequantisation_buffer(local, parts, layout.tensor_parallel)
    activations += gptq_kernel_buffers(local, parts, layout.tensor_parallel)
    activations += gptq_cuda_old_dequantised(local, parts, layout.tensor_parallel)
    activation_peak = activations
    # the peak holds max(activations, gradients allocated): shown as the activations beyond
    # the gradients, so that the breakdown still sums to the peak with exact gradients
    allocated = gradients * GRADIENTS_ALLOCATED_AT_ACTIVATION_PEAK
    if inputs.gradient_accumulation_steps > 1:
        # from the second micro-batch on, the accumulated gradients exist through backward
        allocated = gradients
    activations = max(activations - (gradients - allocated), Fraction(0))
    if beside_gradients:
        # gradient checkpointing: the lowest checkpointed layer is recomputed with the gradients
        # allocated, a later peak than the loss's where the gradients are the larger; all but
        # the input embeddings' (their backward is the last), unless the LM head shares them
        pending = Fraction(0)
        untied = parts.lm_head or layout.pipeline_parallel > 1
        if stage.has_embeddings and untied and inputs.finetuning in ("full", "partial"):
            embeddings = Fraction(parts.embeddings, layout.tensor_parallel)
            pending = gradients * embeddings / params_on_gpu
        activations = max(activations, beside_gradients - pending)
    return Breakdown(
        activation_peak=round(activation_peak),
        weights=round(base + master + adapters),
        kv_cache=0,
        activations=round(activations),
        # the framework's gradient buckets exist through backward, beside the activations
        gradients=round(gradients + sharding.buckets),
        optimizer_states=round(optimizer_states),
        runtime_overhead=overhead,
        host_bytes=round(host),
    )


def _bnb_4bit_packed_bytes(parts: ModelParts) -> Fraction:
    """The layers' linear bytes without bitsandbytes' quantisation statistics: the 4-bit
    matrices' packed half byte a weight, and the routed experts, which stay 16-bit."""
    quantised = parts.layer_linear - parts.layer_routed_linear
    return Fraction(quantised, 2) + parts.layer_routed_linear_bytes


def _bnb_quant_state_bytes(parts: ModelParts, layout: Layout, stage: Stage) -> Fraction:
    """One GPU's bytes of bitsandbytes 4-bit quantisation statistics: what the layers' 4-bit
    matrices store beyond their packed half byte a weight."""
    statistics = parts.layer_linear_bytes - _bnb_4bit_packed_bytes(parts)
    return statistics * stage.layer_fraction / layout.tensor_parallel


def _largest_trainable(
    architecture: Architecture, inputs: EstimateInputs, layout: Layout, parts: ModelParts
) -> Fraction:
    """Values of the largest trainable parameter on one GPU: the largest weight matrix (the
    embeddings included), or the largest LoRA matrix."""
    if inputs.finetuning in ("lora", "qlora"):
        return Fraction(
            max(
                (
                    inputs.lora_rank
                    * layer.lora_rank_factor
                    * max(layer.in_features, layer.out_features)
                    for layer in lora_targets(architecture, inputs)
                ),
                default=0,
            ),
            layout.tensor_parallel,
        )
    return Fraction(parts.largest_matrix, layout.tensor_parallel)


def _context_parallel_share(inputs: EstimateInputs, layout: Layout) -> EstimateInputs:
    """The inputs one context-parallel rank computes: sequence_length / cp tokens per sequence
    (Megatron-Core get_batch_on_this_cp_rank: 2 of the 2 x cp chunks). Lengths the contract
    refuses (a sweep's or capacity search's points between multiples of 2 x cp) round up."""
    cp = layout.context_parallel
    if cp == 1:
        return inputs
    return inputs.with_value("sequence_length", -(-inputs.sequence_length // cp))


def _routed_on_gpu(routed: Fraction | int, layout: Layout, stage: Stage) -> Fraction:
    """One GPU's share of the routed experts (parameters or bytes) in training: num_experts / ep
    experts of the stage's layers, each split over etp ranks."""
    split = layout.expert_parallel * layout.expert_tensor_parallel
    return Fraction(routed, split) * stage.layer_fraction


def _sharded(value: Fraction, ranks: int, ep: int, routed_share: Fraction | int) -> Fraction:
    """`value` (one GPU's unsharded state) sharded: its dense part over `ranks` (dp x cp), its
    routed-expert part (`routed_share` of it) over the expert data-parallel ranks, ranks / ep
    (Megatron-Core DistributedDataParallel: intra_dp_cp_group and intra_expt_dp_group)."""
    if ep == 1:
        return value / ranks
    return value * (1 + (ep - 1) * Fraction(routed_share)) / ranks


def caching_allocator_reserved(tensors: list[tuple[int, int]]) -> int:
    """What PyTorch's caching allocator reserves for live tensors, given as (bytes, how many):
    each rounded up to 512 B; those of at most 1 MiB packed into 2 MiB segments and those below
    10 MiB into 20 MiB segments (perfectly: the least it can reserve, fragmentation left out),
    larger ones in segments of their own, rounded up to 2 MiB."""
    small = medium = large = 0
    for size, count in tensors:
        if size <= 0 or count <= 0:
            continue
        rounded = -(-size // ALLOCATOR_MIN_BLOCK) * ALLOCATOR_MIN_BLOCK
        if rounded <= ALLOCATOR_SMALL_SIZE:
            small += rounded * count
        elif rounded < ALLOCATOR_MIN_LARGE_ALLOC:
            medium += rounded * count
        else:
            large += -(-rounded // ALLOCATOR_ROUND_LARGE) * ALLOCATOR_ROUND_LARGE * count
    small_segments = -(-small // ALLOCATOR_SMALL_BUFFER) * ALLOCATOR_SMALL_BUFFER
    medium_segments = -(-medium // ALLOCATOR_LARGE_BUFFER) * ALLOCATOR_LARGE_BUFFER
    return small_segments + medium_segments + large


def _parameter_tensors(
    architecture: Architecture, layout: Layout, stage: Stage, parts: ModelParts
) -> list[tuple[int, int]]:
    """(values, how many) of the parameter tensors on one GPU: each kind of weight matrix (a
    layer's fused experts one 3-D tensor), the embeddings, an untied LM head, hidden-wide norms
    and the other 1-D parameters (biases, q/k norms) taken as hidden-wide vectors."""
    tp, hidden = layout.tensor_parallel, architecture.hidden_size or 1
    fraction = stage.layer_fraction
    tensors: list[tuple[int, int]] = []
    for layer in architecture.linear_layers:
        size, count = layer.in_features * layer.out_features, layer.count
        if layer.routed_expert and architecture.num_experts:
            size, count = size * architecture.num_experts, count // architecture.num_experts
        tensors.append((-(-size // tp), round(count * fraction)))
    if not architecture.linear_layers and parts.layer_linear:
        layers = architecture.num_layers or 1
        tensors.append((-(-parts.layer_linear // (layers * tp)), round(layers * fraction)))
    if stage.has_embeddings and parts.embeddings:
        tensors.append((-(-parts.embeddings // tp), 1))
    if stage.has_lm_head and parts.lm_head:
        tensors.append((-(-parts.lm_head // tp), 1))
    vectors = parts.norms + parts.layer_other
    tensors.append((hidden, round(vectors // hidden * fraction)))
    return tensors


def _allocator_slack(
    architecture: Architecture,
    inputs: EstimateInputs,
    plan: Plan,
    stage: Stage,
    lines: Breakdown,
) -> int:
    """memory_view "reserved": what the caching allocator reserves beyond the breakdown's
    tensors. Weights, gradients and optimizer states are the parameter tensors' shapes at each
    line's bytes per value; the KV cache one K and one V tensor per layer; the activations one
    block per layer in training (what a layer saves), one block in inference (one layer's
    working set)."""
    parameters = _parameter_tensors(architecture, plan.layout, stage, plan.parts)
    values = sum(size * count for size, count in parameters) or 1
    tensors: list[tuple[int, int]] = []
    if inputs.finetuning in ("lora", "qlora") and inputs.training:
        adapters = [
            (
                inputs.lora_rank * layer.lora_rank_factor * side,
                round(layer.count * stage.layer_fraction),
            )
            for layer in lora_targets(architecture, inputs)
            for side in (layer.in_features, layer.out_features)
        ]
        adapter_values = sum(size * count for size, count in adapters) or 1
        lora_bytes = Fraction(plan.lora_parameters * stage.layer_fraction) * lora_adapter_bytes(
            inputs
        )
        base = Fraction(lines.weights) - lora_bytes
        tensors += [(round(size * base / values), count) for size, count in parameters]
        for line in (lora_bytes, Fraction(lines.gradients), Fraction(lines.optimizer_states)):
            tensors += [(round(size * line / adapter_values), count) for size, count in adapters]
    else:
        for line_bytes in (lines.weights, lines.gradients, lines.optimizer_states):
            per_value = Fraction(line_bytes, values)
            tensors += [(round(size * per_value), count) for size, count in parameters]
    layers = max(stage.num_layers, 1)
    if lines.kv_cache:
        tensors.append((-(-lines.kv_cache // (2 * layers)), 2 * layers))
    if inputs.training and lines.activation_peak:
        tensors.append((-(-lines.activation_peak // layers), layers))
    elif lines.activations:
        # inference: one layer's working set at a time
        tensors.append((lines.activations, 1))
    allocated = sum(size * count for size, count in tensors)
    return max(caching_allocator_reserved(tensors) - allocated, 0)


@dataclass(frozen=True)
class ShardingWorkingSet:
    """What a sharding framework holds beyond the shards (bytes per GPU)."""

    parameters: Fraction = Fraction(0)  # parameters gathered whole for compute
    gradients: Fraction = Fraction(0)  # gradients whole before their reduce-scatter
    buckets: Fraction = Fraction(0)  # gradient buckets allocated for the whole of backward


def _sharding_working_set(
    architecture: Architecture,
    inputs: EstimateInputs,
    layout: Layout,
    stage: Stage,
    parts: ModelParts,
    params_on_gpu: Fraction | int,
) -> ShardingWorkingSet:
    """The gathered parameters, whole gradients and buckets of ZeRO (DeepSpeed) or FSDP.

    DeepSpeed (runtime/zero/config.py defaults, or what the HF Trainer fills in for "auto"):
    stage 2 allocates one reduce_bucket_size bucket of 16-bit gradients in every backward
    (stage_1_and_2.py `ipg_buffer`; stage 1 turns contiguous gradients off); stage 3 allocates it
    once (stage3.py `__ipg_bucket_flat_buffer`), gathers each module's parameters and keeps
    those it will use again within stage3_max_reuse_distance parameters (partitioned_param_
    coordinator.py): at the turn from forward to backward that is the last half of that distance
    (reused in backward after the rest of forward and as much backward), plus the prefetch bucket.
    FSDP FULL_SHARD (per decoder layer, BACKWARD_PRE prefetch): the root unit (embeddings, LM
    head) stays gathered from forward through backward, one layer computes while the next is
    gathered, and that layer's gradient is whole before its reduce-scatter; SHARD_GRAD_OP keeps
    the parameters whole, only one layer's gradient is whole at a time.
    Gathered parameters, whole gradients and buckets are in the 16-bit compute dtype (DeepSpeed's
    `self.dtype`, FSDP's MixedPrecision param_dtype), the weights' own in float32 training.
    """
    zero = layout.zero_stage
    if zero < 2 or not inputs.training:
        return ShardingWorkingSet()
    tp = layout.tensor_parallel
    working = other_parameter_bytes(inputs.weight_dtype)
    trains_base = inputs.finetuning not in ("lora", "qlora")
    if inputs.sharding == "fsdp":
        # a layer unit's parameters on this GPU's ranks: its routed experts, ep times fewer
        routed = parts.layer_routed_linear
        unit = (
            parts.layer_linear
            + parts.layer_other
            - routed
            + Fraction(routed, layout.expert_parallel)
        )
        layer = Fraction(unit, architecture.num_layers or 1) / tp
        layer_gradient = layer * working if trains_base else Fraction(0)
        if zero == 2:
            return ShardingWorkingSet(gradients=layer_gradient)
        root = Fraction(
            parts.embeddings * stage.has_embeddings + parts.lm_head * stage.has_lm_head, tp
        )
        if DTYPES[inputs.weight_dtype].quantised:
            # FSDP all-gathers each FlatParameter in its storage dtype: bitsandbytes 4-bit
            # weights packed into bnb_4bit_quant_storage (the Answer.AI / PEFT FSDP+QLoRA
            # recipe), so a gathered layer is its packed half byte a weight (the quant_state
            # stays whole on every GPU: _bnb_quant_state_bytes), not 16-bit values; the root
            # unit (embeddings, LM head) stays 16-bit
            packed = (
                _bnb_4bit_packed_bytes(parts)
                if inputs.weight_dtype in BNB_4BIT_DTYPES
                else parts.layer_linear_bytes
            )
            layer_bytes = (packed + parts.layer_other_bytes) / ((architecture.num_layers or 1) * tp)
            root_bytes = (
                parts.embeddings_bytes * stage.has_embeddings
                + parts.lm_head_bytes * stage.has_lm_head
            ) / tp
            return ShardingWorkingSet(
                parameters=root_bytes
                + 2 * layer_bytes
                + _offloaded_shard_copy(inputs, layout, max(root_bytes, layer_bytes)),
                gradients=layer_gradient,
            )
        gathered = (root + 2 * layer) * working
        copy = _offloaded_shard_copy(inputs, layout, max(root, layer) * working)
        return ShardingWorkingSet(parameters=gathered + copy, gradients=layer_gradient)
    if inputs.sharding == "deepspeed_hf_auto":
        bucket = Fraction(architecture.hidden_size**2)
        prefetch = bucket * Fraction(9, 10)
    else:
        bucket, prefetch = Fraction(DEEPSPEED_REDUCE_BUCKET), Fraction(DEEPSPEED_PREFETCH_BUCKET)
    buckets = bucket * working
    if zero == 2:
        return ShardingWorkingSet(buckets=buckets)
    largest = Fraction(parts.largest_matrix, tp)
    gathered = min(
        Fraction(params_on_gpu), Fraction(DEEPSPEED_MAX_REUSE_DISTANCE, 2) + max(largest, prefetch)
    )
    # the largest module's gradient is whole before it is copied into the bucket
    return ShardingWorkingSet(
        parameters=gathered * working,
        gradients=largest * working if trains_base else Fraction(0),
        buckets=buckets,
    )


def _offloaded_shard_copy(inputs: EstimateInputs, layout: Layout, unit_bytes: Fraction) -> Fraction:
    """FSDP CPUOffload(offload_params=True): the GPU copy of a unit's host shard.

    torch 2.2/2.3 FSDP1 `_runtime_utils._unshard` runs `FlatParamHandle.pre_unshard` on the
    pre-unshard stream: with the shard on the host, `flat_param_to(device)` (or, under param
    mixed precision, `_use_low_precision_shard`'s `_mp_shard`) copies the local shard to the GPU
    before the all-gather, freed after it (`post_unshard`). The caching allocator keeps that
    block in the pre-unshard stream's pool, which the default stream does not reuse: it stays
    reserved at the size of the largest unit's shard (the root unit's, or a layer's), one
    unit's bytes over the sharding ranks."""
    if not _fsdp_offloads_parameters(inputs):
        return Fraction(0)
    return unit_bytes / layout.sharding_ranks


def _fsdp_offloads_parameters(inputs: EstimateInputs) -> bool:
    return inputs.sharding == "fsdp" and inputs.offload == "optimizer_and_parameters"


def _autocast_copied(
    architecture: Architecture, layout: Layout, stage: Stage, parts: ModelParts
) -> Fraction:
    """Parameters on one GPU of which autocast keeps a 16-bit copy: the layers' nn.Linear weight
    matrices (not fused routed experts) and the LM head matrix (tied: the shared matrix, once)."""
    # the vocab x hidden matrix only: no LM head bias (phi), no position table (gpt2 wpe)
    head = architecture.vocab_size * architecture.hidden_size
    return _stage_share(
        architecture,
        layout,
        stage,
        0,
        head,
        parts.layer_linear - parts.layer_routed_linear,
        parts.layer_kv_linear,
        0,
        0,
    )


def worst_breakdown(
    plan: Plan, inputs: EstimateInputs, architecture: Architecture
) -> tuple[int, Breakdown]:
    """The busiest GPU's breakdown (pipeline stages differ) and its stage's index."""
    images = image_load(inputs, architecture.vision)
    if images is not None:
        # each sequence holds its images' tokens beside its text: KV cache, activations
        inputs = inputs.with_value("sequence_length", inputs.sequence_length + images.tokens)
    if len(plan.layout.stages) == 1:
        return 0, _stage_breakdown(architecture, inputs, plan, 0)
    breakdowns = [
        _stage_breakdown(architecture, inputs, plan, index)
        for index in range(len(plan.layout.stages))
    ]
    worst = max(range(len(breakdowns)), key=lambda index: breakdowns[index].total)
    return worst, breakdowns[worst]


def detailed_estimate(inputs: EstimateInputs, architecture: Architecture) -> MethodResult:
    notes: list[str] = []
    plan = plan_for(inputs, architecture, notes)
    layout = plan.layout
    if inputs.training:
        _training_notes(inputs, architecture, notes)
    else:
        _inference_notes(inputs, architecture, layout, notes)
    _state_layer_notes(inputs, architecture, notes)
    if inputs.weight_dtype in LINEAR_MODULE_ONLY_DTYPES and any(
        layer.routed_expert for layer in architecture.linear_layers
    ):
        notes.append(
            "bitsandbytes quantises nn.Linear modules only: the fused MoE experts and routers "
            "stay in 16-bit (transformers 5)"
        )
    _parallel_notes(inputs, layout, notes)
    _context_and_expert_notes(inputs, architecture, plan, notes)
    _vision_notes(inputs, architecture, notes)
    worst, breakdown = worst_breakdown(plan, inputs, architecture)
    if layout.pipeline_parallel > 1:
        stage = layout.stages[worst]
        in_flight = inputs.training and stage.name == "first"
        notes.append(
            f"Pipeline parallel: figures for the busiest GPU, on the {stage.name} stage "
            f"({stage.num_layers} of {architecture.num_layers} layers"
            + (
                f", {stage.in_flight_micro_batches} micro-batches in flight with 1F1B)"
                if in_flight
                else ")"
            )
        )
    total = architecture.num_parameters
    return MethodResult(
        breakdown=breakdown,
        total_parameters=total,
        active_parameters=architecture.num_active_parameters or total,
        trainable_parameters=plan.trainable,
        notes=tuple(notes),
    )


def _trainable(
    inputs: EstimateInputs, architecture: Architecture, notes: list[str]
) -> tuple[int, Fraction | int, int]:
    """(trainable parameters of the model, share of base parameters trained, LoRA params)."""
    total = architecture.num_parameters
    finetuning = inputs.finetuning
    if finetuning in ("lora", "qlora"):
        lora = lora_adapter_parameters(architecture, inputs)
        notes.append(
            f"{finetuning.upper()}: rank-{inputs.lora_rank} adapters on "
            + (
                "every linear layer"
                if inputs.lora_target_modules == ALL_LINEAR
                else ", ".join(inputs.lora_target_modules)
            )
            + (
                ", in float32 (PEFT upcasts adapter weights)"
                if inputs.lora_adapter_dtype == "float32"
                else f", in {inputs.lora_adapter_dtype}"
            )
            + "; the base stays frozen"
        )
        return lora, 0, lora
    if finetuning == "partial":
        share = Fraction(inputs.trainable_percent) / 100
        return round(total * share), share, 0
    if inputs.trainable_percent != 100 and "trainable_percent" in inputs.given:
        notes.append(
            "trainable_percent applies to finetuning 'partial' only; full fine-tuning trains "
            "every parameter"
        )
    return total, 1, 0


def _training_notes(inputs: EstimateInputs, architecture: Architecture, notes: list[str]) -> None:
    notes.append("No KV cache in training (use_cache is off)")
    notes.append(
        "Activations are shown beyond the gradients: at the peak (the start of backward, the "
        "loss's float32 log-softmax) no gradient is allocated yet (zero_grad(set_to_none=True)), "
        "and gradients appear as activations are freed; with gradient accumulation they coexist"
    )
    lora = inputs.finetuning in ("lora", "qlora")
    if inputs.previous_graph_alive:
        held = (
            "its logits and its 4-bit layers' inputs"
            if _bnb_saves_inputs(inputs) and lora
            else "its logits"
        )
        notes.append(
            "The loop keeps the previous micro-batch's graph until the next forward returns: "
            f"{held} are alive beside the new activations, and the peak is the larger of that "
            "and the loss"
        )
    if inputs.mixed_precision and not lora:
        if inputs.weight_dtype == "float32":
            notes.append(
                "Mixed precision: float32 weights are the master copy; autocast keeps a 16-bit "
                "copy of each weight for backward; float32 gradients and optimizer states"
            )
        else:
            notes.append(
                f"Mixed precision: {inputs.weight_dtype} weights plus float32 master weights, "
                "gradients and optimizer states"
            )
    elif not lora and inputs.weight_dtype != "float32":
        notes.append(
            f"Pure {inputs.weight_dtype} training: gradients and optimizer states in "
            f"{inputs.weight_dtype} (torch.optim creates states with zeros_like(param))"
        )
    if inputs.optimizer == "adamw_8bit":
        notes.append("8-bit AdamW: bitsandbytes blockwise states (2048-value blocks)")
    if inputs.optimizer == "adafactor":
        notes.append(
            "Adafactor (transformers' defaults, beta1=None): float32 row and column "
            "second-moment vectors per weight matrix, a whole float32 state per 1-D parameter, "
            "no first moment; the step's float32 update of one parameter at a time is not counted"
        )
    if inputs.attention_implementation == "eager":
        notes.append(
            "Eager attention stores the batch x heads x seq x seq softmax for every layer; "
            "attention dropout assumed 0, as in modern LLMs"
        )
    if lora:
        notes.append(
            "Frozen base: projections' inputs are not kept for weight gradients; "
            "each adapted layer keeps its input in the adapter dtype"
        )
    if not inputs.gradient_checkpointing and "checkpoint_every_k_layers" in inputs.given:
        notes.append(
            "checkpoint_every_k_layers applies with gradient_checkpointing only; without it "
            "every layer keeps all it saves"
        )
    if inputs.gradient_checkpointing and inputs.checkpoint_every_k_layers > 1:
        notes.append(
            f"Selective gradient checkpointing: one layer in every "
            f"{inputs.checkpoint_every_k_layers} keeps only its input (recomputed in backward, "
            "one at a time), the others keep all they save"
        )
    elif inputs.gradient_checkpointing:
        notes.append(
            "Gradient checkpointing: each layer's input is kept, one layer is recomputed at a time"
        )
    if inputs.recompute_core_attention:
        notes.append(
            "Core attention recomputed in backward (Megatron selective recompute): q, k, v and "
            "the attention output are kept, no scores"
        )
    if architecture.is_moe:
        notes.append(
            f"MoE: routed-expert activations for {architecture.num_experts_per_token} experts "
            "per token"
        )


def _inference_notes(
    inputs: EstimateInputs, architecture: Architecture, layout: Layout, notes: list[str]
) -> None:
    notes.append(
        "Activations: the peak of one layer during the prefill of all sequence_length tokens, "
        "plus the last position's logits in float32 (generate() computes logits for the last "
        "token only)"
    )
    if architecture.is_mla:
        notes.append(
            "Multi-head latent attention: the cache holds the compressed latent "
            f"({architecture.kv_lora_rank + architecture.qk_rope_head_dim} values per layer per "
            "token)"
            + (", a full copy on every tensor-parallel GPU" if layout.tensor_parallel > 1 else "")
        )
    sliding = architecture.num_sliding_window_layers if architecture.sliding_window else 0
    held = architecture.sliding_window - 1
    if sliding and inputs.sequence_length > held:
        notes.append(
            f"Sliding window: {sliding} of {architecture.num_layers} layers hold at most "
            f"{held:,} tokens (the window less the token being generated)"
        )
    if inputs.attention_implementation == "eager":
        notes.append("Eager attention materialises the batch x heads x seq x seq scores")
    if DTYPES[inputs.kv_cache_dtype].quantised:
        notes.append(
            f"KV cache in {inputs.kv_cache_dtype}: element size only (quantisation scales "
            "not counted)"
        )


_MIXER_NAMES = {
    "gated_deltanet": ("Gated DeltaNet", "torch_chunk_gated_delta_rule", "fla"),
    "mamba": ("Mamba", "mamba_selective_scan", "mamba-ssm"),
    "mamba2": ("Mamba-2", "mamba2_chunk_scan", "mamba-ssm"),
}


def _state_layer_notes(
    inputs: EstimateInputs, architecture: Architecture, notes: list[str]
) -> None:
    state = architecture.state_layers
    if state is None:
        return
    name, scan, kernels = _MIXER_NAMES[state.kind]
    conv_bytes = _activation_dtypes(inputs).compute
    per_sequence = state_layer_bytes(state, conv_bytes)
    recurrent = f"{state.state_rows:,} x {state.state_cols:,}"
    if state.state_heads > 1:
        recurrent = f"{state.state_heads:,} x {recurrent}"
    if not inputs.training and state.beside_attention:
        notes.append(
            f"Hybrid layers: each of the {state.count} layers runs a {name} mixer beside its "
            f"attention, and keeps its fixed state beside the KV cache: convolution state "
            f"{state.conv_dim:,} x {state.conv_kernel} ({conv_bytes}-byte elements) and float32 "
            f"recurrent state {recurrent}, {per_sequence / 2**20:,.2f} MiB per sequence and "
            "layer, in the kv_cache line"
        )
    elif not inputs.training:
        notes.append(
            f"Hybrid layers: {state.count} of {architecture.num_layers} layers ({name}) keep a "
            f"fixed state instead of a KV cache, whatever the context: convolution state "
            f"{state.conv_dim:,} x {state.conv_kernel} ({conv_bytes}-byte elements) and float32 "
            f"recurrent state {recurrent}, {per_sequence / 2**20:,.2f} MiB per sequence and "
            f"layer, in the kv_cache line; the other {architecture.num_attention_layers} layers "
            "keep the KV cache"
        )
    if inputs.training and state.kind == "gated_deltanet":
        notes.append(
            f"{name} layers' activations: what autograd saves of transformers' PyTorch scan "
            f"({scan}): one float32 recurrent state per chunk of 64, the float32 query, key and "
            "value copies, the chunk matrices, the convolution and the gated norm; with the "
            f"{kernels} kernels installed it is smaller"
        )
        return
    notes.append(
        f"{name} layers' activations: the working set of transformers' PyTorch scan ({scan}), "
        + (
            "taken as what they save for backward (approximated); "
            if inputs.training
            else "the projections, convolution and the scan's float32 tensors; "
        )
        + f"with the {kernels} kernels installed it is smaller"
    )


SHARDING_NOTES = {
    "deepspeed": {
        2: "DeepSpeed ZeRO-2 (its defaults): a 5e8-element gradient bucket through backward",
        3: "DeepSpeed ZeRO-3 (its defaults): a 5e8-element gradient bucket, and the parameters "
        "used again within 1e9 (stage3_max_reuse_distance) gathered at the turn to backward, "
        "plus the 5e7 prefetch bucket",
    },
    "deepspeed_hf_auto": {
        2: 'DeepSpeed ZeRO-2 as the HF Trainer fills in "auto": a hidden_size² gradient bucket',
        3: 'DeepSpeed ZeRO-3 as the HF Trainer fills in "auto": hidden_size² gradient and '
        "0.9 x hidden_size² prefetch buckets, and the parameters used again within 1e9 "
        "gathered at the turn to backward",
    },
    "fsdp": {
        2: "FSDP SHARD_GRAD_OP: whole parameters, one decoder layer's gradient whole before "
        "its reduce-scatter",
        3: "FSDP FULL_SHARD, one unit per decoder layer: embeddings and LM head gathered "
        "through forward and backward, two layers gathered (computing, prefetched) and one "
        "layer's gradient whole",
    },
}


def _parallel_notes(inputs: EstimateInputs, layout: Layout, notes: list[str]) -> None:
    if inputs.num_gpus == 1:
        return
    if inputs.training:
        experts = (
            "num_experts / ep experts per GPU, each split over the tensor-parallel ranks, "
            "Megatron-Core"
        )
    else:
        experts = (
            "routed experts split over tensor x data parallel ranks, vLLM --enable-expert-parallel"
        )
    notes.append(
        f"Per GPU: tensor parallel {layout.tensor_parallel}, pipeline parallel "
        f"{layout.pipeline_parallel}, "
        + (f"context parallel {layout.context_parallel}, " if layout.context_parallel > 1 else "")
        + f"data parallel {layout.data_parallel}"
        + (f" with ZeRO stage {layout.zero_stage}" if layout.zero_stage else "")
        + (
            f", expert parallel {layout.expert_parallel} ({experts})"
            if layout.expert_parallel > 1
            else ""
        )
    )
    if inputs.training and layout.zero_stage >= 2:
        notes.append(SHARDING_NOTES[inputs.sharding][layout.zero_stage])
        if layout.zero_stage >= 3 and _fsdp_offloads_parameters(inputs):
            notes.append(
                "FSDP CPUOffload: each unit's host shard is copied to the GPU before its "
                "all-gather; the largest unit's shard stays reserved on the pre-unshard stream"
            )
    if layout.data_parallel > 1:
        notes.append("batch_size is per data-parallel replica")
    if layout.kv_heads_replicated and not inputs.training:
        notes.append(
            f"Tensor parallel {layout.tensor_parallel} exceeds the model's key/value heads: "
            "each GPU keeps one replicated KV head"
        )


def _mib(value: Fraction | int) -> str:
    return f"{float(value) / 2**20:,.2f} MiB"


def _context_and_expert_notes(
    inputs: EstimateInputs, architecture: Architecture, plan: Plan, notes: list[str]
) -> None:
    """What context and expert parallelism change, with the communication buffers named (they
    are part of the activations line: the breakdown's six lines stay as they are)."""
    layout, cp, ep = plan.layout, plan.layout.context_parallel, plan.layout.expert_parallel
    if cp > 1:
        local = _context_parallel_share(inputs, layout)
        buffers = parallel_buffers(architecture, local, layout, plan.dtypes, plan.widths)
        notes.append(
            f"Context parallel {cp} (Megatron-Core with TransformerEngine ring attention, "
            f"cp_comm_type p2p): each GPU keeps the activations of {local.sequence_length:,} of "
            f"each sequence's {inputs.sequence_length:,} tokens (chunks i and {2 * cp - 1} - i "
            f"of {2 * cp}, the load-balanced causal split); weights and gradients are "
            "replicated over the context-parallel ranks"
            + (
                f", ZeRO shards over data x context parallel ranks ({layout.data_parallel} x "
                f"{cp}), as Megatron's distributed optimizer does"
                if layout.zero_stage
                else ""
            )
        )
        notes.append(
            "Ring attention's K/V send/receive buffers, in the activations line while a layer's "
            f"attention runs: forward {_mib(buffers.ring_forward)} (all {cp} ranks' K/V chunks, "
            f"kept until the layer returns), backward {_mib(buffers.ring_backward)} (K/V and "
            "their gradients double-buffered, and dQ); taken at the peak beside the saved "
            "activations, instead of the loss's logits when larger"
        )
    if ep > 1 and inputs.training:
        local = _context_parallel_share(inputs, layout)
        buffers = parallel_buffers(architecture, local, layout, plan.dtypes, plan.widths)
        notes.append(
            f"Expert parallel {ep} in training (Megatron-Core, expert_tensor_parallel = "
            "tensor_parallel): the routed experts' weights, gradients and optimizer states are "
            f"split {ep} ways; ZeRO shards them over the expert data-parallel ranks "
            f"(data x context parallel / {ep} = {layout.expert_sharding_ranks})"
        )
        notes.append(
            "All-to-all dispatch and combine (MoEAlltoAllTokenDispatcher): tokens x top_k x "
            "hidden in the activation dtype each way; the received tokens are the experts' "
            "saved inputs and the combined output is kept for the routing weights (both already "
            f"in the activations), the send-side buffer ({_mib(buffers.all_to_all)} per MoE "
            "layer) is transient, in the activations line"
        )
    if ep > 1 and not inputs.training:
        dispatch = inference_dispatch_bytes(architecture, inputs, layout, plan.dtypes)
        notes.append(
            "Expert-parallel dispatch/combine buffers (vLLM's default all2all backend, "
            "allgather_reducescatter): "
            + (
                f"{_mib(dispatch)} per MoE layer in the activations line (the "
                f"{layout.data_parallel} data-parallel ranks' hidden states, top-k weights and "
                "ids gathered, and the experts' output over them before the reduce-scatter)"
                if dispatch
                else "none with one data-parallel rank (every rank already holds the tokens)"
            )
            + f"; the DeepEP backends reserve {_mib(DEEPEP_NVL_BUFFER_BYTES)} more per GPU "
            "(VLLM_DEEPEP_BUFFER_SIZE_MB), not counted: add it to runtime_overhead_bytes"
        )


# --- Vision-language models ---------------------------------------------------------------------


def tower_trained(inputs: EstimateInputs) -> bool:
    """Whether training updates the vision tower: full and partial fine-tuning train every
    parameter requires_grad leaves on (transformers leaves the tower's on); LoRA and QLoRA
    adapt the language model's linear layers and freeze the rest."""
    return inputs.training and inputs.finetuning in ("full", "partial")


def _ungraded_on_gpu(
    architecture: Architecture, inputs: EstimateInputs, layout: Layout, stage: Stage, plan: Plan
) -> Fraction:
    """This GPU's share of the trained parameters that no gradient reaches (VisionTower
    ungraded_parameters: LLaVA's tower layers past its feature layer)."""
    tower = architecture.vision
    if tower is None or not tower_trained(inputs) or not tower.ungraded_parameters:
        return Fraction(0)
    share = Fraction(tower.ungraded_parameters, layout.tensor_parallel) * stage.layer_fraction
    return share * plan.trainable_share


def vision_activations(
    architecture: Architecture, inputs: EstimateInputs, layout: Layout, stage: Stage
) -> tuple[Fraction | int, bool]:
    """(bytes, kept) of the vision tower encoding every sequence's images: batch x images
    sequences of the tower's own length (its patches), through its encoder layers.

    A trained tower saves its layers' activations for backward, kept beside the language
    model's (kept true). Inference, and training with a frozen tower (nothing in it requires
    grad, so autograd saves nothing), hold one encoder layer's working set at a time, freed
    before the language model's layers run (kept false: the larger of the two peaks counts)."""
    tower = architecture.vision
    images = image_load(inputs, tower)
    if tower is None or images is None:
        return 0, False
    encoder = tower_architecture(tower)
    h = tower.hidden_size
    # every head its own key/value head (q, k, v and the output are each hidden wide)
    widths = AttentionWidths(tower.num_attention_heads, h, h, h, h, h, h, 0)
    encoded = inputs.with_value("batch_size", inputs.batch_size * images.images).with_value(
        "sequence_length", images.patches_per_image
    )
    dtypes = _activation_dtypes(inputs)
    tp = layout.tensor_parallel
    mask = 0
    if tower.cross_attention_layers:
        # Mllama's _prepare_aspect_ratio_attention_mask: one (batch x images, 1, S, S) additive
        # mask over an image's tiles in the model's dtype, alive through both encoders
        mask = encoded.batch_size * encoded.sequence_length**2 * dtypes.residual
    if not tower_trained(inputs):
        peak = inference_layer_activations(encoder, widths, encoded, dtypes, False, tp) + mask
        if tower.cross_attention_layers:
            # MllamaVisionEncoder.forward keeps every layer's output (encoder_states, for the
            # intermediate_layers_indices it concatenates) until the tower returns: during the
            # last global layer, the local layers' outputs, the global encoder's input (its
            # caller's) and the other global layers' outputs, one per layer; and the patch
            # convolution's output (patch_embeds, never rebound in MllamaVisionModel.forward)
            tokens = encoded.batch_size * encoded.sequence_length
            peak += tower.num_layers * tokens * h * dtypes.residual
            patches = tower.cross_attention_states_per_image - tower.max_num_tiles
            peak += encoded.batch_size * patches * h * dtypes.residual
        return peak, False
    layer = training_layer_activations(encoder, widths, encoded, dtypes, False, False)
    split = layer.split
    if tower.fused_qkv:
        # v, a view of the fused qkv output, keeps its q and k thirds alive too (saved_tensors
        # of a Qwen2.5-VL ViT layer: validation/vision_saved_tensors.py)
        split += encoded.batch_size * encoded.sequence_length * 2 * h * dtypes.compute
    one_layer = _per_gpu(layer.replicated, split, tp)
    tokens = encoded.batch_size * encoded.sequence_length
    # a gated layer's gate_attn.tanh() * attention output and gate_ffn.tanh() * MLP output
    # save the attention and MLP outputs for the gates' gradients (MllamaVisionEncoderLayer)
    gates = tower.gated_layers * tokens * 2 * h * dtypes.compute
    if inputs.gradient_checkpointing and tower.checkpointed:
        # transformers checkpoints the tower's layers too: their inputs, one layer recomputed
        kept_inputs = tower.num_layers * tokens * h * dtypes.residual
        stored: Fraction | int = kept_inputs * CHECKPOINTED_INPUTS_PER_LAYER + one_layer
    else:
        stored = tower.num_layers * one_layer + gates
    return (stored + mask) * stage.in_flight_micro_batches, True


def _vision_notes(inputs: EstimateInputs, architecture: Architecture, notes: list[str]) -> None:
    tower = architecture.vision
    if tower is None:
        return
    weights = tower.parameters * other_parameter_bytes(inputs.weight_dtype)
    notes.append(
        f"Vision tower ({tower.label}) and projector: {tower.parameters:,} parameters, "
        f"{float(weights) / 2**30:.2f} GiB of the whole model's weights"
    )
    if inputs.training and inputs.finetuning in ("lora", "qlora"):
        # peft tuners_utils _maybe_include_all_linear_layers excludes only the output embedding
        notes.append(
            "LoRA on a vision-language model: adapters on the language model's layers, the "
            "tower and projector frozen (LLaMA-Factory's freeze_vision_tower default); PEFT's "
            "all-linear, or module names the tower shares, would adapt the tower too, which "
            "is not sized"
        )
    images = image_load(inputs, tower)
    if images is None:
        notes.append("No images (images_per_request 0): text tokens only")
        if tower.cross_attention_layers:
            skipped = "no cache"
            if inputs.training:
                skipped += "; the activations still count them as decoder layers"
            notes.append(
                f"Without images, {MODELS[tower.model].label}'s text model skips its "
                f"{tower.cross_attention_layers} cross-attention layers ({skipped})"
            )
        return
    if tower.tokens == "fixed" and inputs.image_height is not None:
        notes.append(
            f"The processor resizes every image to {tower.image_size} px: image_height and "
            f"image_width do not change its {tower.tokens_per_image} tokens"
        )
    if images.cross_attention_states and inputs.training:
        notes.append(
            f"Cross-attention ({MODELS[tower.model].label}): what the "
            f"{tower.cross_attention_layers} cross-attention layers save for backward of the "
            f"{images.cross_attention_states_per_image:,} vision states per image (their K and "
            "V) is not in the activations; their text-side terms are a decoder layer's"
        )
    elif images.cross_attention_states:
        notes.append(
            f"Cross-attention ({MODELS[tower.model].label}): each of the "
            f"{tower.cross_attention_layers} cross-attention layers caches K and V of "
            f"{images.cross_attention_states_per_image:,} vision states per image (every image "
            "padded to max_num_tiles tiles of patches and [CLS], whatever its size), in the "
            f"kv_cache line; the text's KV cache is on the other "
            f"{architecture.num_attention_layers} layers"
        )
    held = "freed before the language model runs"
    if tower_trained(inputs):
        held = "saved for backward (the tower is trained)"
    elif inputs.training:
        held = "freed before the language model runs (the tower is frozen)"
    if tower.tokens == "cross":
        notes.append(
            f"Images: {images.images} per sequence, one <|image|> token each in the text; the "
            f"tower encodes {images.patches_per_image:,} positions per image (max_num_tiles "
            f"tiles, each padded to a multiple of 8), its activations {held}; its concatenated "
            "output (the last and the intermediate layers' states) is not counted"
        )
        return
    notes.append(
        f"Images: {images.images} per sequence x {images.tokens_per_image:,} tokens = "
        f"{images.tokens:,} tokens beside the {inputs.sequence_length:,} of text, in the KV "
        f"cache and the language model's activations; the tower encodes "
        f"{images.patches_per_image:,} patches per image, its activations {held}"
    )
