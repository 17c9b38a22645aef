"""Model profile forms: typed-in architecture, config.json import, and the list's filters."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from calculator.domain import hub
from calculator.domain.services import MAX_CONFIG_JSON_BYTES, parse_config_json
from calculator.engine import EstimateError
from calculator.engine.architecture import (
    FIELDS_PREFIX,
    HF_PREFIX,
    architecture_from_fields,
    architecture_from_hf_config,
)
from calculator.engine.dtypes import FLOAT_FORMATS
from calculator.models import ProfileSource
from calculator.web.forms.calculator import (
    ARCHITECTURE_FIELDS,
    ARCHITECTURE_HELP,
    ARCHITECTURE_LABELS,
    ARCHITECTURE_LIMITS,
)
from calculator.web.forms.sharing import SharingForm
from calculator.web.typed import form_field

# The architecture fields, labels and limits are the calculator form's: one list for both.
ARCHITECTURE_BOOLEAN_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("tie_word_embeddings", "Tied input and output embeddings", False),
    ("gated_mlp", "Gated MLP (SwiGLU / GeGLU)", True),
)
REQUIRED_ARCHITECTURE_FIELDS = ("hidden_size", "num_layers", "num_attention_heads")


def _engine_error_field(error: EstimateError, prefix: str) -> tuple[str, str]:
    """('hidden_size', message) for an error on 'model.architecture.hidden_size'."""
    name = error.field.removeprefix(prefix).lstrip(".")
    return name, error.message


class ProfileDescriptionForm(SharingForm):
    name = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


class ProfileManualForm(ProfileDescriptionForm):
    """A profile typed in field by field; the engine validates the shape and counts parameters."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ARCHITECTURE_FIELDS:
            low, high = ARCHITECTURE_LIMITS[name]
            self.fields[name] = forms.IntegerField(
                label=ARCHITECTURE_LABELS[name],
                required=name in REQUIRED_ARCHITECTURE_FIELDS,
                min_value=low,
                max_value=high,
                help_text=ARCHITECTURE_HELP.get(name, ""),
            )
        for name, label, initial in ARCHITECTURE_BOOLEAN_FIELDS:
            self.fields[name] = forms.BooleanField(label=label, required=False, initial=initial)
        self.fields["default_dtype"] = forms.ChoiceField(
            label="Stored in", choices=[(f, f) for f in FLOAT_FORMATS], initial="bfloat16"
        )

    def clean(self) -> dict:
        cleaned = super().clean()
        if any(name in self.errors for name in ARCHITECTURE_FIELDS):
            return cleaned
        try:
            architecture_from_fields(self.architecture())
        except EstimateError as error:
            name, message = _engine_error_field(error, FIELDS_PREFIX)
            if name in self.fields:
                self.add_error(name, message)
            else:
                self.add_error(None, f"{name}: {message}" if name else message)
        return cleaned

    def shape_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in (*ARCHITECTURE_FIELDS, "default_dtype")]

    def architecture(self) -> dict[str, Any]:
        """The contract's `architecture` object: the fields given, nothing invented."""
        cleaned = self.cleaned_data
        fields = {
            name: cleaned[name] for name in ARCHITECTURE_FIELDS if cleaned.get(name) is not None
        }
        if cleaned.get("tie_word_embeddings"):
            fields["tie_word_embeddings"] = True
        if not cleaned.get("gated_mlp"):
            fields["gated_mlp"] = False
        fields["default_dtype"] = cleaned.get("default_dtype") or "bfloat16"
        return fields


class ProfileImportForm(ProfileDescriptionForm):
    """A Hugging Face config.json, pasted or uploaded (at most 1 MB), kept verbatim."""

    name = forms.CharField(
        max_length=200, required=False, help_text="Empty: the config's _name_or_path or type."
    )
    config_json = forms.CharField(
        label="Paste config.json",
        required=False,
        strip=False,
        max_length=MAX_CONFIG_JSON_BYTES,
        widget=forms.Textarea(attrs={"rows": 14, "class": "code", "spellcheck": "false"}),
    )
    config_file = forms.FileField(label="…or upload it", required=False)
    hub = forms.CharField(
        label="…or a Hugging Face model id",
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"placeholder": "Qwen/Qwen3-8B", "spellcheck": "false"}),
        help_text="Its config.json is read from the Hub, with the commit it was read at.",
    )
    revision = forms.CharField(
        label="Revision", required=False, max_length=200, help_text="Blank: main."
    )

    def __init__(self, *args: Any, offer_hub: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # only when creating, and where the site reaches a Hub
        self.offers_hub = offer_hub and hub.enabled()
        if not self.offers_hub:
            del self.fields["hub"], self.fields["revision"]

    def clean_config_file(self) -> Any:
        upload = self.cleaned_data.get("config_file")
        if upload and upload.size > MAX_CONFIG_JSON_BYTES:
            raise ValidationError("config.json is larger than 1 MB.")
        return upload

    def clean(self) -> dict:
        cleaned = super().clean()
        text, upload = cleaned.get("config_json") or "", cleaned.get("config_file")
        if "config_file" in self.errors:
            return cleaned
        if upload and text.strip():
            self.add_error("config_json", "Paste a config.json or upload one, not both.")
            return cleaned
        if upload:
            try:
                text = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                self.add_error("config_file", "The file is not UTF-8 text.")
                return cleaned
        if cleaned.get("hub", "").strip():
            if text.strip():
                self.add_error("hub", "Give a config.json or a Hugging Face id, not both.")
            cleaned["hub"] = cleaned["hub"].strip()
            return cleaned  # read from the Hub by the service
        if not text.strip():
            self.add_error("config_json", "Paste a config.json or upload one.")
            return cleaned
        try:
            cleaned["hf_config"] = parse_config_json(text)
        except ValidationError as error:
            field = "config_file" if upload else "config_json"
            self.add_error(field, error.message_dict["config_json"])
            return cleaned
        try:
            architecture_from_hf_config(cleaned["hf_config"])
        except EstimateError as error:
            name, message = _engine_error_field(error, HF_PREFIX)
            field = "config_file" if upload else "config_json"
            self.add_error(
                field, f"Unsupported config.json: {name + ': ' if name else ''}{message}"
            )
            return cleaned
        cleaned["config_json_text"] = text
        if not cleaned.get("name"):
            config = cleaned["hf_config"]
            fallback = config.get("_name_or_path") or config.get("model_type") or "Imported model"
            cleaned["name"] = str(fallback)[:200]
        return cleaned


class ProfileFilterForm(forms.Form):
    q = forms.CharField(label="Search by name", required=False)
    family = forms.ChoiceField(label="Family", required=False)
    source = forms.ChoiceField(
        label="Source", required=False, choices=[("", "Any source"), *ProfileSource.choices]
    )

    def __init__(self, *args: Any, families: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        form_field(self, "family", forms.ChoiceField).choices = [
            ("", "Any family"),
            *((f, f) for f in families),
        ]
