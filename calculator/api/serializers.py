"""Request and response shapes of the API. They validate what the API itself owns (names,
sharing) and document everything for the OpenAPI schema; the estimate contract's fields are
validated by the engine alone, so the API and the pages can never disagree about them."""

from __future__ import annotations

from typing import Any

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
from calculator.selectors import team_list

# --- The estimate contract (DESIGN.md), documented field by field from the engine's own lists --


def _architecture_field(name: str) -> serializers.Field:
    if name in LIMITS:
        low, high = LIMITS[name]
        required = name in ("hidden_size", "num_layers", "num_attention_heads")
        return serializers.IntegerField(required=required, min_value=low, max_value=high)
    if name in ("tie_word_embeddings", "gated_mlp"):
        return serializers.BooleanField(required=False)
    if name == "default_dtype":
        return serializers.CharField(required=False, help_text=f"One of {', '.join(MODEL_DTYPES)}.")
    return serializers.CharField(required=False, max_length=MAX_MODEL_TYPE_LENGTH)


ArchitectureFieldsSerializer = type(
    "ArchitectureFieldsSerializer",
    (serializers.Serializer,),
    {
        "__doc__": "A model typed in by hand: hidden_size, num_layers and num_attention_heads, "
        "plus num_parameters or enough shape (intermediate_size, vocab_size) to count them.",
        **{name: _architecture_field(name) for name in ARCHITECTURE_FIELDS},
    },
)


def _limited_int(name: str, **kwargs: Any) -> serializers.IntegerField:
    low, high = engine.INPUT_LIMITS[name]
    return serializers.IntegerField(required=False, min_value=low, max_value=high, **kwargs)


def _choice(name: str, choices: tuple[str, ...], **kwargs: Any) -> serializers.ChoiceField:
    return serializers.ChoiceField(choices=choices, required=False, **kwargs)


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


class ArchitectureModelChoiceSerializer(serializers.Serializer):
    architecture = ArchitectureField()


@extend_schema_field(
    PolymorphicProxySerializer(
        component_name="EstimateModel",
        serializers=[
            CatalogModelChoiceSerializer,
            ProfileModelChoiceSerializer,
            HfConfigModelChoiceSerializer,
            ArchitectureModelChoiceSerializer,
        ],
        resource_type_field_name=None,
    )
)
class ModelChoiceField(serializers.DictField):
    """Exactly one of catalog, profile, hf_config or architecture."""


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


class CalculateRequestSerializer(serializers.Serializer):
    """The estimate contract: every field but `model` may be left out for its default."""

    model = ModelChoiceField()
    mode = _choice("mode", engine.MODES, help_text="Default: inference.")
    method = _choice(
        "method",
        engine.METHODS,
        help_text="detailed (default, architecture-aware) or standard (the original formulas).",
    )
    batch_size = _limited_int("batch_size", help_text="Default: 1.")
    sequence_length = _limited_int(
        "sequence_length",
        help_text="Inference: tokens held per sequence (prompt + generated); training: tokens "
        "per sample. Default: 2048.",
    )
    weight_dtype = _choice(
        "weight_dtype", engine.WEIGHT_DTYPES, help_text="Default: the model's own dtype."
    )
    kv_cache_dtype = _choice(
        "kv_cache_dtype",
        engine.KV_CACHE_DTYPES,
        help_text="Default: follows the weights (bfloat16 beside quantised weights).",
    )
    attention_implementation = _choice(
        "attention_implementation",
        engine.ATTENTION_IMPLEMENTATIONS,
        help_text="flash (default: scores not stored) or eager.",
    )
    optimizer = _choice("optimizer", engine.OPTIMIZERS, help_text="Training. Default: adamw.")
    finetuning = _choice(
        "finetuning", engine.FINETUNING_METHODS, help_text="Training. Default: full."
    )
    trainable_percent = serializers.FloatField(
        required=False,
        min_value=engine.INPUT_LIMITS["trainable_percent"][0],
        max_value=engine.INPUT_LIMITS["trainable_percent"][1],
        help_text="partial fine-tuning and the standard method. Default: 100.",
    )
    lora_rank = _limited_int("lora_rank", help_text="lora and qlora. Default: 16.")
    lora_target_modules = LoraTargetModulesField(required=False, help_text='Default: "all-linear".')
    mixed_precision = serializers.BooleanField(
        required=False, help_text="Training: fp32 master weights, 16-bit compute. Default: false."
    )
    gradient_checkpointing = serializers.BooleanField(
        required=False, help_text="Training. Default: false."
    )
    num_gpus = _limited_int("num_gpus", help_text="Default: 1.")
    tensor_parallel = _limited_int("tensor_parallel", help_text="Default: 1.")
    pipeline_parallel = _limited_int("pipeline_parallel", help_text="Default: 1.")
    zero_stage = _limited_int("zero_stage", help_text="Training with data parallelism. Default: 0.")
    runtime_overhead_bytes = _limited_int(
        "runtime_overhead_bytes",
        allow_null=True,
        help_text="null (default) for the engine's estimate of CUDA context and allocator.",
    )


class CalculateInputsSerializer(CalculateRequestSerializer):
    """The request as the engine understood it: every default filled in."""

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        for field in fields.values():
            field.required = True
        return fields


class ParametersSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    active = serializers.IntegerField()
    trainable = serializers.IntegerField()


class BreakdownSerializer(serializers.Serializer):
    """Bytes per GPU."""

    weights = serializers.IntegerField()
    kv_cache = serializers.IntegerField()
    activations = serializers.IntegerField()
    gradients = serializers.IntegerField()
    optimizer_states = serializers.IntegerField()
    runtime_overhead = serializers.IntegerField()


class CalculateResponseSerializer(serializers.Serializer):
    """All sizes are integers in bytes, per GPU; total_bytes is the sum of the breakdown."""

    parameters = ParametersSerializer()
    breakdown = BreakdownSerializer()
    total_bytes = serializers.IntegerField()
    num_gpus = serializers.IntegerField()
    inputs = CalculateInputsSerializer()
    notes = serializers.ListField(child=serializers.CharField())
    engine_version = serializers.CharField()


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

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [key for key in ("hf_config", "config_json", "architecture") if key in attrs]
        if len(given) > 1:
            raise serializers.ValidationError(
                f"Give only one of hf_config, config_json and architecture (got {given})."
            )
        if not given and not self.partial:
            raise serializers.ValidationError(
                "Give the model: hf_config, config_json or architecture."
            )
        return super().validate(attrs)


# --- Estimates ----------------------------------------------------------------------------


class EstimateSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    team = serializers.IntegerField(source="team_id", read_only=True, allow_null=True)
    profile = serializers.IntegerField(source="profile_id", read_only=True, allow_null=True)
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
