"""API views: thin, like the pages. Reads go through `calculator.domain.selectors` (the access
rules), calculations through `calculation_run` (the calculate endpoint through
`calculation_result`, kept per body), writes through `calculator.domain.services`."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from calculator.api.catalogs import CatalogModelSerializer, GpuSerializer
from calculator.api.filters import CatalogModelFilter, EstimateFilter, ProfileFilter
from calculator.api.schema import error_responses
from calculator.api.serializers import (
    CalculateRequestSerializer,
    CalculateResponseSerializer,
    EstimateCreateSerializer,
    EstimateDetailSerializer,
    EstimateSerializer,
    EstimateSharingSerializer,
    ProfileSerializer,
    ProfileWriteSerializer,
    TeamSerializer,
)
from calculator.domain import selectors, services
from calculator.domain.calculations import calculation_result, calculation_run
from calculator.domain.errors import Forbidden
from calculator.models import Estimate, Gpu, Membership, ModelProfile, Team

READ_ERRORS = error_responses(401, 404, 429)
WRITE_ERRORS = error_responses(400, 401, 403, 404, 413, 429)


def without_nul_characters(value: Any, field: str = "") -> Any:
    """`value`, or a 400 naming the field that holds a NUL character: PostgreSQL can store one
    in neither text nor JSON, so it must not get as far as the database."""
    pending = [(field, value)]
    while pending:  # a loop, not recursion: bodies may nest deeply
        name, item = pending.pop()
        if isinstance(item, dict):
            pending.extend((f"{name}.{key}" if name else str(key), v) for key, v in item.items())
            item = "".join(str(key) for key in item)
        elif isinstance(item, list):
            pending.extend((f"{name}.{i}" if name else str(i), v) for i, v in enumerate(item))
            continue
        if isinstance(item, str) and "\x00" in item:
            raise ValidationError(
                {name or "non_field_errors": ["Null characters are not allowed."]}
            )
    return value


def _body_object(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ValidationError("Send a JSON object.")
    return without_nul_characters(dict(request.data))


# --- Calculate ----------------------------------------------------------------------------


# Request examples shown in the API docs: each is a valid request (tests/api/test_examples.py
# replays every one against its endpoint)
CALCULATE_EXAMPLES = [
    OpenApiExample(
        "Inference on a catalog model, with a GPU",
        value={
            "model": {"catalog": "meta-llama/Llama-3.1-8B"},
            "mode": "inference",
            "batch_size": 8,
            "sequence_length": 8192,
            "gpu": "h100-sxm",
        },
    ),
    OpenApiExample(
        "QLoRA fine-tuning",
        value={
            "model": {"catalog": "meta-llama/Llama-3.1-8B"},
            "mode": "training",
            "finetuning": "qlora",
            "weight_dtype": "nf4",
            "batch_size": 4,
            "sequence_length": 2048,
            "gradient_checkpointing": True,
        },
    ),
    OpenApiExample(
        "A vLLM serving plan",
        value={
            "model": {"catalog": "meta-llama/Llama-3.1-8B"},
            "mode": "serving",
            "sequence_length": 32768,
            "batch_size": 32,
            "gpu": "h100-sxm",
            "engine": "vllm",
            "target_output_tokens_per_s": 2000,
        },
    ),
    OpenApiExample(
        "vLLM with an EAGLE draft head",
        value={
            "model": {"catalog": "meta-llama/Llama-3.1-8B-Instruct"},
            "mode": "serving",
            "sequence_length": 8192,
            "batch_size": 8,
            "gpu": "h100-sxm",
            "speculative_method": "eagle",
            "num_speculative_tokens": 3,
            "acceptance_rate": 0.7,
        },
    ),
    OpenApiExample(
        "A llama.cpp plan, 20 layers on the GPU and the rest in host RAM",
        value={
            "model": {"catalog": "meta-llama/Llama-3.1-8B"},
            "mode": "serving",
            "sequence_length": 8192,
            "weight_dtype": "gguf_q4_k_m",
            "gpu": "rtx-4090",
            "engine": "llama.cpp",
            "n_gpu_layers": 20,
            "n_parallel": 2,
            "cache_type_k": "q8_0",
            "cache_type_v": "q8_0",
        },
    ),
    OpenApiExample(
        "MoE experts split over 8 GPUs (vLLM expert parallelism)",
        value={
            "model": {"catalog": "mistralai/Mixtral-8x7B-Instruct-v0.1"},
            "num_gpus": 8,
            "tensor_parallel": 1,
            "pipeline_parallel": 1,
            "expert_parallel": 8,
            "gpu": "h100-sxm",
        },
    ),
    OpenApiExample(
        "Long-context training: each sequence split over 4 GPUs (context parallelism)",
        value={
            "model": {"catalog": "meta-llama/Llama-3.1-8B"},
            "mode": "training",
            "sequence_length": 131072,
            "mixed_precision": True,
            "num_gpus": 8,
            "tensor_parallel": 2,
            "pipeline_parallel": 1,
            "context_parallel": 4,
            "zero_stage": 1,
            "gpu": "h100-sxm",
        },
    ),
    OpenApiExample(
        "A shape typed by hand",
        value={
            "model": {
                "architecture": {
                    "num_parameters": 7_000_000_000,
                    "hidden_size": 4096,
                    "num_layers": 32,
                    "num_attention_heads": 32,
                    "num_key_value_heads": 8,
                    "vocab_size": 32000,
                }
            },
            "sequence_length": 4096,
        },
    ),
]
PROFILE_EXAMPLES = [
    OpenApiExample(
        "A profile typed by hand",
        value={
            "name": "Our 7B",
            "visibility": "private",
            "architecture": {
                "num_parameters": 7_000_000_000,
                "hidden_size": 4096,
                "num_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "vocab_size": 32000,
            },
        },
    ),
]
ESTIMATE_EXAMPLES = [
    OpenApiExample(
        "Save an estimate",
        value={
            "model": {"catalog": "meta-llama/Llama-3.1-8B"},
            "batch_size": 4,
            "sequence_length": 4096,
            "title": "Llama 3.1 8B, batch 4",
            "visibility": "private",
        },
    ),
]
SHARING_EXAMPLES = [
    OpenApiExample("Make it readable by link", value={"visibility": "link"}),
]


class CalculateView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="calculate",
        tags=["calculate"],
        summary="Estimate memory for one configuration (stateless; anonymous callers allowed)",
        request=CalculateRequestSerializer,
        examples=CALCULATE_EXAMPLES,
        responses={200: CalculateResponseSerializer, **error_responses(400, 401, 413, 429)},
    )
    def post(self, request: Request) -> Response:
        payload = without_nul_characters(request.data)
        return Response(calculation_result(user=request.user, payload=payload))


# --- Profiles -----------------------------------------------------------------------------


def _profile_for_write(request: Request, pk: int) -> ModelProfile:
    profile, access = selectors.profile_get_for_user(user=request.user, pk=pk)
    if not access.can_write:
        raise Forbidden("profile")  # readable, so whether it exists is no secret
    return profile


def _profile_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Validated profile fields as the services take them."""
    fields = dict(data)
    if "config_json" in fields:
        text = fields.pop("config_json")
        fields["hf_config"] = services.parse_config_json(text)
        fields["config_json_text"] = text
    elif "hf_config" in fields:
        fields["config_json_text"] = json.dumps(fields["hf_config"], indent=2)
    return fields


