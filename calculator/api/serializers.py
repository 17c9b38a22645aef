"""Request and response shapes of the API. They validate what the API itself owns (names,
sharing) and document everything for the OpenAPI schema; the estimate contract's fields are
validated by the engine alone, so the API and the pages can never disagree about them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from calculator import engine
from calculator.engine.architecture import (
    ARCHITECTURE_FIELDS,
    LIMITS,
    MAX_MODEL_TYPE_LENGTH,
    MODEL_DTYPES,
)
from calculator.engine.contract import CONTRACT, ContractField
from calculator.engine.hardware import GPU_SPEC_LIMITS
from calculator.engine.serving import SERVING_FIELDS
from calculator.models import (
    Estimate,
    Gpu,
    Membership,
    ModelProfile,
    ProfileSource,
    Role,
    Team,
    Visibility,
)
from calculator.selectors import readable_profile_ids, team_list

# --- The estimate contract (docs/design.md), field by field from the engine's own lists ---


def _architecture_field(name: str) -> serializers.Field:
    # the optional ones may be null: the engine reads null as left out (its default)
    if name in LIMITS:
        low, high = LIMITS[name]
        required = name in ("hidden_size", "num_layers", "num_attention_heads")
        return serializers.IntegerField(
            required=required, allow_null=not required, min_value=low, max_value=high
        )
    if name in ("tie_word_embeddings", "gated_mlp"):
        return serializers.BooleanField(required=False, allow_null=True)
    if name == "default_dtype":
        return serializers.CharField(
            required=False, allow_null=True, help_text=f"One of {', '.join(MODEL_DTYPES)}."
        )
    return serializers.CharField(required=False, allow_null=True, max_length=MAX_MODEL_TYPE_LENGTH)


ArchitectureFieldsSerializer = type(
    "ArchitectureFieldsSerializer",
    (serializers.Serializer,),
    {
        "__doc__": "A model typed in by hand: hidden_size, num_layers and num_attention_heads, "
        "plus num_parameters or enough shape (intermediate_size, vocab_size) to count them.",
        **{name: _architecture_field(name) for name in ARCHITECTURE_FIELDS},
    },
)


@extend_schema_field(ArchitectureFieldsSerializer)
class ArchitectureField(serializers.DictField):
    """A JSON object passed to the engine as it is (the engine validates it)."""


@extend_schema_field({"type": "object", "additionalProperties": True})
class HfConfigField(serializers.DictField):
    """A Hugging Face config.json as a JSON object, kept as it is."""


class CatalogModelChoiceSerializer(serializers.Serializer):
    catalog = serializers.CharField(help_text="A catalog slug, e.g. meta-llama/Llama-3.1-8B.")


class ProfileModelChoiceSerializer(serializers.Serializer):
    profile = serializers.IntegerField(help_text="The id of a profile you can see.")


class HfConfigModelChoiceSerializer(serializers.Serializer):
    hf_config = HfConfigField(help_text="A Hugging Face config.json.")


class HubModelChoiceSerializer(serializers.Serializer):
    hub = serializers.CharField(
        help_text="A Hugging Face model id (organisation/name), read from the Hub that "
        "HF_ENDPOINT names: its config.json and safetensors headers."
    )
    revision = serializers.CharField(
        required=False, help_text="A branch, tag or commit sha. Default: main."
    )


class ArchitectureModelChoiceSerializer(serializers.Serializer):
    architecture = ArchitectureField()


@extend_schema_field(
    PolymorphicProxySerializer(
        component_name="EstimateModel",
        serializers=[
            CatalogModelChoiceSerializer,
            ProfileModelChoiceSerializer,
            HubModelChoiceSerializer,
            HfConfigModelChoiceSerializer,
            ArchitectureModelChoiceSerializer,
        ],
        resource_type_field_name=None,
    )
)
class ModelChoiceField(serializers.DictField):
    """Exactly one of catalog, profile, hub (with its revision), hf_config or architecture."""


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "enum": [engine.ALL_LINEAR]},
            {
                "type": "array",
                "items": {"type": "string", "enum": list(engine.LORA_TARGET_MODULES)},
            },
        ]
    }
)
class LoraTargetModulesField(serializers.JSONField):
    """ "all-linear", or a list of projection names."""


def _gpu_figures_schema() -> dict[str, Any]:
    """A GPU given by its figures (the GPU catalog's fields), within the engine's limits."""
    limits = GPU_SPEC_LIMITS

    def number(name: str, kind: str) -> dict[str, Any]:
        low, high = limits[name]
        return {"type": kind, "minimum": low, "maximum": high}

    return {
        "type": "object",
        "properties": {
            "slug": {"type": "string", "maxLength": 200},
            "name": {"type": "string", "maxLength": 200},
            "memory_bytes": number("memory_bytes", "integer"),
            "memory_bandwidth_bytes_per_s": number("memory_bandwidth_bytes_per_s", "integer"),
            "bf16_dense_tflops": number("bf16_dense_tflops", "number"),
            "price_per_hour_usd": {**number("price_per_hour_usd", "number"), "nullable": True},
        },
        "required": ["memory_bytes", "memory_bandwidth_bytes_per_s", "bf16_dense_tflops"],
    }


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "description": "A GPU catalog slug, e.g. h100-sxm."},
            _gpu_figures_schema(),
        ],
        "nullable": True,
    }
)
class GpuChoiceField(serializers.JSONField):
    """A catalog slug, or the GPU's figures."""


def api_help(spec: ContractField) -> str:
    return f"{spec.help} Default: {spec.default_text}."


def contract_serializer_field(spec: ContractField) -> serializers.Field:
    """The API field for one contract row (calculator/engine/contract.py); the engine validates
    again, so the page and the API can never disagree."""
    common: dict[str, Any] = {
        "required": False,
        "help_text": api_help(spec),
        **({"allow_null": True} if spec.nullable else {}),
    }
    limits = spec.limits
    if spec.kind == "integer":
        assert limits is not None, spec.name
        return serializers.IntegerField(
            min_value=int(limits[0]), max_value=int(limits[1]), **common
        )
    if spec.kind == "number":
        assert limits is not None, spec.name
        return serializers.FloatField(min_value=limits[0], max_value=limits[1], **common)
    if spec.kind == "boolean":
        return serializers.BooleanField(**common)
    if spec.kind == "modules":
        return LoraTargetModulesField(**common)
    if spec.kind == "gpu":
        return GpuChoiceField(**common)
    if spec.kind == "text":
        return serializers.CharField(max_length=spec.max_length, **common)
    return serializers.ChoiceField(choices=spec.choices, **common)


# The contract's fields, generated from its rows
if TYPE_CHECKING:

    class ContractFieldsSerializer(serializers.Serializer): ...

else:
    ContractFieldsSerializer = type(
        "ContractFieldsSerializer",
        (serializers.Serializer,),
        {spec.name: contract_serializer_field(spec) for spec in CONTRACT},
    )


class CalculateRequestSerializer(ContractFieldsSerializer):
    """The estimate contract: every field but `model` may be left out for its default. With a
    `gpu`, the response adds fit, capacity, throughput and cost; mode "serving" (with a `gpu`)
    plans a serving engine as it is launched."""

    model = ModelChoiceField()


class CalculateInputsSerializer(CalculateRequestSerializer):
    """The request as the engine understood it: every default filled in."""

    def get_fields(self) -> dict[str, serializers.Field]:
        # The memory fields always come back; the hardware fields only with a `gpu`.
        fields = super().get_fields()
        for name, field in fields.items():
            field.required = name not in (*engine.HARDWARE_FIELDS, *SERVING_FIELDS)
        return fields


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


class CalculateResponseSerializer(serializers.Serializer):
    """All sizes are integers in bytes, per GPU; total_bytes is the sum of the breakdown.
    With a `gpu` in the request, fit, capacity, throughput and cost are added."""

    parameters = ParametersSerializer()
    breakdown = BreakdownSerializer()
    total_bytes = serializers.IntegerField()
    host_memory_bytes = serializers.IntegerField(
        help_text="Host (CPU) RAM each GPU's process needs beside it for what offload moves "
        "there; 0 without offload. Not part of total_bytes."
    )
    num_gpus = serializers.IntegerField()
    inputs = CalculateInputsSerializer()
    notes = serializers.ListField(child=serializers.CharField())
    warnings = WarningSerializer(
        many=True,
        help_text="Where the request leaves the model's envelope (a context beyond what it was "
        "trained for, nothing in the catalog that holds it); the answer is still as asked.",
    )
    breakdown_bounds = BreakdownBoundsSerializer()
    peak = PeakSerializer(allow_null=True, help_text="null: inference, or the standard method.")
    checkpoint = CheckpointSerializer(
        allow_null=True, help_text="null: the model's config.json has no quantization_config."
    )
    engine_version = serializers.CharField()
    answer = GpuAnswerSerializer(required=False)
    serving = ServingSerializer(required=False)
    fit = FitSerializer(many=True, required=False)
    capacity = CapacitySerializer(required=False)
    throughput = ThroughputSerializer(required=False)
    cost = CostSerializer(required=False)
    hub = HubSerializer(required=False)


@extend_schema_field(CalculateResponseSerializer)
class ResultField(serializers.DictField):
    """An engine response as saved."""


@extend_schema_field(CalculateInputsSerializer)
class InputsField(serializers.DictField):
    """Normalised contract inputs as saved."""


@extend_schema_field(
    PolymorphicProxySerializer(
        component_name="ResolvedModel",
        serializers=[HfConfigModelChoiceSerializer, ArchitectureModelChoiceSerializer],
        resource_type_field_name=None,
    )
)
class ResolvedModelField(serializers.DictField):
    """The model the engine used: a config.json or architecture fields."""


# --- Errors -------------------------------------------------------------------------------


class StrictSerializer(serializers.Serializer):
    """Names a field it does not know instead of ignoring it (a typo must not pass silently)."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {name: ["Unknown field; this endpoint does not change it."] for name in unknown}
            )
        return super().validate(attrs)


class ErrorDetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


# --- Teams --------------------------------------------------------------------------------


@extend_schema_field(OpenApiTypes.INT)
class TeamChoiceField(serializers.PrimaryKeyRelatedField):
    """A team id; only the caller's own teams are valid (others read as nonexistent)."""

    def get_queryset(self) -> Any:
        return team_list(user=self.context["request"].user)


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    role = serializers.ChoiceField(choices=Role.choices, read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role"]


class TeamSerializer(serializers.ModelSerializer):
    my_role = serializers.ChoiceField(choices=Role.choices, read_only=True)
    members = MemberSerializer(source="memberships", many=True, read_only=True)

    class Meta:
        model = Team
        fields = ["id", "name", "slug", "my_role", "members", "created"]


# --- Profiles -----------------------------------------------------------------------------


class ProfileSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True, allow_null=True)
    team = serializers.IntegerField(source="team_id", read_only=True, allow_null=True)
    visibility = serializers.ChoiceField(choices=Visibility.choices, read_only=True)
    source = serializers.ChoiceField(choices=ProfileSource.choices, read_only=True)
    hf_config = HfConfigField(read_only=True, allow_null=True)
    architecture = ArchitectureField(read_only=True, allow_null=True)

    class Meta:
        model = ModelProfile
        fields = [
            "id",
            "public_id",
            "name",
            "slug",
            "owner",
            "team",
            "visibility",
            "source",
            "family",
            "description",
            "num_parameters",
            "num_active_parameters",
            "published_parameters",
            "hf_config",
            "architecture",
            "hub_repo_id",
            "hub_revision",
            "hub_facts",
            "created",
            "updated",
        ]
        read_only_fields = fields


class ProfileWriteSerializer(StrictSerializer):
    """Create a profile from fields, a config.json object (`hf_config`) or a config.json file's
    text (`config_json`, kept verbatim); give exactly one of the three."""

    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)
    team = TeamChoiceField(required=False, allow_null=True)
    hf_config = HfConfigField(required=False)
    config_json = serializers.CharField(
        required=False, help_text="The text of a config.json file, kept verbatim."
    )
    architecture = ArchitectureField(required=False)
    hub = serializers.CharField(
        required=False,
        max_length=200,
        help_text="A Hugging Face model id: its config.json is read from the Hub (create only).",
    )
    revision = serializers.CharField(
        required=False, max_length=200, help_text="With hub: a branch, tag or commit (main)."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        sources = ("hf_config", "config_json", "architecture", "hub")
        given = [key for key in sources if key in attrs]
        if len(given) > 1:
            raise serializers.ValidationError(
                f"Give only one of hf_config, config_json, architecture and hub (got {given})."
            )
        if not given and not self.partial:
            raise serializers.ValidationError(
                "Give the model: hf_config, config_json, architecture or hub."
            )
        if "revision" in attrs and "hub" not in attrs:
            raise serializers.ValidationError({"revision": ["Only with hub."]})
        if self.partial and "hub" in attrs:
            raise serializers.ValidationError(
                {"hub": ["A profile is imported from the Hub when it is created."]}
            )
        return super().validate(attrs)


# --- Estimates ----------------------------------------------------------------------------


class EstimateListSerializer(serializers.ListSerializer):
    """Reads which of a page's profiles the caller may read in one query, not one a row."""

    def to_representation(self, data: Any) -> list[Any]:
        items = list(data.all() if hasattr(data, "all") else data)
        request = self.context.get("request")
        self.context[READABLE_PROFILES] = readable_profile_ids(
            user=getattr(request, "user", None),
            ids={item.profile_id for item in items if item.profile_id is not None},
        )
        return super().to_representation(items)


READABLE_PROFILES = "readable_profile_ids"


def _without_profile_id(inputs: Any) -> Any:
    model = inputs.get("model") if isinstance(inputs, dict) else None
    if isinstance(model, dict) and "profile" in model:
        return {**inputs, "model": {**model, "profile": None}}
    return inputs


class EstimateSerializer(serializers.ModelSerializer):
    """`profile` (and the profile id in `inputs.model`) is null for a caller who may not read
    that profile: they see only the snapshot saved with the estimate (`model_name`,
    `architecture`). Give the serializer the request in its context."""

    owner = serializers.CharField(source="owner.username", read_only=True)
    team = serializers.IntegerField(source="team_id", read_only=True, allow_null=True)
    profile = serializers.IntegerField(
        source="profile_id",
        read_only=True,
        allow_null=True,
        help_text="The profile it was calculated from; null when it was none, it has been "
        "deleted, or you may not read it.",
    )
    visibility = serializers.ChoiceField(choices=Visibility.choices, read_only=True)
    mode = serializers.ChoiceField(choices=engine.MODES, read_only=True)
    method = serializers.ChoiceField(choices=engine.METHODS, read_only=True)
    inputs = InputsField(read_only=True)
    result = ResultField(read_only=True)
    permalink = serializers.CharField(source="get_absolute_url", read_only=True)

    class Meta:
        model = Estimate
        fields = [
            "id",
            "public_id",
            "permalink",
            "title",
            "notes",
            "owner",
            "team",
            "visibility",
            "profile",
            "model_name",
            "mode",
            "method",
            "total_bytes",
            "num_gpus",
            "engine_version",
            "inputs",
            "result",
            "created",
            "updated",
        ]
        read_only_fields = fields
        list_serializer_class = EstimateListSerializer

    def to_representation(self, instance: Estimate) -> dict[str, Any]:
        data = super().to_representation(instance)
        if instance.profile_id is None or self._profile_readable(instance):
            return data
        data["profile"] = None
        data["inputs"] = _without_profile_id(data.get("inputs"))
        if isinstance(data.get("result"), dict):
            data["result"] = {
                **data["result"],
                "inputs": _without_profile_id(data["result"].get("inputs")),
            }
        return data

    def _profile_readable(self, instance: Estimate) -> bool:
        profile_id = instance.profile_id
        if profile_id is None:
            return False
        readable = self.context.get(READABLE_PROFILES)
        if readable is None:
            request = self.context.get("request")
            readable = readable_profile_ids(user=getattr(request, "user", None), ids={profile_id})
        return profile_id in readable


class EstimateDetailSerializer(EstimateSerializer):
    architecture = ResolvedModelField(read_only=True)

    class Meta(EstimateSerializer.Meta):
        fields = [*EstimateSerializer.Meta.fields, "architecture"]
        read_only_fields = fields


class EstimateSharingSerializer(StrictSerializer):
    """What an estimate's owner may change: its description and who sees it."""

    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    notes = serializers.CharField(required=False, allow_blank=True)
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)
    team = TeamChoiceField(required=False, allow_null=True)


