"""The shapes of the API's answers: what /api/v1/calculate returns, field by field, for the
OpenAPI schema (the engine's dict is returned as it is; these document it)."""

from __future__ import annotations

from rest_framework import serializers


class ParametersSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    active = serializers.IntegerField(help_text="Per token (MoE: the experts routed to).")
    active_without_embeddings = serializers.IntegerField(
        help_text="Active less the input embedding table (and learned position embeddings); "
        "the LM head stays. Model cards quote either (gpt-oss-120b: 5.13B is without)."
    )
    trainable = serializers.IntegerField()


class CheckpointSerializer(serializers.Serializer):
    """What config.json's quantization_config says the published weights are."""

    quant_method = serializers.CharField(help_text='As config.json spells it: "mxfp4", "fp8".')
    weight_dtype = serializers.CharField(
        allow_null=True,
        help_text="The matching weight_dtype, the detailed method's default when the request "
        "names none (training dequantises it); null when no engine format matches.",
    )
    description = serializers.CharField(help_text='"MXFP4 (experts), bfloat16 elsewhere".')


class BreakdownSerializer(serializers.Serializer):
    """Bytes per GPU."""

    weights = serializers.IntegerField()
    kv_cache = serializers.IntegerField()
    activations = serializers.IntegerField()
    gradients = serializers.IntegerField()
    optimizer_states = serializers.IntegerField()
    runtime_overhead = serializers.IntegerField()


class ConfigurationSerializer(serializers.Serializer):
    num_gpus = serializers.IntegerField()
    tensor_parallel = serializers.IntegerField()
    pipeline_parallel = serializers.IntegerField()
    data_parallel = serializers.IntegerField()
    zero_stage = serializers.IntegerField()
    expert_parallel = serializers.IntegerField()
    # absent from answers saved before context parallelism: 1
    context_parallel = serializers.IntegerField(default=1)


class FitSerializer(serializers.Serializer):
    """Whether the workload fits one GPU of a kind, and the fewest GPUs that hold it."""

    gpu = serializers.CharField()
    name = serializers.CharField()
    memory_bytes = serializers.IntegerField()
    usable_bytes = serializers.IntegerField()
    required_bytes = serializers.IntegerField(allow_null=True)
    fits_on_one = serializers.BooleanField()
    headroom_bytes = serializers.IntegerField(allow_null=True)
    headroom_percent = serializers.FloatField(allow_null=True)
    fewest_gpus = serializers.IntegerField(allow_null=True)
    configuration = ConfigurationSerializer(allow_null=True)
    per_gpu_bytes = serializers.IntegerField(allow_null=True)


class KvCacheCapacitySerializer(serializers.Serializer):
    budget_bytes = serializers.IntegerField()
    reserved_bytes = serializers.IntegerField()
    bytes_per_token = serializers.IntegerField()
    tokens = serializers.IntegerField()
    concurrent_sequences = serializers.IntegerField()


class CapacityByGpuCountSerializer(serializers.Serializer):
    gpu_count = serializers.IntegerField()
    configuration = ConfigurationSerializer(allow_null=True)
    max_batch_size = serializers.IntegerField(allow_null=True)
    max_sequence_length = serializers.IntegerField(allow_null=True)


class CapacitySerializer(CapacityByGpuCountSerializer):
    """The largest batch and context that fit on gpu_count GPUs."""

    gpu = serializers.CharField()
    memory_utilization = serializers.FloatField()
    usable_bytes = serializers.IntegerField()
    kv_cache = KvCacheCapacitySerializer(allow_null=True)
    max_position_embeddings = serializers.IntegerField()
    by_gpu_count = CapacityByGpuCountSerializer(many=True)


class EfficienciesSerializer(serializers.Serializer):
    decode = serializers.FloatField()
    prefill = serializers.FloatField()
    training = serializers.FloatField()


class DecodeRateSerializer(serializers.Serializer):
    active_weight_bytes = serializers.IntegerField()
    kv_cache_bytes = serializers.IntegerField()
    bytes_per_step = serializers.IntegerField()
    step_seconds = serializers.FloatField()
    tokens_per_s_per_sequence = serializers.FloatField()
    tokens_per_s = serializers.FloatField()


class ComputeRateSerializer(serializers.Serializer):
    flops_per_token = serializers.IntegerField()
    tokens_per_s = serializers.FloatField()


class ThroughputSerializer(serializers.Serializer):
    """Roofline speeds: decode and prefill (inference) or training tokens per second."""

    gpu = serializers.CharField()
    gpu_count = serializers.IntegerField()
    configuration = ConfigurationSerializer(allow_null=True)
    efficiencies = EfficienciesSerializer()
    decode = DecodeRateSerializer(allow_null=True)
    prefill = ComputeRateSerializer(allow_null=True)
    training = ComputeRateSerializer(allow_null=True)


