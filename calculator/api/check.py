"""POST /api/v1/check: the pre-flight check (calculator/domain/preflight.py) for job schedulers."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from calculator.api.schema import error_responses
from calculator.api.serializers import CalculateRequestSerializer, CalculateResponseSerializer
from calculator.api.views import without_nul_characters
from calculator.domain.preflight import preflight


class CheckResponseSerializer(serializers.Serializer):
    # "pass" is a Python keyword: declared through the fields dict below
    reason = serializers.CharField()
    confidence = serializers.ChoiceField(choices=["fits", "may_not_fit", "does_not_fit"])
    gpu = serializers.CharField()
    gpu_count = serializers.IntegerField()
    per_gpu_bytes = serializers.IntegerField(allow_null=True)
    per_gpu_high_bytes = serializers.IntegerField(allow_null=True)
    usable_bytes = serializers.IntegerField()
    plan = CalculateResponseSerializer()

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        return {
            "pass": serializers.BooleanField(
                help_text="true only when the top of the band fits (and a serving engine starts)."
            ),
            **fields,
        }


class CheckView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="check",
        tags=["calculate"],
        summary="Pre-flight: pass or fail for a workload on a GPU set, across the error band",
        request=CalculateRequestSerializer,
        responses={200: CheckResponseSerializer, **error_responses(400, 401, 413, 429)},
        examples=[
            OpenApiExample(
                "Will this QLoRA job fit one L4?",
                value={
                    "model": {"catalog": "meta-llama/Llama-3.1-8B"},
                    "mode": "training",
                    "finetuning": "qlora",
                    "weight_dtype": "nf4",
                    "batch_size": 2,
                    "sequence_length": 2048,
                    "gpu": "l4",
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        return Response(preflight(user=request.user, payload=without_nul_characters(request.data)))
