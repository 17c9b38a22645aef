"""Team, Membership, TeamInvitation, ModelProfile, Estimate and the Gpu catalog (docs/design.md)."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.urls import reverse
from knox.models import AbstractAuthToken


class Visibility(models.TextChoices):
    PRIVATE = "private", "Private (only me)"
    TEAM = "team", "Team"
    LINK = "link", "Anyone with the link"


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    MEMBER = "member", "Member"


class Team(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=120, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="teams"
    )
    # Who created the team: one person's teams have distinct names (case aside), so that each
    # dropdown of teams tells them apart. Null for teams made before it was kept.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                "created_by",
                name="team_unique_name_per_creator",
                violation_error_message="You already created a team with this name.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("team-detail", args=[self.slug])


class Membership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="membership_unique_user"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_valid_role"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class TeamInvitation(models.Model):
    """A team owner's invitation, pending until the invitee accepts (a membership) or declines
    it; it shares nothing. `address` is what the owner typed: their team page lists invitations
    by it, the same whether it named someone (`invitee`) or no one, so inviting tells nobody
    which usernames and emails exist."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    address = models.CharField(max_length=254)
    invitee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="team_invitations",
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "pk"]
        indexes = [models.Index(fields=["invitee", "created"], name="invitation_invitee")]
        constraints = [
            models.UniqueConstraint(
                "team", Lower("address"), name="invitation_unique_address_per_team"
            ),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="invitation_valid_role"),
        ]

    def __str__(self) -> str:
        return f"{self.address} to {self.team} ({self.role})"


class ProfileSource(models.TextChoices):
    MANUAL = "manual", "Typed in"
    CONFIG = "config", "config.json"
    CATALOG = "catalog", "Catalog"
    HUB = "hub", "Hugging Face Hub"


