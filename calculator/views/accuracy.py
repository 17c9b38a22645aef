"""/accuracy/: where the engine stands on the team's own hardware and stack, from the measured
runs attached to the estimates the user can see (their own and their teams')."""

from __future__ import annotations

import csv
import io

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from calculator import accuracy
from calculator.engine import MODES
from calculator.models import MeasuredRun, RunSource
from calculator.presenters.history import csv_cell
from calculator.selectors import estimate_list
from calculator.typed import AuthenticatedHttpRequest


@require_GET
@login_required
def accuracy_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    runs = (
        MeasuredRun.objects.filter(estimate__in=estimate_list(user=request.user).values("pk"))
        .select_related("estimate")
        .defer("raw_text", "estimate__inputs", "estimate__architecture")
        .order_by("-created", "-id")
    )
    framework = request.GET.get("framework", "")
    if framework in RunSource.values:
        runs = runs.filter(source_format=framework)
    else:
        framework = ""
    mode = request.GET.get("mode", "")
    if mode in MODES:
        runs = runs.filter(estimate__mode=mode)
    else:
        mode = ""
    gpu = request.GET.get("gpu", "").replace("\x00", "").strip()[:200]
    if gpu:
        runs = runs.filter(gpu_name__icontains=gpu)
    points = accuracy.points_of(runs[: accuracy.MAX_RUNS])
    if request.GET.get("format") == "csv":
        return _csv(points)
    context = {
        "groups": accuracy.groups_of(points),
        "points": points,
        "scatter": accuracy.scatter(points),
        "frameworks": RunSource.choices,
        "modes": MODES,
        "chosen": {"framework": framework, "mode": mode, "gpu": gpu},
        "capped": len(points) >= accuracy.MAX_RUNS,
    }
    return render(request, "calculator/estimates/accuracy.html", context)


def _csv(points: list[accuracy.Point]) -> HttpResponse:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["estimate", "title", "framework", "gpu", "mode", "estimated_bytes", "measured_bytes",
         "error"]
    )  # fmt: skip
    for point in points:
        writer.writerow(
            [
                point.estimate_public_id,
                csv_cell(point.title),
                point.framework,
                csv_cell(point.gpu),
                point.mode,
                point.estimated_bytes,
                point.measured_bytes,
                f"{point.error:.4f}",
            ]
        )
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="accuracy.csv"'
    return response
