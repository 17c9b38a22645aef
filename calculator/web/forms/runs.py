"""Attach a measured run: paste or upload a log, or type the figures (in GiB)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from calculator.domain import evidence, services

FORMAT_CHOICES = [("auto", "Detect from the text"), *evidence.FORMATS.items()]
FIGURES = (
    ("weights", "Weights"),
    ("kv_cache", "KV cache"),
    ("activations", "Activations"),
    ("non_torch", "Non-torch / context"),
    ("total", "Total"),
)
MAX_GIB = Decimal(evidence.MAX_MEASURED_BYTES) / evidence.GIB


def _gib_field(label: str, *, signed: bool) -> forms.DecimalField:
    return forms.DecimalField(
        label=f"{label} (GiB)",
        required=False,
        max_digits=12,
        decimal_places=4,
        min_value=-MAX_GIB if signed else Decimal(0),
        max_value=MAX_GIB,
    )


class MeasuredRunForm(forms.Form):
    source_format = forms.ChoiceField(label="What it is", choices=FORMAT_CHOICES, initial="auto")
    text = forms.CharField(
        label="Paste the log",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false"}),
        help_text=f"The start-up part is enough; {evidence.MAX_TEXT_BYTES // 1024} KiB at most.",
    )
    upload = forms.FileField(label="or upload it", required=False)
    gpu_name = forms.CharField(label="GPU", required=False, max_length=200)
    driver_version = forms.CharField(label="Driver", required=False, max_length=64)
    cuda_version = forms.CharField(label="CUDA", required=False, max_length=64)
    framework_version = forms.CharField(label="Framework version", required=False, max_length=100)
    weights = _gib_field("Weights", signed=False)
    kv_cache = _gib_field("KV cache", signed=True)
    activations = _gib_field("Activations", signed=True)
    non_torch = _gib_field("Non-torch / context", signed=True)
    total = _gib_field("Total", signed=False)
    note = forms.CharField(
        label="Note",
        required=False,
        max_length=services.RUN_NOTE_LIMIT,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    FACTS = ("gpu_name", "driver_version", "cuda_version", "framework_version")

    def _uploaded_text(self) -> str | None:
        upload = self.cleaned_data.get("upload")
        if upload is None:
            return None
        if upload.size is not None and upload.size > evidence.MAX_TEXT_BYTES:
            self.add_error("upload", f"At most {evidence.MAX_TEXT_BYTES // 1024} KiB.")
            return None
        try:
            return upload.read(evidence.MAX_TEXT_BYTES + 1).decode("utf-8")
        except UnicodeDecodeError:
            self.add_error("upload", "Upload the log as UTF-8 text.")
            return None

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        fmt = data.get("source_format")
        if fmt is None or self.errors:
            return data
        figures = {
            name: None if data.get(name) is None else int(data[name] * evidence.GIB)
            for name, _ in FIGURES
        }
        uploaded = self._uploaded_text()
        if self.errors:
            return data
        text = data.get("text") or ""
        if uploaded is not None and text.strip():
            raise forms.ValidationError("Paste the log or upload it, not both.")
        if uploaded is not None:
            text = uploaded
        try:
            if fmt == "manual":
                if text.strip():
                    raise forms.ValidationError(
                        "Typed figures go without a log: choose the log's format instead."
                    )
                data["measured"], data["raw_text"] = evidence.from_figures(figures), ""
            else:
                if any(value is not None for value in figures.values()):
                    raise forms.ValidationError(
                        "Choose “Typed figures” to type them, or leave them empty for a log."
                    )
                data["raw_text"] = evidence.clean_text(text)
                data["measured"] = evidence.parse(data["raw_text"], fmt)
        except evidence.EvidenceError as error:
            self.add_error("text" if fmt != "manual" else None, str(error))
        return data

    def facts(self) -> dict[str, str]:
        return {name: self.cleaned_data.get(name) or "" for name in self.FACTS}
