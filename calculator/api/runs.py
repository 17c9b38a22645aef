"""Measured runs of a saved estimate: `GET/POST /api/v1/estimates/<public_id>/runs/` and
`GET/DELETE .../runs/<id>/`. Reads follow the estimate's access (by public id, like its
permalink); attaching needs write access to the estimate; deleting is for the run's owner."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from calculator.api.schema import error_responses
from calculator.api.serializers import StrictSerializer
from calculator.api.views import _body_object
from calculator.domain import evidence, selectors, services
from calculator.domain.errors import Forbidden
from calculator.models import MeasuredRun

FORMAT_CHOICES = [("auto", "Detect from the text"), *evidence.FORMATS.items()]
LIMIT = evidence.MAX_MEASURED_BYTES


def _figure(help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(
        required=False, allow_null=True, min_value=-LIMIT, max_value=LIMIT, help_text=help_text
    )


class MeasuredRunCreateSerializer(StrictSerializer):
    """A log to read (`text`, with its `format` or "auto"), or, with format "manual", the
    figures themselves in bytes per GPU. GPU, driver, CUDA and framework fill in or correct
    what the log says."""

    format = serializers.ChoiceField(choices=FORMAT_CHOICES, default="auto")
    text = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text=f"The log, {evidence.MAX_TEXT_BYTES // 1024} KiB of UTF-8 at most.",
    )
    note = serializers.CharField(
        required=False, allow_blank=True, max_length=services.RUN_NOTE_LIMIT
    )
    gpu_name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    driver_version = serializers.CharField(required=False, allow_blank=True, max_length=64)
    cuda_version = serializers.CharField(required=False, allow_blank=True, max_length=64)
    framework_version = serializers.CharField(required=False, allow_blank=True, max_length=100)
    weights_bytes = _figure("Manual: the weights, in bytes.")
    kv_cache_bytes = _figure("Manual: the KV cache, in bytes.")
    activations_bytes = _figure("Manual: the activation peak, in bytes.")
    non_torch_bytes = _figure("Manual: memory outside PyTorch (context, NCCL), in bytes.")
    total_bytes = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=LIMIT, help_text="In bytes."
    )

    FIGURES = ("weights", "kv_cache", "activations", "non_torch", "total")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        figures = {name: attrs.get(f"{name}_bytes") for name in self.FIGURES}
        text = attrs.get("text", "")
        try:
            if attrs["format"] == "manual":
                if text.strip():
                    raise serializers.ValidationError({"text": ["Leave it out for typed figures."]})
                attrs["measured"] = evidence.from_figures(figures)
                attrs["text"] = ""
            else:
                if any(value is not None for value in figures.values()):
                    raise serializers.ValidationError(
                        {"format": ['Figures in bytes go with format "manual".']}
                    )
                attrs["text"] = evidence.clean_text(text)
                attrs["measured"] = evidence.parse(attrs["text"], attrs["format"])
        except evidence.EvidenceError as error:
            field = "format" if attrs["format"] == "manual" else "text"
            raise serializers.ValidationError({field: [str(error)]}) from None
        return attrs


class MeasuredFiguresSerializer(serializers.Serializer):
    """Bytes per GPU; null where the log does not print that line."""

    weights = serializers.IntegerField(allow_null=True)
    kv_cache = serializers.IntegerField(allow_null=True)
    activations = serializers.IntegerField(allow_null=True)
    non_torch = serializers.IntegerField(allow_null=True)
    total = serializers.IntegerField(allow_null=True)


class ComparedLineSerializer(serializers.Serializer):
    line = serializers.ChoiceField(choices=evidence.LINE_NAMES)
    label = serializers.CharField()
    estimate_bytes = serializers.IntegerField(help_text="The saved estimate's figure, per GPU.")
    measured_bytes = serializers.IntegerField(allow_null=True)
    error_bytes = serializers.IntegerField(
        allow_null=True, help_text="Estimate minus measured: positive where the estimate is above."
    )
    error_percent = serializers.FloatField(
        allow_null=True, help_text="error_bytes as a percentage of the measured figure."
    )


def comparison(run: MeasuredRun) -> list[evidence.ComparedLine]:
    estimate = run.estimate
    return evidence.compare(
        breakdown=(estimate.result or {}).get("breakdown", {}),
        total_bytes=estimate.total_bytes,
        measured=run.measured(),
    )


@extend_schema_field(MeasuredFiguresSerializer)
class MeasuredField(serializers.Field):
    def to_representation(self, value: MeasuredRun) -> dict[str, int | None]:
        return value.measured()


@extend_schema_field(ComparedLineSerializer(many=True))
class ComparisonField(serializers.Field):
    def to_representation(self, value: MeasuredRun) -> list[dict[str, Any]]:
        return [ComparedLineSerializer(line).data for line in comparison(value)]


class MeasuredRunSerializer(serializers.ModelSerializer):
    estimate = serializers.CharField(source="estimate.public_id", read_only=True)
    owner = serializers.CharField(source="owner.get_username", read_only=True)
    measured = MeasuredField(source="*", read_only=True)
    comparison = ComparisonField(source="*", read_only=True)
    parser_notes = serializers.ListField(child=serializers.CharField(), read_only=True)
    details = serializers.DictField(read_only=True, help_text="Other figures the log printed.")

    class Meta:
        model = MeasuredRun
        fields = [
            "id",
            "estimate",
            "owner",
            "created",
            "source_format",
            "gpu_name",
            "driver_version",
            "cuda_version",
            "framework_version",
            "measured",
            "comparison",
            "details",
            "parser_notes",
            "note",
        ]
        read_only_fields = fields


class MeasuredRunDetailSerializer(MeasuredRunSerializer):
    class Meta(MeasuredRunSerializer.Meta):
        fields = [*MeasuredRunSerializer.Meta.fields, "raw_text"]
        read_only_fields = fields


class ReadOpenWriteSignedIn(BasePermission):
    """Reads as open as the estimate (a link item by its public id, to anyone); writes need a
    signed-in caller (401 first), then the estimate's write access or the run's ownership."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return AllowAny().has_permission(request, view)
        return IsAuthenticated().has_permission(request, view)


