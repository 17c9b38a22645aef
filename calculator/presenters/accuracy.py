"""The accuracy page's figures: every measured run a user can see, estimate against measured,
grouped by how it was run (framework, GPU, mode). Pure functions over the runs' rows."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from calculator.models import MeasuredRun, RunSource

# the most runs one page reads: the newest, a team's whole evidence for years
MAX_RUNS = 5000


@dataclass(frozen=True)
class Point:
    run_id: int
    estimate_public_id: str
    title: str
    framework: str
    gpu: str
    mode: str
    estimated_bytes: int
    measured_bytes: int

    @property
    def error(self) -> float:
        """estimate / measured - 1: positive when the estimate is above the run."""
        return self.estimated_bytes / self.measured_bytes - 1


@dataclass(frozen=True)
class Group:
    framework: str
    gpu: str
    mode: str
    points: tuple[Point, ...]

    @property
    def count(self) -> int:
        return len(self.points)

    @property
    def median_abs_error(self) -> float:
        return statistics.median(abs(point.error) for point in self.points)

    @property
    def worst(self) -> Point:
        return max(self.points, key=lambda point: abs(point.error))

    @property
    def within_10_percent(self) -> int:
        return sum(abs(point.error) <= 0.10 for point in self.points)

    @property
    def median_display(self) -> str:
        return f"{self.median_abs_error:.1%}"

    @property
    def worst_display(self) -> str:
        return f"{self.worst.error:+.1%}"


def points_of(runs: Iterable[MeasuredRun]) -> list[Point]:
    """Runs with a measured total (a total is what the estimate is judged by)."""
    labels = dict(RunSource.choices)
    points = []
    for run in runs:
        if not run.total_bytes:
            continue
        estimate = run.estimate
        points.append(
            Point(
                run_id=run.pk,
                estimate_public_id=estimate.public_id,
                title=estimate.title or estimate.model_name,
                framework=str(labels.get(run.source_format, run.source_format)),
                gpu=run.gpu_name or "GPU not given",
                mode=estimate.mode,
                estimated_bytes=estimate.total_bytes,
                measured_bytes=run.total_bytes,
            )
        )
    return points


def groups_of(points: Sequence[Point]) -> list[Group]:
    keyed: dict[tuple[str, str, str], list[Point]] = {}
    for point in points:
        keyed.setdefault((point.framework, point.gpu, point.mode), []).append(point)
    return [
        Group(framework, gpu, mode, tuple(found))
        for (framework, gpu, mode), found in sorted(keyed.items())
    ]


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    title: str


@dataclass(frozen=True)
class Scatter:
    size: int
    dots: tuple[Dot, ...]
    top_label: str  # the axes' common top, "80 GiB"


def scatter(points: Sequence[Point], *, size: int = 320, margin: int = 36) -> Scatter | None:
    """Estimate (y) against measured (x) on the same scale: on the diagonal is exact, above
    it the estimate was high."""
    if not points:
        return None
    top = max(max(p.estimated_bytes, p.measured_bytes) for p in points) * 1.05
    span = size - 2 * margin

    def at(value: int) -> float:
        return round(margin + span * value / top, 1)

    dots = tuple(
        Dot(
            x=at(point.measured_bytes),
            y=round(size - at(point.estimated_bytes), 1),
            title=f"{point.title}: estimated {point.estimated_bytes / 2**30:,.2f} GiB, "
            f"measured {point.measured_bytes / 2**30:,.2f} GiB ({point.error:+.1%})",
        )
        for point in points
    )
    return Scatter(size=size, dots=dots, top_label=f"{top / 2**30:,.1f} GiB")
