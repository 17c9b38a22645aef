"""The calculator page's display values: a pure function of the page's calculation
(`calculations.calculator_page_run`), the unit and the calculation's own link. No query, no
engine run: what the template prints, ready."""

from __future__ import annotations

from typing import Any

from calculator.domain.calculations import CalculatorPage
from calculator.presenters import charts, gpu_display, serving_display
from calculator.presenters.results import METHOD_NAMES, checkpoint_line
from calculator.web.querystring import with_changes


def calculator_results(
    page: CalculatorPage,
    *,
    unit: str,
    query: str,
    fit_catalog: bool = True,
    fit_open: bool = False,
) -> dict[str, Any]:
    """The results section of the calculator page. `query` is the shortest query string of
    this calculation (the form's canonical query): the other method's and the checkpoint's
    links change one field of it. `fit_catalog`: the calculation fitted every catalog GPU (else
    the fit table is folded and empty until opened); `fit_open`: the visitor has it open."""
    calculation = page.calculation
    result = calculation.result
    method = result["inputs"]["method"]
    chart = charts.line_chart(
        list(zip(page.sweep_lengths, page.sweep_totals, strict=True)),
        current_x=result["inputs"]["sequence_length"],
        unit=unit,
        x_label="Sequence length (tokens)",
    )
    return {
        "result": result,
        "model_name": calculation.resolved.name,
        "unit": unit,
        "total": charts.in_unit(result["total_bytes"], unit),
        "total_bytes": f"{result['total_bytes']:,}",
        "method_name": METHOD_NAMES[method],
        "other_method_name": METHOD_NAMES[page.other_method],
        "other_total": None
        if page.other_total_bytes is None
        else charts.in_unit(page.other_total_bytes, unit),
        "other_error": page.other_error,
        "other_query": with_changes(query, method=page.other_method),
        "rows": charts.with_basis(
            charts.breakdown_rows(result["breakdown"], unit), result.get("breakdown_bounds"), unit
        ),
        "bounds": charts.bounds_line(result.get("breakdown_bounds"), unit),
        "bar": charts.stacked_bar(result["breakdown"], unit),
        "chart": chart,
        "parameters": charts.parameter_rows(result["parameters"]),
        "checkpoint": checkpoint_line(result, query),
        "num_gpus": result["num_gpus"],
        "gpus": gpu_display.gpu_section(result, unit, fit_catalog=fit_catalog, fit_open=fit_open),
        "serving": serving_display.serving_section(result, unit),
        "host_memory": charts.in_unit(result["host_memory_bytes"], unit)
        if result.get("host_memory_bytes")
        else None,
        "notes": result["notes"],
        "warnings": result.get("warnings", []),
        "engine_version": result["engine_version"],
    }
