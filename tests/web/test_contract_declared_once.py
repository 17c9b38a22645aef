"""The estimate contract is declared once (calculator/engine/contract.py): the calculator form,
the API serializer, its OpenAPI schema and docs/limits.md are generated from the rows, and this
file fails when any of them disagrees with a row or a contract field has none."""

from __future__ import annotations

import pytest
from django.core.validators import MaxValueValidator, MinValueValidator
from drf_spectacular.generators import SchemaGenerator

from calculator import engine
from calculator.api.serializers import CalculateRequestSerializer, api_help
from calculator.engine.contract import CONTRACT, FIELD_SPECS
from calculator.engine.serving import SERVING_FIELDS
from calculator.web.forms.calculator import CalculatorForm
from calculator.web.forms.contract import form_help

pytestmark = pytest.mark.django_db


def _bounds(field):
    low = [v.limit_value for v in field.validators if isinstance(v, MinValueValidator)]
    high = [v.limit_value for v in field.validators if isinstance(v, MaxValueValidator)]
    return (low[0] if low else None, high[0] if high else None)


def test_every_contract_field_but_the_model_has_one_row():
    names = {*engine.FIELDS, *engine.HARDWARE_FIELDS, *SERVING_FIELDS} - {"model"}
    assert set(FIELD_SPECS) == names
    assert len(CONTRACT) == len(names)  # no field declared twice


@pytest.mark.parametrize("spec", [s for s in CONTRACT if s.on_form], ids=lambda s: s.name)
def test_the_form_field_is_the_row(spec):
    field = CalculatorForm({}).fields[spec.name]
    assert field.label == spec.label
    assert field.help_text == form_help(spec)
    assert field.required is (not spec.blank and spec.kind not in ("boolean", "modules"))
    if spec.kind in ("integer", "number") and spec.name != "zero_stage":
        low, high = spec.limits
        assert _bounds(field) == (None if spec.open_low else low, high)
    if spec.kind in ("choice", "modules"):
        offered = [value for value, _ in field.choices if value != ""]
        assert offered == list(spec.choices)
    if spec.name == "zero_stage":  # 0-3 as a select of the limits' whole range
        assert [value for value, _ in field.choices] == ["0", "1", "2", "3"]
        assert spec.limits == (0, 3)


@pytest.mark.parametrize("spec", CONTRACT, ids=lambda s: s.name)
def test_the_api_field_is_the_row(spec):
    field = CalculateRequestSerializer().fields[spec.name]
    assert field.help_text == api_help(spec)
    assert field.required is False
    assert field.allow_null is spec.nullable
    if spec.kind in ("integer", "number"):
        assert (field.min_value, field.max_value) == spec.limits
    if spec.kind == "choice":
        assert list(field.choices) == list(spec.choices)


def test_the_openapi_schema_describes_each_field_from_its_row():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    properties = schema["components"]["schemas"]["CalculateRequest"]["properties"]
    for spec in CONTRACT:
        description = properties[spec.name].get("description", "")
        assert description.startswith(api_help(spec).split("\n")[0][:60]), spec.name


def test_a_default_reads_the_same_on_the_page_and_in_the_api():
    # block_size: vLLM's --block-size default, 16 tokens (vllm/config.py CacheConfig)
    spec = FIELD_SPECS["block_size"]
    assert form_help(spec).endswith("Blank: 16.")
    assert api_help(spec).endswith("Default: 16.")
    # batch_size: the contract's default of 1 (docs/design.md)
    assert api_help(FIELD_SPECS["batch_size"]).endswith("Default: 1.")


@pytest.mark.parametrize(
    "spec",
    [s for s in CONTRACT if s.group == "hardware" and s.kind == "number" and s.limits],
    ids=lambda s: s.name,
)
def test_the_low_limit_is_refused_exactly_where_the_row_says(spec):
    # docs/limits.md said "more than 0.01" for the shares the engine accepts at 0.01
    payload = {
        "model": {
            "architecture": {
                "hidden_size": 64,
                "num_layers": 2,
                "num_attention_heads": 4,
                "intermediate_size": 128,
                "vocab_size": 1000,
            }
        },
        "gpu": {
            "memory_bytes": 80 * 2**30,
            "memory_bandwidth_bytes_per_s": 3.35e12,
            "bf16_dense_tflops": 989,
        },
        spec.name: spec.limits[0],
    }
    if spec.open_low:
        with pytest.raises(engine.EstimateError) as error:
            engine.calculate(payload)
        assert error.value.field == spec.name
    else:
        engine.calculate(payload)
