"""Request and response shapes of the API. They validate what the API itself owns (names,
sharing) and document everything for the OpenAPI schema; the estimate contract's fields are
validated by the engine alone, so the API and the pages can never disagree about them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from calculator import engine
from calculator.api.results import (
    BreakdownBoundsSerializer,
    BreakdownSerializer,
    CapacitySerializer,
    CheckpointSerializer,
    CostSerializer,
    FitSerializer,
    GpuAnswerSerializer,
    HubSerializer,
    ParametersSerializer,
    PeakSerializer,
    ServingSerializer,
    ThroughputSerializer,
    WarningSerializer,
)
from calculator.domain.selectors import readable_profile_ids, team_list
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
    Membership,
    ModelProfile,
    ProfileSource,
    Role,
    Team,
    Visibility,
)

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