class ModelProfile(models.Model):
    """A saved architecture. Catalog profiles have no owner and are read-only for everyone."""

    name = models.CharField(max_length=200)
    slug = models.CharField(
        max_length=200, blank=True, help_text="Hugging Face repo id (catalog models)."
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="profiles",
    )
    team = models.ForeignKey(
        Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="profiles"
    )
    visibility = models.CharField(
        max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    source = models.CharField(
        max_length=10, choices=ProfileSource.choices, default=ProfileSource.MANUAL
    )
    family = models.CharField(max_length=50, blank=True)
    description = models.TextField(blank=True)
    # Exactly one of hf_config / architecture is set: what the engine is given as "model".
    hf_config = models.JSONField(null=True, blank=True)
    architecture = models.JSONField(null=True, blank=True)
    config_json_text = models.TextField(
        blank=True, help_text="The imported config.json, kept verbatim."
    )
    # Imported from the Hub: the repo, the commit it was read at, and what its safetensors
    # headers hold (calculator/hub.py): the evidence beside the config.json it keeps.
    hub_repo_id = models.CharField(max_length=200, blank=True)
    hub_revision = models.CharField(max_length=64, blank=True, help_text="The commit sha.")
    hub_facts = models.JSONField(null=True, blank=True)
    num_parameters = models.BigIntegerField(default=0)
    num_active_parameters = models.BigIntegerField(default=0)
    published_parameters = models.BigIntegerField(null=True, blank=True)
    public_id = models.CharField(max_length=32, unique=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["owner", "name"], name="profile_owner_name"),
            models.Index(fields=["team", "name"], name="profile_team_name"),
            models.Index(fields=["source", "name"], name="profile_source_name"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(visibility__in=Visibility.values), name="profile_valid_visibility"
            ),
            models.CheckConstraint(
                condition=Q(source__in=ProfileSource.values), name="profile_valid_source"
            ),
            models.CheckConstraint(
                condition=Q(num_parameters__gte=0) & Q(num_active_parameters__gte=0),
                name="profile_nonnegative_parameters",
            ),
            models.CheckConstraint(
                condition=Q(source=ProfileSource.CATALOG, owner__isnull=True)
                | (~Q(source=ProfileSource.CATALOG) & Q(owner__isnull=False)),
                name="profile_catalog_has_no_owner",
            ),
            models.CheckConstraint(
                condition=Q(hf_config__isnull=True) ^ Q(architecture__isnull=True),
                name="profile_one_model_source",
            ),
            models.CheckConstraint(
                condition=~Q(visibility=Visibility.TEAM) | Q(team__isnull=False),
                name="profile_team_visibility_needs_team",
            ),
            models.UniqueConstraint(
                fields=["slug"],
                condition=Q(source=ProfileSource.CATALOG),
                name="profile_unique_catalog_slug",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if not self.public_id:
            self.public_id = new_public_id()
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("profile-detail", args=[self.public_id])

    @property
    def is_catalog(self) -> bool:
        return self.source == ProfileSource.CATALOG

    def engine_model(self) -> dict:
        """The contract's `model` value that the engine understands."""
        if self.hf_config is not None:
            return {"hf_config": self.hf_config}
        return {"architecture": self.architecture}


def new_public_id() -> str:
    # 96 random bits, URL-safe: unguessable, and short enough to read aloud.
    return secrets.token_urlsafe(12)


class Estimate(models.Model):
    """One saved calculation: immutable evidence of inputs, architecture snapshot and result."""

    public_id = models.CharField(max_length=32, unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="estimates"
    )
    team = models.ForeignKey(
        Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="estimates"
    )
    visibility = models.CharField(
        max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    profile = models.ForeignKey(
        ModelProfile,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="estimates",
    )
    model_name = models.CharField(max_length=200, help_text="The model's name when saved.")
    title = models.CharField(max_length=200, blank=True)
    notes = models.TextField(blank=True)
    mode = models.CharField(max_length=20)
    method = models.CharField(max_length=20)
    inputs = models.JSONField()
    architecture = models.JSONField(help_text="The resolved model the engine used (snapshot).")
    result = models.JSONField()
    total_bytes = models.BigIntegerField()
    num_gpus = models.PositiveIntegerField(default=1)
    engine_version = models.CharField(max_length=40)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["owner", "-created"], name="estimate_owner_created"),
            models.Index(fields=["team", "-created"], name="estimate_team_created"),
            models.Index(fields=["profile", "-created"], name="estimate_profile_created"),
            models.Index(fields=["mode", "-created"], name="estimate_mode_created"),
            # History: counts, filters and sorts of what a user may see, from this index alone
            # (index-only scans on PostgreSQL); the 25 rows of a page are then fetched by id.
            models.Index(
                fields=["owner", "team", "visibility"],
                include=["id", "created", "total_bytes", "mode", "method", "profile", "title"],
                name="estimate_listed_covering",
            ),
            # History: a team's team items newest first, one index range per team of the user
            # (calculator/history_queries.py's ListedIds), the owner included to leave out the
            # user's own and the size for "largest first" without reading the table (PostgreSQL;
            # SQLite ignores `include`).
            models.Index(
                fields=["team", "-created", "-id"],
                include=["owner", "total_bytes"],
                condition=Q(visibility=Visibility.TEAM),
                name="estimate_history_team",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(visibility__in=Visibility.values), name="estimate_valid_visibility"
            ),
            models.CheckConstraint(
                condition=Q(total_bytes__gte=0), name="estimate_nonnegative_total"
            ),
            models.CheckConstraint(
                condition=Q(mode__in=["inference", "training", "serving"]),
                name="estimate_valid_mode",
            ),
            models.CheckConstraint(
                condition=Q(method__in=["detailed", "standard"]), name="estimate_valid_method"
            ),
            models.CheckConstraint(
                condition=~Q(visibility=Visibility.TEAM) | Q(team__isnull=False),
                name="estimate_team_visibility_needs_team",
            ),
        ]

    def __str__(self) -> str:
        return self.title or f"{self.model_name} ({self.mode})"

    def save(self, *args, **kwargs) -> None:
        if not self.public_id:
            self.public_id = new_public_id()
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("estimate-permalink", args=[self.public_id])


class Gpu(models.Model):
    """An accelerator in the catalog; figures and prices are editable in the admin."""

    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=100)
    vendor = models.CharField(max_length=40)
    memory_bytes = models.BigIntegerField()
    memory_bandwidth_bytes_per_s = models.BigIntegerField()
    bf16_dense_tflops = models.FloatField()
    price_per_hour_usd = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Indicative on-demand price; empty where no public hourly price exists.",
    )
    sources = models.JSONField(default=dict, blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-memory_bytes", "name"]
        verbose_name = "GPU"
        constraints = [
            models.CheckConstraint(
                condition=Q(memory_bytes__gt=0)
                & Q(memory_bandwidth_bytes_per_s__gt=0)
                & Q(bf16_dense_tflops__gt=0)
                & (Q(price_per_hour_usd__isnull=True) | Q(price_per_hour_usd__gte=0)),
                name="gpu_positive_figures",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ApiToken(AbstractAuthToken):
    """A named API token (django-rest-knox): only its SHA-512 digest is stored, the token itself
    is shown once; deleting the row revokes it."""

    name = models.CharField(max_length=100)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.token_key}…)"


class HubToken(models.Model):
    """A user's own Hugging Face token, encrypted (calculator/hub.py); never shown again."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="hub_token"
    )
    encrypted = models.TextField()
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Hugging Face token of {self.user}"


class RunSource(models.TextChoices):
    VLLM = "vllm", "vLLM start-up log"
    SGLANG = "sglang", "SGLang start-up log"
    LLAMACPP = "llamacpp", "llama.cpp load log"
    TORCH = "torch", "torch.cuda.memory_summary() / max_memory_allocated()"
    NVIDIA_SMI = "nvidia_smi", "nvidia-smi --query-gpu=memory.used --format=csv"
    MANUAL = "manual", "Typed figures"


class MeasuredRun(models.Model):
    """What a real run of a saved estimate used, per GPU, read from its log (calculator/evidence.py)
    or typed: immutable evidence beside the estimate, like the estimate itself. A line the log
    does not print is null. Only those who may write the estimate attach one; whoever may read
    the estimate sees its runs; only the run's owner deletes it."""

    estimate = models.ForeignKey(Estimate, on_delete=models.CASCADE, related_name="runs")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="measured_runs"
    )
    created = models.DateTimeField(auto_now_add=True)
    source_format = models.CharField(max_length=20, choices=RunSource.choices)
    gpu_name = models.CharField(max_length=200, blank=True)
    driver_version = models.CharField(max_length=64, blank=True)
    cuda_version = models.CharField(max_length=64, blank=True)
    framework_version = models.CharField(max_length=100, blank=True)
    weights_bytes = models.BigIntegerField(null=True, blank=True)
    kv_cache_bytes = models.BigIntegerField(null=True, blank=True)
    activations_bytes = models.BigIntegerField(null=True, blank=True)
    # vLLM's non_torch_memory (NCCL, the CUDA context's growth); the estimate's runtime_overhead
    non_torch_bytes = models.BigIntegerField(null=True, blank=True)
    total_bytes = models.BigIntegerField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True, help_text="Other figures the log gave.")
    parser_notes = models.JSONField(default=list, blank=True)
    note = models.TextField(blank=True)
    raw_text = models.TextField(blank=True, help_text="The pasted or uploaded log, 64 KiB at most.")

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["estimate", "-created"], name="run_estimate_created")]
        constraints = [
            models.CheckConstraint(
                condition=Q(source_format__in=RunSource.values), name="run_valid_source_format"
            ),
            models.CheckConstraint(
                condition=Q(total_bytes__isnull=True) | Q(total_bytes__gte=0),
                name="run_nonnegative_total",
            ),
            models.CheckConstraint(
                condition=Q(weights_bytes__isnull=False)
                | Q(kv_cache_bytes__isnull=False)
                | Q(activations_bytes__isnull=False)
                | Q(non_torch_bytes__isnull=False)
                | Q(total_bytes__isnull=False),
                name="run_measures_something",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_source_format_display()} run of {self.estimate}"

    def measured(self) -> dict[str, int | None]:
        return {
            "weights": self.weights_bytes,
            "kv_cache": self.kv_cache_bytes,
            "activations": self.activations_bytes,
            "non_torch": self.non_torch_bytes,
            "total": self.total_bytes,
        }