class EstimateCreateSerializer(CalculateRequestSerializer, EstimateSharingSerializer):
    """The estimate contract plus the saved estimate's title, notes and sharing."""


# --- Catalogs -----------------------------------------------------------------------------


class CatalogModelSerializer(serializers.ModelSerializer):
    hf_config = HfConfigField(read_only=True, allow_null=True)
    architecture = ArchitectureField(read_only=True, allow_null=True)

    class Meta:
        model = ModelProfile
        fields = [
            "id",
            "slug",
            "name",
            "family",
            "description",
            "num_parameters",
            "num_active_parameters",
            "published_parameters",
            "hf_config",
            "architecture",
        ]
        read_only_fields = fields


@extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}})
class SourcesField(serializers.DictField):
    """Where each figure comes from: figure name -> citation."""


class GpuSerializer(serializers.ModelSerializer):
    price_per_hour_usd = serializers.DecimalField(
        max_digits=10, decimal_places=4, coerce_to_string=False, read_only=True, allow_null=True
    )
    sources = SourcesField(read_only=True)

    class Meta:
        model = Gpu
        fields = [
            "slug",
            "name",
            "vendor",
            "memory_bytes",
            "memory_bandwidth_bytes_per_s",
            "bf16_dense_tflops",
            "price_per_hour_usd",
            "sources",
            "notes",
        ]
        read_only_fields = fields