class TrainingRunSerializer(serializers.Serializer):
    tokens = serializers.IntegerField()
    epochs = serializers.FloatField()
    seconds = serializers.FloatField()
    hours = serializers.FloatField()
    cost = serializers.FloatField()


class CostSerializer(serializers.Serializer):
    """USD; null where no price is known."""

    price_per_gpu_hour = serializers.FloatField(allow_null=True)
    gpu_count = serializers.IntegerField()
    per_hour = serializers.FloatField(allow_null=True)
    per_million_tokens = serializers.FloatField(allow_null=True)
    training_run = TrainingRunSerializer(allow_null=True)


class SafetensorsFactsSerializer(serializers.Serializer):
    """What the checkpoint's safetensors headers hold (no weights are downloaded)."""

    parameters = serializers.IntegerField(
        help_text="Parameters stored, packed formats unpacked (GPTQ/AWQ int32, 4-bit bytes) and "
        "quantisation state (scales, zeros, absmax) left out."
    )
    parameters_by_dtype = serializers.DictField(child=serializers.IntegerField())
    elements_by_dtype = serializers.DictField(
        child=serializers.IntegerField(), help_text="Tensor elements as stored, per dtype."
    )
    stored_bytes = serializers.IntegerField(help_text="Bytes of every tensor in the files.")
    num_tensors = serializers.IntegerField()
    num_files = serializers.IntegerField()
    sharded = serializers.BooleanField()


class HubSerializer(serializers.Serializer):
    """The Hub import a `model: {"hub": ...}` request used."""

    repo_id = serializers.CharField()
    revision = serializers.CharField(help_text="As asked.")
    sha = serializers.CharField(help_text="The commit that revision named.")
    safetensors = SafetensorsFactsSerializer(allow_null=True)
    weight_dtype = serializers.CharField(
        allow_null=True, help_text="The weight_dtype of what the checkpoint stores."
    )
    parameter_difference = serializers.IntegerField(
        allow_null=True,
        help_text="The engine's count from config.json minus the headers' count.",
    )


class WarningSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="The input it is about.")
    message = serializers.CharField()


class GpuNeedsSerializer(serializers.Serializer):
    gpu_count = serializers.IntegerField()
    configuration = serializers.DictField(child=serializers.IntegerField())
    per_gpu_bytes = serializers.IntegerField()


class GpuAnswerSerializer(serializers.Serializer):
    """The headline for the GPU asked for: the request's layout on gpu_count of them."""

    gpu = serializers.CharField()
    name = serializers.CharField()
    gpu_count = serializers.IntegerField()
    configuration = serializers.DictField(child=serializers.IntegerField())
    memory_utilization = serializers.FloatField()
    usable_bytes = serializers.IntegerField(
        help_text="memory_utilization x the GPU's memory: the same for fit and capacity."
    )
    per_gpu_bytes = serializers.IntegerField(allow_null=True)
    fits = serializers.BooleanField()
    spare_bytes = serializers.IntegerField(allow_null=True, help_text="Negative: short by.")
    needs = GpuNeedsSerializer(
        allow_null=True, help_text="When it does not fit: the fewest GPUs of this type that do."
    )
    per_gpu_high_bytes = serializers.IntegerField(
        required=False, help_text="per_gpu_bytes at the top of the breakdown_bounds band."
    )
    confidence = serializers.ChoiceField(
        choices=["fits", "may_not_fit", "does_not_fit"],
        required=False,
        help_text="fits: even at the top of the band; may_not_fit: the band crosses the usable "
        "memory.",
    )


