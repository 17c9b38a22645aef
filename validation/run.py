"""Run every case in a fresh process, compare with the engine, write docs/accuracy.md.

    python -m validation.run                 # all cases, then docs/accuracy.md
    python -m validation.run --reuse         # compare saved validation/results/*.json again
    python -m validation.run --cases a,b     # some cases only (docs/accuracy.md is not written)

Needs the `validate` extra (torch, transformers, peft) in the interpreter that runs it; the
engine is pure Python and is imported from this checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calculator.engine import calculate
from validation.cases import CASES, CASES_BY_NAME, Case, engine_payload
from validation.report import write_report

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "validation" / "results"
REPORT_PATH = ROOT / "docs" / "accuracy.md"
CATALOG_PATH = ROOT / "calculator" / "data" / "models.json"
FIXTURES_DIR = ROOT / "tests" / "engine" / "fixtures" / "configs"
DEFAULT_JOBS = 2  # the 2-core machine this runs on; each case is single-threaded
CASE_TIMEOUT_S = 900  # a case takes seconds to a minute alone; generous for a busy machine
# glibc: blocks of 64 KiB or more get their own mapping and are unmapped when freed, so the
# resident set follows the live tensors instead of a heap that never shrinks. MKL: no cache of
# its GEMM packing buffers (its "fast memory manager" otherwise keeps ~20 MiB after a large
# matmul, a CPU artefact; cuBLAS's workspace on a GPU belongs to the runtime overhead).
MEASURE_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "65536",
    "MKL_DISABLE_FAST_MM": "1",
    "OMP_NUM_THREADS": "1",
}


def measure_env() -> dict[str, str]:
    """This process's environment, the settings above, and this checkout first on the path."""
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return os.environ | MEASURE_ENV | {"PYTHONPATH": python_path}


@dataclass(frozen=True)
class Comparison:
    case: Case
    measured: dict[str, Any]
    detailed: dict[str, Any] | None
    standard: dict[str, Any] | None
    detailed_error: str | None
    standard_error: str | None

    @property
    def peak(self) -> int:
        return int(self.measured["peak_bytes"])

    def relative_error(self, method: str) -> float | None:
        """Signed error of the engine's total against the measured peak, in percent."""
        result = self.detailed if method == "detailed" else self.standard
        if result is None:
            return None
        return 100.0 * (result["total_bytes"] - self.peak) / self.peak


def measure_in_subprocess(case: Case) -> dict[str, Any]:
    command = ["nice", "-n", "10", sys.executable, "-m", "validation.measure", case.name]
    try:
        completed = subprocess.run(
            command,
            env=measure_env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=CASE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"{case.name} took more than {CASE_TIMEOUT_S} s") from error
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"{case.name} failed:\n{completed.stdout}\n{completed.stderr[-4000:]}")
    return json.loads(lines[-1])


def estimate(case: Case, method: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return calculate(engine_payload(case, method)), None
    except Exception as error:  # the report shows why a method could not estimate a case
        return None, f"{type(error).__name__}: {error}"


def compare(case: Case, measured: dict[str, Any]) -> Comparison:
    detailed, detailed_error = estimate(case, "detailed")
    standard, standard_error = estimate(case, "standard")
    return Comparison(case, measured, detailed, standard, detailed_error, standard_error)


def catalog_configs() -> dict[str, dict[str, Any]]:
    """Full-size published configs: the model catalog and the engine's test fixtures."""
    configs: dict[str, dict[str, Any]] = {}
    if CATALOG_PATH.exists():
        for entry in json.loads(CATALOG_PATH.read_text()):
            configs[entry["slug"]] = entry["config"]
    for path in sorted(FIXTURES_DIR.glob("*.json")):
        slug = path.stem.replace("--", "/", 1)
        configs.setdefault(slug, json.loads(path.read_text()))
    return configs


def parameter_counts(configs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Engine count against transformers' count on the meta device, for every config."""
    request = RESULTS_DIR / "meta_request.json"
    request.write_text(json.dumps(configs))
    command = [sys.executable, "-m", "validation.meta_count", str(request)]
    completed = subprocess.run(
        command, env=measure_env(), cwd=ROOT, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"meta-device counts failed:\n{completed.stderr[-4000:]}")
    transformers_counts = json.loads(completed.stdout.splitlines()[-1])
    rows = []
    for slug, config in configs.items():
        engine_count: int | None = None
        engine_error = None
        try:
            result = calculate({"model": {"hf_config": config}, "method": "detailed"})
            engine_count = int(result["parameters"]["total"])
        except Exception as error:  # shown in the table
            engine_error = f"{type(error).__name__}: {error}"
        rows.append(
            {
                "slug": slug,
                "model_type": config.get("model_type", "?"),
                "engine": engine_count,
                "engine_error": engine_error,
                "transformers": transformers_counts[slug].get("count"),
                "transformers_error": transformers_counts[slug].get("error"),
                "transformers_note": transformers_counts[slug].get("note"),
            }
        )
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", help="comma-separated case names (default: all but quick)")
    parser.add_argument("--reuse", action="store_true", help="reuse validation/results/*.json")
    parser.add_argument(
        "--jobs", type=int, default=DEFAULT_JOBS, help="cases measured at once (default: 2)"
    )
    args = parser.parse_args(argv)
    if args.cases:
        unknown = [name for name in args.cases.split(",") if name not in CASES_BY_NAME]
        if unknown:
            parser.error(f"unknown cases: {unknown}")
        cases = [CASES_BY_NAME[name] for name in args.cases.split(",")]
    else:
        cases = [case for case in CASES if not case.quick]
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    comparisons = []
    failures: list[str] = []

    def measured_case(case: Case) -> dict[str, Any] | None:
        path = RESULTS_DIR / f"{case.name}.json"
        if args.reuse and path.exists():
            return json.loads(path.read_text())
        try:
            measured = measure_in_subprocess(case)
        except RuntimeError as error:  # one failing case must not lose the others
            print(error, file=sys.stderr, flush=True)
            return None
        path.write_text(json.dumps(measured, indent=1))
        return measured

    # each case is its own single-threaded process measuring its own resident set, so cases
    # can run side by side, one per core
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for case, measured in zip(cases, pool.map(measured_case, cases), strict=True):
            if measured is None:
                failures.append(case.name)
                continue
            comparison = compare(case, measured)
            comparisons.append(comparison)
            detailed = comparison.relative_error("detailed")
            print(
                f"{case.name:55s} measured {comparison.peak / 2**20:9.1f} MiB  detailed "
                + (
                    f"{detailed:+7.1f} %"
                    if detailed is not None
                    else str(comparison.detailed_error)
                ),
                flush=True,
            )
    if failures:
        print(f"failed: {', '.join(failures)}; docs/accuracy.md not written", file=sys.stderr)
        return 1
    if args.cases:
        return 0
    counts = parameter_counts(catalog_configs())
    (RESULTS_DIR / "parameter_counts.json").write_text(json.dumps(counts, indent=1))
    write_report(REPORT_PATH, comparisons, counts)
    print(f"wrote {REPORT_PATH.relative_to(ROOT)}; median/worst in the summary")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
