"""The catalogs' shapes in the API: the built-in models and the GPUs."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from calculator.api.serializers import ArchitectureField, HfConfigField
from calculator.models import Gpu, ModelProfile


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