class LlamaCppMemorySerializer(serializers.Serializer):
    """llama.cpp's buffers (engine "llama.cpp"), as its log names them."""

    n_ctx = serializers.IntegerField(help_text="-c: max_model_len x n_parallel, padded to 256")
    n_ctx_per_slot = serializers.IntegerField()
    gpu_layers = serializers.IntegerField(help_text="Repeating layers on the GPU")
    output_on_gpu = serializers.BooleanField(help_text="n_gpu_layers above the layer count")
    offloaded = serializers.CharField(help_text='As llama.cpp prints it: "20/33"')
    embedding_bytes = serializers.IntegerField(help_text="token_embd, always in host RAM")
    gpu_weights_bytes = serializers.IntegerField(help_text="CUDA0 buffer size")
    host_weights_bytes = serializers.IntegerField(help_text="CPU buffer size")
    gpu_kv_bytes = serializers.IntegerField(help_text="CUDA0 KV buffer size")
    host_kv_bytes = serializers.IntegerField(help_text="CPU KV buffer size")
    k_bytes = serializers.IntegerField()
    v_bytes = serializers.IntegerField()
    gpu_compute_bytes = serializers.IntegerField(help_text="CUDA0 compute buffer size")
    host_compute_bytes = serializers.IntegerField(help_text="CUDA_Host compute buffer size")
    output_buffer_bytes = serializers.IntegerField(help_text="CUDA_Host output buffer size")
    gpu_total_bytes = serializers.IntegerField()
    host_bytes = serializers.IntegerField(help_text="Host RAM in all")
    host_memory_bandwidth_bytes_per_s = serializers.IntegerField(
        help_text="Assumed for layers on the CPU: dual-channel DDR5-6400"
    )
    # models with state layers (llama-memory-recurrent: the RS buffer)
    kv_layers = serializers.IntegerField(
        required=False, help_text="Layers with a KV cache (attention layers of a hybrid)"
    )
    rs_layers = serializers.IntegerField(
        required=False, help_text="Recurrent layers (Mamba, Gated DeltaNet) in the RS buffer"
    )
    rs_cells = serializers.IntegerField(
        required=False, help_text="Sequences the RS buffer holds: max(1, n_parallel)"
    )
    gpu_rs_bytes = serializers.IntegerField(required=False, help_text="CUDA0 RS buffer size")
    host_rs_bytes = serializers.IntegerField(required=False, help_text="CPU RS buffer size")
    r_bytes = serializers.IntegerField(
        required=False, help_text="R (f32): the convolution states of every cell"
    )
    s_bytes = serializers.IntegerField(
        required=False, help_text="S (f32): the recurrent (SSM) states of every cell"
    )


class StateCacheSerializer(serializers.Serializer):
    """vLLM v1's hybrid KV cache for a model with state layers (linear attention, Mamba)."""

    attention_layers = serializers.IntegerField()
    state_layers = serializers.IntegerField()
    block_size = serializers.IntegerField(
        help_text="The attention layers' block in tokens, raised so that one page holds a "
        "state; the state layers' block is max_model_len"
    )
    state_page_bytes = serializers.IntegerField(help_text="One layer's state of one request")
    page_bytes = serializers.IntegerField(help_text="One block of one layer, every group alike")
    group_size = serializers.IntegerField(help_text="Layers a KV cache group has on this GPU")
    attention_groups = serializers.IntegerField()
    state_groups = serializers.IntegerField()
    blocks_per_request = serializers.IntegerField(
        help_text="Blocks a max_model_len request takes over all groups"
    )


class ServingMemorySerializer(serializers.Serializer):
    """Bytes on each GPU (the busiest), as the engine lays it out at start-up."""

    total_memory_bytes = serializers.IntegerField()
    usable_bytes = serializers.IntegerField(help_text="total x gpu_memory_utilization")
    weights_bytes = serializers.IntegerField()
    activation_peak_bytes = serializers.IntegerField(
        help_text="vLLM: the profiled forward of max_num_batched_tokens and the sampler; "
        "SGLang: 0 (in its reserve)."
    )
    non_torch_bytes = serializers.IntegerField()
    kv_cache_bytes = serializers.IntegerField()
    kv_bytes_per_token = serializers.IntegerField()
    num_blocks = serializers.IntegerField()
    kv_cache_tokens = serializers.IntegerField()
    state_bytes_per_request = serializers.IntegerField(
        help_text="A request's fixed state whatever its length (hybrid models' linear-attention "
        "and state-space layers); 0 for attention-only models."
    )
    max_concurrency = serializers.FloatField(
        help_text="Requests of max_model_len tokens the KV cache holds (kv_cache_tokens / "
        "max_model_len for attention-only models)."
    )
    starts = serializers.BooleanField()
    error = serializers.CharField(
        allow_null=True, help_text="What the engine says when it cannot start, in its words."
    )
    draft_weights_bytes = serializers.IntegerField(
        required=False,
        help_text="With speculative_method: the draft model's, EAGLE head's or MTP layers' "
        "weights, from the same budget as the target's.",
    )
    draft_kv_bytes_per_token = serializers.IntegerField(
        required=False,
        help_text="With speculative_method: the draft's layers' KV cache a token (included in "
        "kv_bytes_per_token).",
    )
    draft_parameters = serializers.IntegerField(required=False)
    llamacpp = LlamaCppMemorySerializer(required=False)
    state_cache = StateCacheSerializer(
        required=False,
        help_text="vLLM with a model with state layers: how its blocks hold the state.",
    )


