"""Run the engine for the web layer: resolve `model` (catalog slug, profile id, Hugging Face id,
config or architecture) and `gpu` (catalog slug, or the figures themselves) to what the engine
understands, then call `calculator.engine.calculate`, fitting across the GPU catalog.

Pages, htmx fragments, the API and services all calculate through `calculation_run`; the
calculator page through `calculator_page_run`, which returns everything its results show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from calculator import engine
from calculator.domain import bands, caching, hub
from calculator.domain.caching import catalog_cached
from calculator.domain.errors import NotFound
from calculator.domain.selectors import User, catalog_get, profile_get_for_user
from calculator.engine import HARDWARE_FIELDS, INPUT_LIMITS, EstimateError, GpuSpec, sweep
from calculator.models import Gpu, ModelProfile
from calculator.presenters.charts import sequence_length_points

MODEL_KINDS = ("catalog", "profile", "hub", "hf_config", "architecture")


@dataclass(frozen=True)
class ResolvedModel:
    engine_model: dict[str, Any]  # {"hf_config": ...} or {"architecture": ...}
    profile: ModelProfile | None
    name: str
    hub: hub.HubModel | None = None  # imported by its Hugging Face id


@dataclass(frozen=True)
class Calculation:
    payload: dict[str, Any]  # as given, with `model` as the caller named it
    resolved: ResolvedModel
    result: dict[str, Any]  # the engine's response; result["inputs"]["model"] as given


OTHER_METHOD = {"detailed": "standard", "standard": "detailed"}
SWEEP_POINTS = 24  # the calculator's "memory against sequence length" chart


@dataclass(frozen=True)
class CalculatorPage:
    """Everything the calculator page's results show, computed once: the chosen method's
    answer (with the GPU answers when a GPU is chosen), the other method's total beside it,
    and the sweep of sequence lengths for the chart."""

    calculation: Calculation
    other_method: str
    other_total_bytes: int | None  # None: the other method refused these inputs
    other_error: str | None
    sweep_lengths: list[int]
    sweep_totals: list[int]  # total_bytes per GPU at each of sweep_lengths


def _hub_resolve(*, user: User | None, model: dict[str, Any]) -> ResolvedModel:
    unknown = sorted(set(model) - {"hub", "revision"})
    if unknown:
        raise EstimateError(f"model.{unknown[0]}", 'A Hub model takes "hub" and "revision" only.')
    who = f"user:{user.pk}" if user is not None and user.is_authenticated else "anonymous"
    try:
        imported = hub.hub_model(
            repo_id=model["hub"], revision=model.get("revision"), user=user, who=who
        )
    except hub.HubError as error:
        raise EstimateError("model.hub", error.message) from None
    return ResolvedModel({"hf_config": imported.config}, None, imported.repo_id, imported)


def model_resolve(*, user: User | None, model: Any) -> ResolvedModel:
    if isinstance(model, dict) and "hub" in model:
        return _hub_resolve(user=user, model=model)
    if not isinstance(model, dict) or len(model) != 1 or next(iter(model)) not in MODEL_KINDS:
        raise EstimateError(
            "model",
            'Give exactly one of {"catalog": slug}, {"profile": id}, {"hub": "org/name"}, '
            '{"hf_config": {...}} or {"architecture": {...}}.',
        )
    kind, value = next(iter(model.items()))
    if kind == "catalog":
        if not isinstance(value, str) or not value:
            raise EstimateError("model.catalog", "A catalog slug (e.g. meta-llama/Llama-3.1-8B).")
        try:
            profile = catalog_cached(f"model:{value}", lambda: catalog_get(slug=value))
        except NotFound:
            raise EstimateError("model.catalog", f"No catalog model '{value[:200]}'.") from None
        return ResolvedModel(profile.engine_model(), profile, profile.name)
    if kind == "profile":
        if isinstance(value, bool) or not isinstance(value, int):
            raise EstimateError("model.profile", "A profile id (an integer).")
        try:
            profile, _ = profile_get_for_user(user=user, pk=value)
        except NotFound:
            raise EstimateError(
                "model.profile", "No profile with this id that you can see."
            ) from None
        return ResolvedModel(profile.engine_model(), profile, profile.name)
    name = "Custom architecture"
    if kind == "hf_config" and isinstance(value, dict):
        name = str(value.get("_name_or_path") or value.get("model_type") or "config.json")[:200]
    return ResolvedModel({kind: value}, None, name)


def gpu_engine_fields(gpu: Gpu) -> dict[str, Any]:
    """A catalog GPU as the contract's `gpu` object."""
    price = gpu.price_per_hour_usd
    return {
        "slug": gpu.slug,
        "name": gpu.name,
        "memory_bytes": gpu.memory_bytes,
        "memory_bandwidth_bytes_per_s": gpu.memory_bandwidth_bytes_per_s,
        "bf16_dense_tflops": gpu.bf16_dense_tflops,
        "price_per_hour_usd": None if price is None else float(price),
    }


