"""The calculator form: the estimate contract as query-string fields.

The query string uses the contract's names (batch_size, sequence_length, weight_dtype, ...).
The model is given as `catalog=<slug>`, `profile=<id>`, `hf_config=<config.json text>` or the
architecture fields by their contract names (`hidden_size=4096&num_layers=32&...`); the radio
`model` says which of them to use, and is inferred when a link leaves it out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, TypedDict

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict

from calculator.domain import hub
from calculator.domain.calculations import gpu_catalog
from calculator.domain.selectors import User, catalog_list, profile_list
from calculator.domain.services import parse_config_json
from calculator.engine import (
    ALL_LINEAR,
    DEFAULTS,
    HARDWARE_FIELDS,
    EstimateError,
)
from calculator.engine.architecture import ARCHITECTURE_FIELDS as ENGINE_ARCHITECTURE_FIELDS
from calculator.engine.architecture import LIMITS as ARCHITECTURE_LIMITS
from calculator.engine.architecture import MODEL_DTYPES
from calculator.engine.contract import DTYPE_LABELS, fields_of
from calculator.engine.serving import SERVING_FIELDS
from calculator.presenters.charts import in_unit
from calculator.web.forms.contract import (
    ChoiceField,
    RadioSelect,
    Select,
    TypedChoiceField,
    _number,
    contract_form_fields,
)
from calculator.web.querystring import encode_architecture, encode_fields, query_value
from calculator.web.typed import form_field

DEFAULT_CATALOG_SLUG = "meta-llama/Llama-3.1-8B"

MODEL_KINDS = {
    "catalog": "Catalog",
    "hub": "Hugging Face id",
    "hf_config": "Paste config.json",
    "architecture": "By hand",
    "profile": "My profiles",
}
ARCHITECTURE_FLAGS = ("tie_word_embeddings", "gated_mlp", "default_dtype")
# Contract fields the form does not offer: the names (the page shows the model's own) and two
# the engine takes only with a config.json or through the API.
ARCHITECTURE_NOT_OFFERED = (
    "model_type",
    "family",
    "shared_expert_intermediate_size",
    "max_position_embeddings",
)
# The architecture fields of the contract that the form offers as numbers, in the engine's
# order (the first eight are the dense shape, the rest MoE, MLA and sliding window).
ARCHITECTURE_FIELDS = tuple(
    name
    for name in ENGINE_ARCHITECTURE_FIELDS
    if name not in ARCHITECTURE_FLAGS and name not in ARCHITECTURE_NOT_OFFERED
)
TRAINING_FIELDS = fields_of("training")
# issue 15's measurement fields, offered in inference and training alike
VIEW_FIELDS = fields_of("view")
HUB_FIELDS = ("hub", "revision")
# choices sent only when chosen (blank: the engine's default)
CHOSEN_FIELDS = (*VIEW_FIELDS, "sharding", "offload")
# the layout's sizes, always sent: the contract's parallel group less the chosen ones
PARALLEL_FIELDS = tuple(name for name in fields_of("parallel") if name not in CHOSEN_FIELDS)
# a vision-language request's images (left out when none: a text model takes no image fields)
IMAGE_FIELDS = ("images_per_request", "image_height", "image_width")
UNITS = {"GiB": "GiB (1024³ bytes)", "GB": "GB (10⁹ bytes)"}

ARCHITECTURE_LABELS = {
    "num_parameters": "Parameters",
    "hidden_size": "Hidden size",
    "num_layers": "Layers",
    "num_attention_heads": "Attention heads",
    "num_key_value_heads": "Key/value heads",
    "head_dim": "Head dim",
    "intermediate_size": "MLP intermediate size",
    "vocab_size": "Vocabulary size",
    "num_experts": "Experts",
    "num_experts_per_token": "Experts per token",
    "num_shared_experts": "Shared experts",
    "moe_intermediate_size": "Expert intermediate size",
    "num_dense_layers": "Dense layers",
    "q_lora_rank": "MLA query LoRA rank",
    "kv_lora_rank": "MLA key/value LoRA rank",
    "qk_rope_head_dim": "MLA rope head dim",
    "qk_nope_head_dim": "MLA no-rope head dim",
    "v_head_dim": "MLA value head dim",
    "sliding_window": "Sliding window (tokens)",
    "num_sliding_window_layers": "Sliding-window layers",
}
ARCHITECTURE_HELP = {
    "num_parameters": "Leave blank to count them from the shape (needs the MLP and vocabulary).",
    "num_key_value_heads": "Blank: as many as attention heads (no GQA).",
    "head_dim": "Blank: hidden size / attention heads.",
}


def _choices(values: tuple[str, ...], labels: Mapping[str, str]) -> list[tuple[str, str]]:
    return [(value, labels.get(value, value)) for value in values]


class _Limits(TypedDict):
    min_value: int
    max_value: int


def _limits(name: str, table: Mapping[str, tuple[int, int]]) -> _Limits:
    low, high = table[name]
    return {"min_value": low, "max_value": high}


PROFILE_NEEDS_LOGIN = (
    "This link uses a saved profile, and saved profiles are for signed-in users: log in to use it."
)


# The contract's fields, generated from its rows (calculator/engine/contract.py)
if TYPE_CHECKING:
    ContractFieldsForm = forms.Form
else:
    ContractFieldsForm = type("ContractFieldsForm", (forms.Form,), contract_form_fields())


class CalculatorForm(ContractFieldsForm):
    # --- Model ---------------------------------------------------------------------------------
    model = ChoiceField(
        label="Model from",
        choices=list(MODEL_KINDS.items()),
        widget=RadioSelect,
        required=False,
    )
    # Plain fields with a select: the slug or id is checked when the model is resolved, so a
    # stale value in a panel that is not in use never blocks the calculation.
    catalog_search = forms.CharField(
        label="Search the catalog",
        required=False,
        max_length=100,
        help_text="Name, Hugging Face id or family, e.g. qwen3, 70B, gemma.",
    )
    catalog = forms.CharField(
        label="Catalog model",
        required=False,
        max_length=200,
        widget=Select,
        help_text="Popular open models; parameter counts match transformers exactly.",
    )
    profile = forms.IntegerField(label="Saved profile", required=False, widget=Select)
    hub = forms.CharField(
        label="Hugging Face model id",
        required=False,
        max_length=200,
        widget=forms.TextInput(
            attrs={"placeholder": "Qwen/Qwen3-8B", "spellcheck": "false", "autocapitalize": "off"}
        ),
        help_text="Any model on the Hub: its config.json and safetensors headers are read.",
    )
    revision = forms.CharField(
        label="Revision",
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"placeholder": "main", "spellcheck": "false"}),
        help_text="A branch, tag or commit. Blank: main.",
    )
    hf_config = forms.CharField(
        label="config.json",
        required=False,
        max_length=200_000,
        widget=forms.Textarea(attrs={"rows": 8, "class": "code", "spellcheck": "false"}),
        help_text="Paste the model's config.json from its Hugging Face repository.",
    )
    tie_word_embeddings = forms.BooleanField(
        label="Tied input and output embeddings", required=False
    )
    gated_mlp = TypedChoiceField(
        widget=Select,
        label="MLP",
        choices=[("", "Gated (SwiGLU, GeGLU)"), ("no", "Plain (up and down)")],
        coerce=lambda value: value != "no",
        empty_value=None,
        required=False,
    )
    default_dtype = ChoiceField(
        label="Stored in",
        choices=[("", "bfloat16 (default)"), *_choices(MODEL_DTYPES, DTYPE_LABELS)],
        required=False,
    )

    # --- Display -------------------------------------------------------------------------------
    unit = ChoiceField(
        label="Units", choices=list(UNITS.items()), widget=RadioSelect, required=False
    )

    def __init__(
        self,
        data: Mapping[str, Any],
        *,
        user: User | None = None,
        team_ids: list[int] | None = None,
    ) -> None:
        """`team_ids`: the user's, where the caller read them already (`profile_list`)."""
        super().__init__(data, label_suffix="")
        self.user = user
        # A link to a saved profile opened by a visitor: the page asks them to log in.
        self.profile_needs_login = False
        # Queried only when the select is rendered: the htmx results fragment never shows it.
        self.fields["catalog"].widget.choices = partial(
            catalog_choices,
            # a raw query value: PostgreSQL compares no text holding a NUL
            search=str(data.get("catalog_search") or "").replace("\x00", "").strip(),
            current=str(data.get("catalog") or ""),
        )
        profiles = list(
            profile_list(user=user, include_catalog=False, team_ids=team_ids).values_list(
                "pk", "name"
            )
        )
        self.fields["profile"].widget.choices = [("", "Choose a profile"), *profiles]
        self.has_profiles = bool(profiles)
        self.hub_enabled = hub.enabled()
        if not self.hub_enabled:
            form_field(self, "model", forms.ChoiceField).choices = [
                choice for choice in MODEL_KINDS.items() if choice[0] != "hub"
            ]
        form_field(self, "gpu", forms.ChoiceField).choices = [
            ("", "None"),
            *(
                (gpu["slug"], f"{gpu['name']} ({in_unit(gpu['memory_bytes'], 'GiB')})")
                for gpu in gpu_catalog()
            ),
        ]
        for name in ARCHITECTURE_FIELDS:
            self.fields[name] = forms.IntegerField(
                label=ARCHITECTURE_LABELS[name],
                required=False,
                widget=_number(),
                help_text=ARCHITECTURE_HELP.get(name, ""),
                **_limits(name, ARCHITECTURE_LIMITS),
            )

    @property
    def architecture_basic_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in ARCHITECTURE_FIELDS[:8]]

    @property
    def architecture_advanced_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in ARCHITECTURE_FIELDS[8:]]

    @classmethod
    def from_query(
        cls, query: QueryDict, *, user: User | None = None, team_ids: list[int] | None = None
    ) -> CalculatorForm:
        """Bind to a query string, filling the contract's defaults for what it leaves out."""
        data = query.copy()
        data.setdefault("catalog", DEFAULT_CATALOG_SLUG)
        # One GPU count: links from before it said gpu_count for the GPUs section
        if "num_gpus" not in data and (gpu_count := data.get("gpu_count")):
            data["num_gpus"] = gpu_count
        data.setdefault("gpu", default_gpu())
        for name, value in form_defaults().items():
            if name not in data:
                data[name] = value
        if "model" not in data or not data["model"]:
            data["model"] = infer_model_kind(data)
        return cls(data, user=user, team_ids=team_ids)

    def clean_hf_config(self) -> dict[str, Any] | None:
        text = self.cleaned_data["hf_config"].strip()
        if not text:
            return None
        try:
            return parse_config_json(text)
        except ValidationError as error:
            raise forms.ValidationError(error.message_dict["config_json"]) from None

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if self.data.get("model") == "hub" and not self.hub_enabled:
            self.errors.pop("model", None)
            self.add_error(None, "Import from the Hugging Face Hub is turned off on this server.")
            cleaned["model"] = "hub"
        kind = cleaned.get("model") or "catalog"
        cleaned["model"] = kind
        if kind == "profile" and not (self.user is not None and self.user.is_authenticated):
            # Saved profiles are their owners' and teams': say so, not "no such profile".
            self.errors.pop("profile", None)
            self.add_error(None, PROFILE_NEEDS_LOGIN)
            self.profile_needs_login = True
            return cleaned
        # Fields of the panels not in use (another model source, training in inference mode)
        # do not count: a stale value there must not block the calculation.
        unused = [name for name in self.fields if name not in self.used_fields(cleaned)]
        for name in unused:
            self.errors.pop(name, None)
            cleaned.pop(name, None)
        missing = {
            "catalog": "Choose a model from the catalog.",
            "profile": "Choose one of your profiles.",
            "hf_config": "Paste a config.json.",
            "hub": "Type a Hugging Face model id, such as Qwen/Qwen3-8B.",
        }
        if kind in missing and cleaned.get(kind) in (None, "") and kind not in self.errors:
            self.add_error(kind, missing[kind])
        return cleaned

    def used_fields(self, cleaned: Mapping[str, Any]) -> set[str]:
        """The fields that the chosen model source and mode read."""
        architecture = {*ARCHITECTURE_FIELDS, *ARCHITECTURE_FLAGS}
        kind = cleaned.get("model") or "catalog"
        used = set(self.fields) - architecture - {"catalog", "profile", "hf_config", *HUB_FIELDS}
        used |= architecture if kind == "architecture" else {kind}
        if kind == "hub":
            used |= set(HUB_FIELDS)
        if cleaned.get("mode") != "training":
            used -= set(TRAINING_FIELDS)
        if cleaned.get("mode") != "serving":
            used -= set(SERVING_FIELDS)
        if not cleaned.get("gpu"):
            used -= set(HARDWARE_FIELDS)
        return used

    def contract_model(self) -> dict[str, Any]:
        cleaned = self.cleaned_data
        kind = cleaned["model"]
        if kind == "catalog":
            return {"catalog": cleaned["catalog"]}
        if kind == "profile":
            return {"profile": cleaned["profile"]}
        if kind == "hf_config":
            return {"hf_config": cleaned["hf_config"]}
        if kind == "hub":
            revision = cleaned.get("revision", "").strip()
            return {"hub": cleaned["hub"].strip(), **({"revision": revision} if revision else {})}
        fields: dict[str, Any] = {
            name: cleaned[name] for name in ARCHITECTURE_FIELDS if cleaned.get(name) is not None
        }
        if cleaned.get("tie_word_embeddings"):
            fields["tie_word_embeddings"] = True
        if cleaned.get("gated_mlp") is False:
            fields["gated_mlp"] = False
        if cleaned.get("default_dtype"):
            fields["default_dtype"] = cleaned["default_dtype"]
        return {"architecture": fields}

    def payload(self) -> dict[str, Any]:
        """The contract request for the engine; only a valid form has one."""
        cleaned = self.cleaned_data
        payload: dict[str, Any] = {
            "model": self.contract_model(),
            "mode": cleaned["mode"],
            "method": cleaned["method"],
            "batch_size": cleaned["batch_size"],
            "sequence_length": cleaned["sequence_length"],
            "attention_implementation": cleaned["attention_implementation"],
        }
        for name in ("weight_dtype", "kv_cache_dtype"):
            if cleaned.get(name):
                payload[name] = cleaned[name]
        if cleaned.get("runtime_overhead_bytes") is not None:
            payload["runtime_overhead_bytes"] = cleaned["runtime_overhead_bytes"]
        for name in IMAGE_FIELDS:
            if cleaned.get(name):
                payload[name] = cleaned[name]
        if cleaned["mode"] == "training":
            percent = cleaned["trainable_percent"]
            payload.update(
                optimizer=cleaned["optimizer"],
                finetuning=cleaned["finetuning"],
                trainable_percent=int(percent) if percent.is_integer() else percent,
                lora_rank=cleaned["lora_rank"],
                lora_target_modules=cleaned["lora_target_modules"] or ALL_LINEAR,
                mixed_precision=cleaned["mixed_precision"],
                gradient_checkpointing=cleaned["gradient_checkpointing"],
                bnb_4bit_saves_inputs=cleaned["bnb_4bit_saves_inputs"],
                lora_dropout=cleaned["lora_dropout"],
                recompute_core_attention=cleaned["recompute_core_attention"],
            )
            for name in (
                "gradient_accumulation_steps",
                "checkpoint_every_k_layers",
                "lora_adapter_dtype",
            ):
                if cleaned.get(name):
                    payload[name] = cleaned[name]
        for name in CHOSEN_FIELDS:
            if cleaned.get(name):
                payload[name] = cleaned[name]
        for name in PARALLEL_FIELDS:
            if cleaned.get(name) is not None:
                payload[name] = cleaned[name]
        if cleaned.get("gpu"):
            for name in HARDWARE_FIELDS:
                if cleaned.get(name) is not None:
                    payload[name] = cleaned[name]
        if cleaned["mode"] == "serving":
            for name in SERVING_FIELDS:
                if cleaned.get(name) not in (None, ""):
                    payload[name] = cleaned[name]
        return payload

    def canonical_query(self) -> str:
        """The shortest query string that gives this calculation: the model, the workload, and
        every other field that differs from its default. Used for hx-push-url."""
        cleaned = self.cleaned_data
        query = QueryDict(mutable=True)
        model = self.contract_model()
        kind, value = next(iter(model.items()))
        if kind == "hub":
            query.update(model)
        elif kind == "hf_config":
            query["hf_config"] = json.dumps(value, separators=(",", ":"))
        elif kind == "architecture":
            encode_architecture(query, value)
        else:
            query[kind] = str(value)
        for name in ("mode", "method", "batch_size", "sequence_length"):
            query[name] = query_value(cleaned[name])
        optional = ["weight_dtype", "kv_cache_dtype", "attention_implementation"]
        optional += list(TRAINING_FIELDS) if cleaned["mode"] == "training" else []
        optional += list(SERVING_FIELDS) if cleaned["mode"] == "serving" else []
        optional += [*CHOSEN_FIELDS, *PARALLEL_FIELDS, "runtime_overhead_bytes", *IMAGE_FIELDS]
        optional += (
            [name for name in HARDWARE_FIELDS if name != "gpu"] if cleaned.get("gpu") else []
        )
        # the page's GPU: left out when it is the default, empty when the user chose none
        if (cleaned.get("gpu") or "") != default_gpu():
            query["gpu"] = cleaned.get("gpu") or ""
        defaults = {**DEFAULTS, "lora_target_modules": []}
        if cleaned.get("num_gpus") == 1:
            # one GPU has one layout: tensor and pipeline parallel 1 are what blank gives
            defaults.update(tensor_parallel=1, pipeline_parallel=1)
        encode_fields(query, cleaned, optional, defaults=defaults)
        if cleaned.get("unit") and cleaned["unit"] != "GiB":
            query["unit"] = cleaned["unit"]
        return query.urlencode(safe="/")

    def add_estimate_error(self, error: EstimateError) -> None:
        """Put the engine's error on the form field it names, else on the whole form."""
        kind = self.cleaned_data.get("model")
        path = error.field.split(".")
        name: str | None = path[0]
        message = error.message
        if name == "model":
            if len(path) == 1:
                name = None
            elif path[1] in HUB_FIELDS:
                name = path[1]
            elif path[1] in ("catalog", "profile", "hf_config"):
                name = kind if kind in ("catalog", "profile", "hf_config") else path[1]
                if len(path) > 2:
                    message = f"{'.'.join(path[2:])}: {message}"
            elif path[1] == "architecture":
                field = path[2] if len(path) > 2 else ""
                name = field if field in self.fields else None
                if name is None and field:
                    message = f"{field}: {message}"
                if kind in ("catalog", "profile", "hf_config"):
                    name = kind
        elif name not in self.fields:
            message = f"{error.field}: {message}"
            name = None
        if name is not None and name not in self.fields:
            name = None
        self.add_error(name, message)