class ServingSpeculativeSerializer(serializers.Serializer):
    """One speculative step (Leviathan et al. 2023, eq. 1)."""

    method = serializers.CharField()
    num_speculative_tokens = serializers.IntegerField()
    acceptance_rate = serializers.FloatField()
    tokens_per_step = serializers.FloatField(help_text="(1 - a^(k+1)) / (1 - a)")
    verify_s = serializers.FloatField(help_text="The target's forward over k + 1 tokens.")
    draft_s = serializers.FloatField(help_text="One draft forward (k a step).")
    step_s = serializers.FloatField()
    seconds_per_token = serializers.FloatField(help_text="step_s / tokens_per_step: the TPOT.")
    speedup = serializers.FloatField(help_text="Decode without speculation's TPOT over this.")


class ServingPerformanceSerializer(serializers.Serializer):
    concurrency = serializers.IntegerField()
    ttft_s = serializers.FloatField()
    tpot_s = serializers.FloatField()
    output_tokens_per_s_per_request = serializers.FloatField()
    output_tokens_per_s = serializers.FloatField()
    input_tokens_per_s = serializers.FloatField()
    speculative = ServingSpeculativeSerializer(required=False)


class ServingCostSerializer(serializers.Serializer):
    per_hour = serializers.FloatField(allow_null=True)
    per_million_output_tokens = serializers.FloatField(allow_null=True)
    per_million_input_tokens = serializers.FloatField(allow_null=True)


class ServingCurvePointSerializer(serializers.Serializer):
    concurrency = serializers.IntegerField()
    tpot_s = serializers.FloatField()
    output_tokens_per_s = serializers.FloatField()


class ServingDeploymentSerializer(serializers.Serializer):
    gpu = serializers.CharField()
    name = serializers.CharField()
    gpu_count = serializers.IntegerField()
    configuration = ConfigurationSerializer()
    concurrency = serializers.IntegerField()
    output_tokens_per_s = serializers.FloatField()
    tpot_s = serializers.FloatField()
    per_hour = serializers.FloatField(allow_null=True)
    per_million_output_tokens = serializers.FloatField(allow_null=True)


class ServingSerializer(serializers.Serializer):
    """mode "serving": the plan on the GPUs asked for."""

    engine = serializers.CharField()
    follows = serializers.CharField(help_text="The engine versions and code the plan follows.")
    gpu = serializers.CharField()
    gpu_count = serializers.IntegerField()
    configuration = ConfigurationSerializer()
    memory = ServingMemorySerializer()
    concurrency_limit = serializers.IntegerField(
        help_text="Requests decoding at once: max_num_seqs, or what the KV cache holds at "
        "max_model_len."
    )
    performance = ServingPerformanceSerializer(
        allow_null=True, help_text="At batch_size requests at once (up to the limit)."
    )
    cost = ServingCostSerializer(allow_null=True)
    curve = ServingCurvePointSerializer(many=True)
    deployments = ServingDeploymentSerializer(
        many=True, allow_null=True, help_text="With target_output_tokens_per_s: cheapest first."
    )


class PeakSerializer(serializers.Serializer):
    """Training (detailed method): the phase that sets the peak."""

    phase = serializers.ChoiceField(
        choices=["backward", "optimizer_step"],
        help_text="backward: saved activations outweigh the gradients; optimizer_step: every "
        "gradient exists once the activations are freed (the activations line is then 0).",
    )
    activation_peak_bytes = serializers.IntegerField(
        help_text="The activations' own peak, before the gradients replace them."
    )
    gradients_bytes = serializers.IntegerField()
    text = serializers.CharField()


class LineBoundsSerializer(serializers.Serializer):
    provenance = serializers.ChoiceField(
        choices=["exact", "modelled", "default", "measured", "given", "none"],
        help_text="exact: counted from the shape and formats; modelled: from the libraries' "
        "code; default / measured / given / none: the runtime overhead's origin.",
    )
    low = serializers.IntegerField()
    high = serializers.IntegerField()


class TotalBoundsSerializer(serializers.Serializer):
    low = serializers.IntegerField()
    high = serializers.IntegerField()


class BreakdownBoundsSerializer(serializers.Serializer):
    """How far each line can be trusted: a run of this kind was measured between low and high
    in the published GPU measurements (error = estimate / measured - 1)."""

    workload = serializers.CharField(help_text="inference, full, lora or qlora")
    band_from = serializers.CharField(
        help_text="The measurements' group the band comes from: the workload's, or all of them "
        "where none of its kind is published yet."
    )
    cases = serializers.IntegerField()
    min_error = serializers.FloatField()
    max_error = serializers.FloatField()
    total = TotalBoundsSerializer()
    lines = serializers.DictField(child=LineBoundsSerializer())