def gpu_catalog() -> list[dict[str, Any]]:
    """Every catalog GPU as the contract's `gpu` object, largest memory first."""
    gpus = catalog_cached("gpus", lambda: [gpu_engine_fields(gpu) for gpu in Gpu.objects.all()])
    return [dict(gpu) for gpu in gpus]


def gpu_resolve(gpu: Any, catalog: list[dict[str, Any]]) -> Any:
    """`gpu` for the engine: a catalog slug becomes its figures; an object passes as given."""
    if not isinstance(gpu, str):
        return gpu
    for fields in catalog:
        if fields["slug"] == gpu:
            return fields
    raise EstimateError("gpu", f"No GPU '{gpu[:100]}' in the catalog.")


def calculation_run(*, user: User | None, payload: Any, fit_catalog: bool = True) -> Calculation:
    """Validate and compute; bad input raises EstimateError naming the field. With a `gpu`,
    `fit` covers every catalog GPU, or only the asked one when not `fit_catalog` (the
    calculator's folded fit table: the fewest of each GPU is most of the GPU answers' work)."""
    if not isinstance(payload, dict):
        raise EstimateError("non_field_errors", "Send a JSON object with the estimate fields.")
    resolved = model_resolve(user=user, model=payload.get("model"))
    engine_payload = {**payload, "model": resolved.engine_model}
    draft = payload.get("draft_model")
    if draft is not None:
        # a catalog slug, resolved like `model`; the engine takes the model object
        if not isinstance(draft, str):
            raise EstimateError("draft_model", "A catalog slug (e.g. meta-llama/Llama-3.2-1B).")
        try:
            draft_model = model_resolve(user=user, model={"catalog": draft})
        except EstimateError as error:
            raise EstimateError("draft_model", error.message) from None
        engine_payload["draft_model"] = draft_model.engine_model
    imported = resolved.hub
    if (
        imported is not None
        and imported.weight_dtype is not None
        and payload.get("weight_dtype") is None
        and payload.get("finetuning") != "qlora"
    ):
        # what the checkpoint stores; in `payload` too, so that a sweep or the other method of
        # this calculation (the calculator's chart) sizes the same weights
        payload = {**payload, "weight_dtype": imported.weight_dtype}
        engine_payload["weight_dtype"] = imported.weight_dtype
    fit_gpus = None
    if payload.get("gpu") is not None:
        catalog = gpu_catalog()
        engine_payload["gpu"] = gpu_resolve(payload["gpu"], catalog)
        fit_gpus = [GpuSpec(**fields) for fields in catalog] if fit_catalog else []
    result = engine.calculate(engine_payload, fit_gpus=fit_gpus)
    result["inputs"]["model"] = payload["model"]
    if draft is not None:
        result["inputs"]["draft_model"] = draft
    if imported is not None:
        result["inputs"]["model"] = {"hub": imported.repo_id, "revision": imported.revision}
        result["hub"] = hub_section(imported, result)
    if fit_gpus is not None:
        result["inputs"]["gpu"] = payload["gpu"]
    result["breakdown_bounds"] = bands.breakdown_bounds(result)
    bands.fit_confidence(result)
    return Calculation(payload=payload, resolved=resolved, result=result)


