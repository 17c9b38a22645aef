"""Display values for measured runs: each line of the estimate beside the measurement."""

from __future__ import annotations

from dataclasses import dataclass

from calculator.domain import evidence
from calculator.models import MeasuredRun
from calculator.presenters import charts


@dataclass(frozen=True)
class RunRow:
    line: str
    label: str
    estimate: str
    measured: str
    error: str
    error_percent: str
    direction: str  # "over", "under", "exact" or "" (not measured): for the row's class


def _signed(num_bytes: int, unit: str) -> str:
    sign = "+" if num_bytes > 0 else "−" if num_bytes < 0 else "±"
    return sign + charts.in_unit(abs(num_bytes), unit)


def run_rows(run: MeasuredRun, unit: str = "GiB") -> list[RunRow]:
    estimate = run.estimate
    lines = evidence.compare(
        breakdown=(estimate.result or {}).get("breakdown", {}),
        total_bytes=estimate.total_bytes,
        measured=run.measured(),
    )
    rows = []
    for line in lines:
        if line.measured_bytes is None or line.error_bytes is None:
            measured = error = percent = direction = ""
        else:
            measured = charts.in_unit(line.measured_bytes, unit)
            error = _signed(line.error_bytes, unit)
            percent = ""
            if line.error_percent is not None:
                percent = f"{line.error_percent:+.1f} %".replace("-", "−")
            direction = "over" if line.error_bytes > 0 else "under" if line.error_bytes else "exact"
        rows.append(
            RunRow(
                line=line.line,
                label=line.label,
                estimate=charts.in_unit(line.estimate_bytes, unit),
                measured=measured or "not in the log",
                error=error,
                error_percent=percent,
                direction=direction,
            )
        )
    return rows