# The names people use for the families (config.json's model_type is what the engine reads)
FAMILY_NAMES = {
    "deepseek_v2": "DeepSeek-V2",
    "deepseek_v3": "DeepSeek-V3 / R1",
    "falcon": "Falcon",
    "gemma": "Gemma",
    "gemma2": "Gemma 2",
    "gemma3": "Gemma 3",
    "gemma3_text": "Gemma 3",
    "gpt2": "GPT-2",
    "gpt_bigcode": "StarCoder (GPT-BigCode)",
    "gpt_neox": "GPT-NeoX / Pythia",
    "gpt_oss": "gpt-oss",
    "jamba": "Jamba",
    "llama": "Llama",
    "mistral": "Mistral",
    "mixtral": "Mixtral",
    "olmo2": "OLMo 2",
    "phi": "Phi",
    "phi3": "Phi-3",
    "qwen2": "Qwen 2 / 2.5",
    "qwen2_moe": "Qwen MoE",
    "qwen3": "Qwen 3",
    "qwen3_moe": "Qwen 3 MoE",
    "qwen3_next": "Qwen3-Next",
    "starcoder2": "StarCoder 2",
}


def family_name(family: str) -> str:
    return FAMILY_NAMES.get(family, family or "Other")


def _matches(words: list[str], *texts: str) -> bool:
    # every word somewhere in the name, the id or the family (any order, any case)
    haystack = " ".join(texts).casefold()
    return all(word in haystack for word in words)