# the models whose answer depends on the body alone (a saved profile's or a Hub model's depends
# on who asks): only these are kept
KEPT_MODEL_KINDS = frozenset({"catalog", "hf_config", "architecture"})


def calculation_result(*, user: User | None, payload: Any) -> dict[str, Any]:
    """`calculation_run(...).result`, the API's answer. Kept per payload (caching.py) when it is
    a pure function of it: any model but a saved profile or a Hub model, whose readers differ
    (an outsider's or anonymous request must be refused again, not served a kept answer)."""
    model = payload.get("model") if isinstance(payload, dict) else None
    if not isinstance(model, dict) or not model.keys() <= KEPT_MODEL_KINDS:
        return calculation_run(user=user, payload=payload).result
    return caching.calculation_kept(
        payload, lambda: calculation_run(user=user, payload=payload).result
    )


def calculator_page_run(
    *, user: User | None, payload: Any, fit_catalog: bool = True
) -> CalculatorPage:
    """The calculator page's one calculation; bad input raises EstimateError naming the
    field, as `calculation_run` does (`fit_catalog` too)."""
    calculation = calculation_run(user=user, payload=payload, fit_catalog=fit_catalog)
    result = calculation.result
    other_method = OTHER_METHOD[result["inputs"]["method"]]
    other_total: int | None = None
    other_error: str | None = None
    # The memory estimate alone (the GPU answers are shown for the chosen method only), with
    # the model already resolved: no second catalog or profile lookup.
    memory_payload = {
        name: value for name, value in calculation.payload.items() if name not in HARDWARE_FIELDS
    }
    try:
        other = calculation_run(
            user=user,
            payload={
                **memory_payload,
                "model": calculation.resolved.engine_model,
                "method": other_method,
            },
        )
    except EstimateError as error:
        other_error = error.message
    else:
        other_total = other.result["total_bytes"]
    lengths = sequence_length_points(
        result["inputs"]["sequence_length"], INPUT_LIMITS["sequence_length"][1], SWEEP_POINTS
    )
    engine_payload = {**calculation.payload, "model": calculation.resolved.engine_model}
    totals = sweep(engine_payload, "sequence_length", lengths)
    return CalculatorPage(calculation, other_method, other_total, other_error, lengths, totals)


def hub_section(imported: hub.HubModel, result: dict[str, Any]) -> dict[str, Any]:
    """The response's `hub`: the commit read, and the checkpoint's own count beside the
    engine's (a difference is also a note)."""
    section = imported.evidence()
    facts = imported.safetensors
    if facts is None:
        section["parameter_difference"] = None
        result["notes"].append(
            f"{imported.repo_id} has no safetensors files: the parameters are counted from "
            "config.json alone"
        )
        return section
    counted = result["parameters"]["total"]
    difference = counted - facts["parameters"]
    section["parameter_difference"] = difference
    if difference:
        result["notes"].append(
            f"The checkpoint's safetensors headers hold {facts['parameters']:,} parameters; "
            f"the engine counts {counted:,} from config.json ({difference:+,})"
        )
    else:
        result["notes"].append(
            f"The engine's count equals the checkpoint's safetensors headers "
            f"({facts['parameters']:,} parameters)"
        )
    if imported.weight_dtype is not None and result["inputs"]["weight_dtype"] == (
        imported.weight_dtype
    ):
        stored = ", ".join(facts["parameters_by_dtype"])
        result["notes"].append(
            f"weight_dtype {imported.weight_dtype} from what the checkpoint stores ({stored})"
        )
    return section