VLLM_EXAMPLE = (
    "INFO 04-02 21:42:59 model_runner.py:1099] Loading model weights took 15.5083 GB\n"
    "INFO 04-02 21:43:03 worker.py:241] Memory profiling takes 4.42 seconds\n"
    "INFO 04-02 21:43:03 worker.py:241] the current vLLM instance can use total_gpu_memory "
    "(23.67GiB) x gpu_memory_utilization (0.90) = 21.30GiB\n"
    "INFO 04-02 21:43:03 worker.py:241] model weights take 15.51GiB; non_torch_memory takes "
    "0.28GiB; PyTorch activation peak memory takes 1.16GiB; the rest of the memory reserved "
    "for KV Cache is 4.36GiB.\n"
)


class MeasuredRunListView(generics.ListAPIView):
    serializer_class = MeasuredRunSerializer
    permission_classes = [ReadOpenWriteSignedIn]

    def get_queryset(self) -> QuerySet[MeasuredRun]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator
            return MeasuredRun.objects.none()
        estimate, _ = selectors.estimate_get_for_user(
            user=self.request.user, public_id=self.kwargs["public_id"]
        )
        self.estimate = estimate
        return selectors.run_list(estimate=estimate)

    def paginate_queryset(self, queryset: Any) -> Any:
        page = super().paginate_queryset(queryset)
        for run in page if page is not None else []:
            run.estimate = self.estimate  # read once, not once a run
        return page

    @extend_schema(
        operation_id="estimate_runs_list",
        tags=["measured runs"],
        summary="An estimate's measured runs, newest first, each beside the estimate line by line",
        responses={200: MeasuredRunSerializer(many=True), **error_responses(401, 404, 429)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="estimate_runs_create",
        tags=["measured runs"],
        summary="Attach a measured run: a log to read, or typed figures",
        request=MeasuredRunCreateSerializer,
        responses={201: MeasuredRunDetailSerializer, **error_responses(400, 401, 403, 404, 429)},
        examples=[
            OpenApiExample("A vLLM start-up log", value={"format": "auto", "text": VLLM_EXAMPLE}),
            OpenApiExample(
                "Typed figures",
                value={
                    "format": "manual",
                    "weights_bytes": 16_060_000_000,
                    "total_bytes": 20_000_000_000,
                    "gpu_name": "NVIDIA L4",
                },
            ),
        ],
    )
    def post(self, request: Request, public_id: str) -> Response:
        estimate, access = selectors.estimate_get_for_user(user=request.user, public_id=public_id)
        if not access.can_write:
            raise Forbidden("estimate")  # readable, so whether it exists is no secret
        body = MeasuredRunCreateSerializer(data=_body_object(request))
        body.is_valid(raise_exception=True)
        data = body.validated_data
        facts = {key: data.get(key, "") for key in services.RUN_TEXT_LIMITS}
        facts["framework_version"] = data.get("framework_version", "")
        run = services.measured_run_attach(
            user=request.user,
            estimate=estimate,
            measured=data["measured"],
            raw_text=data["text"],
            note=data.get("note", ""),
            facts=facts,
        )
        return Response(MeasuredRunDetailSerializer(run).data, status=status.HTTP_201_CREATED)


class MeasuredRunDetailView(APIView):
    permission_classes = [ReadOpenWriteSignedIn]

    @extend_schema(
        operation_id="estimate_runs_retrieve",
        tags=["measured runs"],
        summary="One measured run, with the text it was read from",
        responses={200: MeasuredRunDetailSerializer, **error_responses(401, 404, 429)},
    )
    def get(self, request: Request, public_id: str, run_id: int) -> Response:
        run, _ = selectors.run_get_for_user(user=request.user, public_id=public_id, run_id=run_id)
        return Response(MeasuredRunDetailSerializer(run).data)

    @extend_schema(
        operation_id="estimate_runs_destroy",
        tags=["measured runs"],
        summary="Delete a measured run (its owner only)",
        responses={204: None, **error_responses(401, 403, 404, 429)},
    )
    def delete(self, request: Request, public_id: str, run_id: int) -> Response:
        run, _ = selectors.run_get_for_user(user=request.user, public_id=public_id, run_id=run_id)
        services.measured_run_delete(user=request.user, run=run)  # Forbidden: 403
        return Response(status=status.HTTP_204_NO_CONTENT)
