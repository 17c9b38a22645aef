from __future__ import annotations

from django.contrib import admin

from calculator.models import Estimate, Gpu, Membership, ModelProfile, Team, TeamInvitation


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["team", "user", "role", "created"]
    list_filter = ["role", "team"]
    search_fields = ["team__name", "user__username"]
    autocomplete_fields = ["team", "user"]


@admin.register(TeamInvitation)
class TeamInvitationAdmin(admin.ModelAdmin):
    list_display = ["team", "address", "invitee", "role", "invited_by", "created"]
    search_fields = ["team__name", "address", "invitee__username"]
    autocomplete_fields = ["team", "invitee", "invited_by"]


@admin.register(ModelProfile)
class ModelProfileAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "family", "source", "owner", "visibility", "num_parameters"]
    list_filter = ["source", "visibility", "family"]
    search_fields = ["name", "slug", "family", "owner__username"]
    readonly_fields = ["public_id", "created", "updated"]
    autocomplete_fields = ["owner", "team"]


@admin.register(Estimate)
class EstimateAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "mode", "method", "total_bytes", "visibility", "created"]
    list_filter = ["mode", "method", "visibility"]
    search_fields = ["title", "model_name", "public_id", "owner__username"]
    autocomplete_fields = ["owner", "team", "profile"]
    # A saved estimate is immutable evidence: its inputs and result are shown, not edited.
    readonly_fields = [
        "public_id",
        "mode",
        "method",
        "inputs",
        "architecture",
        "result",
        "total_bytes",
        "num_gpus",
        "engine_version",
        "created",
        "updated",
    ]


@admin.register(Gpu)
class GpuAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "vendor",
        "memory_bytes",
        "memory_bandwidth_bytes_per_s",
        "bf16_dense_tflops",
        "price_per_hour_usd",
    ]
    list_editable = ["price_per_hour_usd"]
    list_filter = ["vendor"]
    search_fields = ["name", "slug", "vendor"]
