"""Pre-flight: will this job fit? A pass or fail for launchers, schedulers and CI, from the same
calculation as the calculator, judged across the band of published GPU measurements
(calculator/domain/bands.py) rather than at the estimate alone."""

from __future__ import annotations

from typing import Any

from calculator.domain.calculations import calculation_run
from calculator.domain.selectors import User
from calculator.engine import EstimateError


def preflight(*, user: User | None, payload: Any) -> dict[str, Any]:
    """{"pass": ..., "reason": ..., "plan": the calculation}; EstimateError for bad input.

    Passes only when even the top of the band fits the GPUs' usable memory (a serving plan:
    when the engine would start and hold one request of max_model_len)."""
    if not isinstance(payload, dict) or payload.get("gpu") in (None, ""):
        raise EstimateError("gpu", "a pre-flight check needs the GPU it will run on")
    result = calculation_run(user=user, payload=payload).result
    answer = result["answer"]
    confidence = answer.get("confidence", "fits" if answer["fits"] else "does_not_fit")
    serving = result.get("serving")
    if serving is not None and not serving["memory"]["starts"]:
        passed, reason = False, serving["memory"]["error"]
    elif confidence == "fits":
        passed, reason = True, "fits, even at the top of the band of published measurements"
    elif confidence == "may_not_fit":
        passed = False
        reason = (
            f"may not fit: {answer['per_gpu_high_bytes']:,} bytes per GPU at the top of the "
            f"band, {answer['usable_bytes']:,} usable"
        )
    else:
        passed = False
        needs = answer.get("needs")
        reason = f"does not fit: {answer['per_gpu_bytes']:,} bytes per GPU, " + (
            f"{answer['usable_bytes']:,} usable"
            + (f"; {needs['gpu_count']} of these GPUs would" if needs else "")
        )
    return {
        "pass": passed,
        "reason": reason,
        "confidence": confidence,
        "gpu": answer["gpu"],
        "gpu_count": answer["gpu_count"],
        "per_gpu_bytes": answer["per_gpu_bytes"],
        "per_gpu_high_bytes": answer.get("per_gpu_high_bytes"),
        "usable_bytes": answer["usable_bytes"],
        "plan": result,
    }