class ProfileListView(generics.ListAPIView):
    serializer_class = ProfileSerializer
    filterset_class = ProfileFilter

    def get_queryset(self) -> QuerySet[ModelProfile]:
        return selectors.profile_list(user=self.request.user)

    @extend_schema(
        operation_id="profiles_list",
        tags=["profiles"],
        summary="Profiles you can see: yours, your teams' and the catalog",
        responses={200: ProfileSerializer(many=True), **error_responses(400, 401, 404, 429)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="profiles_create",
        tags=["profiles"],
        summary="Create a profile from fields, a config.json or a Hugging Face id",
        request=ProfileWriteSerializer,
        examples=PROFILE_EXAMPLES,
        responses={201: ProfileSerializer, **error_responses(400, 401, 413, 429)},
    )
    def post(self, request: Request) -> Response:
        serializer = ProfileWriteSerializer(
            data=_body_object(request), context={"request": request}
        )
        serializer.is_valid(raise_exception=True)
        fields = _profile_fields(serializer.validated_data)
        if "hub" in fields:
            profile = services.profile_create_from_hub(
                user=request.user, repo_id=fields.pop("hub"), **fields
            )
        else:
            profile = services.profile_create(user=request.user, **fields)
        return Response(ProfileSerializer(profile).data, status=status.HTTP_201_CREATED)


class ProfileDetailView(APIView):
    @extend_schema(
        operation_id="profiles_retrieve",
        tags=["profiles"],
        responses={200: ProfileSerializer, **READ_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        profile, _ = selectors.profile_get_for_user(user=request.user, pk=pk)
        return Response(ProfileSerializer(profile).data)

    @extend_schema(
        operation_id="profiles_update",
        tags=["profiles"],
        summary="Change a profile; saved estimates keep their own snapshot",
        request=ProfileWriteSerializer(partial=True),
        examples=[
            OpenApiExample(
                "Rename it and share it with the link",
                value={"name": "Our 7B, v2", "visibility": "link"},
            )
        ],
        responses={200: ProfileSerializer, **WRITE_ERRORS},
    )
    def patch(self, request: Request, pk: int) -> Response:
        profile = _profile_for_write(request, pk)
        serializer = ProfileWriteSerializer(
            data=_body_object(request), partial=True, context={"request": request}
        )
        serializer.is_valid(raise_exception=True)
        profile = services.profile_update(
            user=request.user, profile=profile, **_profile_fields(serializer.validated_data)
        )
        return Response(ProfileSerializer(profile).data)

    @extend_schema(
        operation_id="profiles_destroy",
        tags=["profiles"],
        responses={204: None, **error_responses(401, 403, 404, 429)},
    )
    def delete(self, request: Request, pk: int) -> Response:
        services.profile_delete(user=request.user, profile=_profile_for_write(request, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Estimates ----------------------------------------------------------------------------

SHARING_FIELDS = ("title", "notes", "visibility", "team")


class EstimateListView(generics.ListAPIView):
    serializer_class = EstimateSerializer
    filterset_class = EstimateFilter

    def get_queryset(self) -> QuerySet[Estimate]:
        return selectors.estimate_list(user=self.request.user)

    @extend_schema(
        operation_id="estimates_list",
        tags=["estimates"],
        summary="Your estimates and those shared with your teams, newest first",
        responses={200: EstimateSerializer(many=True), **error_responses(400, 401, 404, 429)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="estimates_create",
        tags=["estimates"],
        summary="Calculate and save in one call",
        request=EstimateCreateSerializer,
        examples=ESTIMATE_EXAMPLES,
        responses={201: EstimateDetailSerializer, **error_responses(400, 401, 413, 429)},
    )
    def post(self, request: Request) -> Response:
        payload = _body_object(request)
        sharing = EstimateSharingSerializer(
            data={key: payload.pop(key) for key in SHARING_FIELDS if key in payload},
            context={"request": request},
        )
        sharing.is_valid(raise_exception=True)
        calculation = calculation_run(user=request.user, payload=payload)
        estimate = services.estimate_save(
            user=request.user, calculation=calculation, **sharing.validated_data
        )
        return Response(
            EstimateDetailSerializer(estimate, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )


class EstimateDetailView(APIView):
    @extend_schema(
        operation_id="estimates_retrieve",
        tags=["estimates"],
        responses={200: EstimateDetailSerializer, **READ_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        estimate, _ = selectors.estimate_get_for_user(user=request.user, pk=pk)
        return Response(EstimateDetailSerializer(estimate, context={"request": request}).data)

    @extend_schema(
        operation_id="estimates_update",
        tags=["estimates"],
        summary="Change the title, notes or sharing; inputs and result never change",
        request=EstimateSharingSerializer,
        examples=SHARING_EXAMPLES,
        responses={200: EstimateDetailSerializer, **WRITE_ERRORS},
    )
    def patch(self, request: Request, pk: int) -> Response:
        estimate = self._for_write(request, pk)
        sharing = EstimateSharingSerializer(
            data=_body_object(request), partial=True, context={"request": request}
        )
        sharing.is_valid(raise_exception=True)
        estimate = services.estimate_update(
            user=request.user, estimate=estimate, **sharing.validated_data
        )
        return Response(EstimateDetailSerializer(estimate, context={"request": request}).data)

    @extend_schema(
        operation_id="estimates_destroy",
        tags=["estimates"],
        responses={204: None, **error_responses(401, 403, 404, 429)},
    )
    def delete(self, request: Request, pk: int) -> Response:
        services.estimate_delete(user=request.user, estimate=self._for_write(request, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @staticmethod
    def _for_write(request: Request, pk: int) -> Estimate:
        estimate, access = selectors.estimate_get_for_user(user=request.user, pk=pk)
        if not access.can_write:
            raise Forbidden("estimate")  # readable, so whether it exists is no secret
        return estimate


class EstimateByPublicIdView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="estimates_retrieve_by_public_id",
        tags=["estimates"],
        summary="An estimate by its permalink id (link items are readable by anyone)",
        responses={200: EstimateDetailSerializer, **READ_ERRORS},
    )
    def get(self, request: Request, public_id: str) -> Response:
        estimate, _ = selectors.estimate_get_for_user(user=request.user, public_id=public_id)
        return Response(EstimateDetailSerializer(estimate, context={"request": request}).data)


# --- Catalogs -----------------------------------------------------------------------------


class CatalogModelListView(generics.ListAPIView):
    permission_classes = [AllowAny]
    serializer_class = CatalogModelSerializer
    filterset_class = CatalogModelFilter

    def get_queryset(self) -> QuerySet[ModelProfile]:
        return selectors.catalog_list().order_by("name", "id")

    @extend_schema(
        operation_id="catalog_models_list",
        tags=["catalog"],
        responses={200: CatalogModelSerializer(many=True), **error_responses(400, 401, 404, 429)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class CatalogModelBySlugView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="catalog_models_retrieve_by_slug",
        tags=["catalog"],
        summary="A catalog model by its Hugging Face repo id, e.g. meta-llama/Llama-3.1-8B",
        responses={200: CatalogModelSerializer, **READ_ERRORS},
    )
    def get(self, request: Request, slug: str) -> Response:
        return Response(CatalogModelSerializer(selectors.catalog_get(slug=slug)).data)


class GpuListView(generics.ListAPIView):
    permission_classes = [AllowAny]
    serializer_class = GpuSerializer
    queryset = Gpu.objects.all()

    @extend_schema(
        operation_id="gpus_list",
        tags=["gpus"],
        responses={200: GpuSerializer(many=True), **error_responses(401, 404, 429)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class GpuDetailView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="gpus_retrieve",
        tags=["gpus"],
        responses={200: GpuSerializer, **READ_ERRORS},
    )
    def get(self, request: Request, slug: str) -> Response:
        return Response(GpuSerializer(get_object_or_404(Gpu.objects.all(), slug=slug)).data)


# --- Teams --------------------------------------------------------------------------------


def _teams_with_my_role(request: Request) -> QuerySet[Team]:
    if not request.user.is_authenticated:
        return Team.objects.none()
    my_role = Membership.objects.filter(team=OuterRef("pk"), user=request.user).values("role")
    return (
        selectors.team_list(user=request.user)
        .annotate(my_role=Subquery(my_role[:1]))
        .prefetch_related("memberships__user")
        .order_by("name", "id")
    )


class TeamListView(generics.ListAPIView):
    serializer_class = TeamSerializer

    def get_queryset(self) -> QuerySet[Team]:
        return _teams_with_my_role(self.request)

    @extend_schema(
        operation_id="teams_list",
        tags=["teams"],
        summary="Your teams and their members",
        responses={200: TeamSerializer(many=True), **error_responses(401, 404, 429)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class TeamDetailView(APIView):
    @extend_schema(
        operation_id="teams_retrieve",
        tags=["teams"],
        responses={200: TeamSerializer, **READ_ERRORS},
    )
    def get(self, request: Request, slug: str) -> Response:
        team = get_object_or_404(_teams_with_my_role(request), slug=slug)
        return Response(TeamSerializer(team).data)


@csrf_exempt  # changes nothing; a CSRF failure would answer an HTML 403 instead of this 404
def not_found(request: HttpRequest, path: str) -> JsonResponse:
    """Any other path under /api/v1/: JSON like the API's own 404s, not the site's HTML page."""
    return JsonResponse({"detail": "Not found."}, status=404)