def catalog_choices(*, search: str, current: str) -> list[Any]:
    """The catalog grouped by family (as people name them) for a <select>, narrowed to the models
    whose name, id or family hold every word of `search`, in any order ("llama 8b"); the
    current choice always stays, so narrowing never changes it."""
    words = search.casefold().split()
    groups: dict[str, list[tuple[str, str]]] = {}
    for slug, name, family in (
        catalog_list().order_by("family", "name").values_list("slug", "name", "family")
    ):
        label = family_name(family)
        if words and slug != current and not _matches(words, name, slug, family, label):
            continue
        groups.setdefault(label, []).append((slug, name))
    choices: list[Any] = [("", "Choose a model"), *groups.items()]
    if search and not any(slug != current for options in groups.values() for slug, _ in options):
        choices.append(("", f"No other model matches “{search}”"))
    return choices


# The GPU the page opens with (the user can choose none): the most common accelerator of our
# users' deployments, when the catalog has it.
DEFAULT_GPU_SLUG = "h100-sxm"


def default_gpu() -> str:
    """DEFAULT_GPU_SLUG, or no GPU when the catalog lacks it (removed in the admin)."""
    slugs = {gpu["slug"] for gpu in gpu_catalog()}
    return DEFAULT_GPU_SLUG if DEFAULT_GPU_SLUG in slugs else ""


def form_defaults() -> dict[str, str]:
    """The values a bare URL starts from: the contract's defaults, as form strings."""
    defaults = {
        name: query_value(value)
        for name, value in DEFAULTS.items()
        if value is not None and not isinstance(value, bool) and name != "lora_target_modules"
    }
    defaults["unit"] = "GiB"
    return defaults


def infer_model_kind(data: Mapping[str, Any]) -> str:
    """Which model a link means when it has no `model=`: the one whose fields it carries."""
    if data.get("profile"):
        return "profile"
    if data.get("hub"):
        return "hub"
    if data.get("hf_config"):
        return "hf_config"
    if any(data.get(name) for name in (*ARCHITECTURE_FIELDS, *ARCHITECTURE_FLAGS)):
        return "architecture"
    return "catalog"
