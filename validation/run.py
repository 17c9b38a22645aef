"""Run every case in a fresh process, compare with the engine, write docs/accuracy.md.

    python -m validation.run                 # all cases, then docs/accuracy.md
    python -m validation.run --reuse         # compare saved validation/results/*.json again
    python -m validation.run --cases a,b     # some cases only (docs/accuracy.md is not written)
    python -m validation.run --device cuda   # the same cases on a CUDA GPU, then docs/accuracy.md

Needs the `validate` extra (torch, transformers, peft) in the interpreter that runs it; the
engine is pure Python and is imported from this checkout.

`--device cuda` writes validation/results-cuda/*.json and a report with both: the CPU tables
from validation/results/*.json (not measured again) and a GPU section. Every report (a CPU run
and `--reuse` too) includes the GPU section when validation/results-cuda/ holds results. With
`--reuse`, only the cases without a saved result of the device are measured.

On a GPU machine lent for a few minutes, with no network and torch, transformers and peft in its
own python3: carry the saved CPU results (validation/results/ is not in git) with the checkout,
run `PYTHONPATH=$PWD timeout 560 python3 -m validation.run --device cuda` (35 small cases; no
case starts after `--budget-s`, 420 s), bring validation/results-cuda/ back, commit it (it
cannot be made again without a GPU) and run `python -m validation.run --reuse` here to write
the page.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calculator.engine import calculate
from validation.cases import CASES, CASES_BY_NAME, Case, engine_payload
from validation.report import write_report

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "validation" / "results"
CUDA_RESULTS_DIR = ROOT / "validation" / "results-cuda"
RESULTS_DIRS = {"cpu": RESULTS_DIR, "cuda": CUDA_RESULTS_DIR}
REPORT_PATH = ROOT / "docs" / "accuracy.md"
CATALOG_PATH = ROOT / "calculator" / "data" / "models.json"
FIXTURES_DIR = ROOT / "tests" / "engine" / "fixtures" / "configs"
DEFAULT_JOBS = {"cpu": 2, "cuda": 1}  # the 2-core machine this runs on; one GPU
CASE_TIMEOUT_S = {"cpu": 900, "cuda": 180}  # a case takes seconds to a minute alone
# A GPU machine is lent for minutes: no case is started after this many seconds of the run (the
# cases measured are saved and reported; `--device cuda --reuse` measures the rest later).
CUDA_BUDGET_S = 420
DEFAULT_BUDGET_S: dict[str, float | None] = {"cpu": None, "cuda": CUDA_BUDGET_S}
# glibc: blocks of 64 KiB or more get their own mapping and are unmapped when freed, so the
# resident set follows the live tensors instead of a heap that never shrinks. MKL: no cache of
# its GEMM packing buffers (its "fast memory manager" otherwise keeps ~20 MiB after a large
# matmul, a CPU artefact; cuBLAS's workspace on a GPU belongs to the runtime overhead).
MEASURE_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "65536",
    "MKL_DISABLE_FAST_MM": "1",
    "OMP_NUM_THREADS": "1",
}
# On a GPU the CPU's allocator settings do not matter; the GPU machine may have no network.
CUDA_MEASURE_ENV = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def measure_env(device: str = "cpu") -> dict[str, str]:
    """This process's environment, the settings above, and this checkout first on the path."""
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    settings = CUDA_MEASURE_ENV if device == "cuda" else MEASURE_ENV
    return os.environ | settings | {"PYTHONPATH": python_path}


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


def measure_in_subprocess(case: Case, device: str = "cpu") -> dict[str, Any]:
    command = [sys.executable, "-m", "validation.measure", case.name]
    if device == "cpu":
        command = ["nice", "-n", "10", *command]  # the CPU machine is shared with other jobs
    else:
        command += ["--device", device]
    timeout = CASE_TIMEOUT_S[device]
    try:
        completed = subprocess.run(
            command,
            env=measure_env(device),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"{case.name} took more than {timeout} s") from error
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


def saved_comparisons(results_dir: Path, cases: list[Case]) -> list[Comparison]:
    """The cases (in their order) that have a saved result in `results_dir`, compared again."""
    comparisons = []
    for case in cases:
        path = results_dir / f"{case.name}.json"
        if path.exists():
            comparisons.append(compare(case, json.loads(path.read_text())))
    return comparisons


def cuda_unavailable_reason() -> str | None:
    """Why `--device cuda` cannot run here, or None when torch sees a CUDA GPU."""
    try:
        import torch
    except ImportError:
        return "torch is not installed: pip install -e '.[validate]'"
    if not torch.cuda.is_available():
        return (
            f"torch {torch.__version__} sees no CUDA GPU (torch.cuda.is_available() is False); "
            "run it on a machine with an NVIDIA GPU and a CUDA build of torch"
        )
    return None


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
    parser.add_argument(
        "--reuse", action="store_true", help="reuse the device's saved results where they exist"
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="where to measure (default: cpu)"
    )
    parser.add_argument(
        "--jobs", type=int, help="cases measured at once (default: 2 on cpu, 1 on cuda)"
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        help=f"start no case after this many seconds (default: {CUDA_BUDGET_S} on cuda, "
        "none on cpu; 0: none)",
    )
    args = parser.parse_args(argv)
    device = args.device
    jobs = args.jobs or DEFAULT_JOBS[device]
    budget_s = args.budget_s if args.budget_s is not None else DEFAULT_BUDGET_S[device]
    if args.cases:
        unknown = [name for name in args.cases.split(",") if name not in CASES_BY_NAME]
        if unknown:
            parser.error(f"unknown cases: {unknown}")
        cases = [CASES_BY_NAME[name] for name in args.cases.split(",")]
    else:
        cases = [case for case in CASES if not case.quick]
    if device == "cuda" and (reason := cuda_unavailable_reason()):
        print(f"--device cuda: {reason}", file=sys.stderr)
        return 2
    results_dir = RESULTS_DIRS[device]
    results_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    comparisons = []
    failures: list[str] = []
    skipped: list[str] = []

    def measured_case(case: Case) -> tuple[dict[str, Any] | None, str]:
        """(the case's result or None, how it was had) for the per-case line."""
        path = results_dir / f"{case.name}.json"
        if args.reuse and path.exists():
            return json.loads(path.read_text()), "reused"
        if budget_s and time.monotonic() - started > budget_s:
            return None, "skipped"
        case_started = time.monotonic()
        try:
            measured = measure_in_subprocess(case, device)
        except RuntimeError as error:  # one failing case must not lose the others
            print(error, file=sys.stderr, flush=True)
            return None, "failed"
        path.write_text(json.dumps(measured, indent=1))
        return measured, f"{time.monotonic() - case_started:5.1f} s"

    # each case is its own process measuring its own memory (resident set or CUDA allocator),
    # so cases can run side by side: on the CPU one per core (each is single-threaded)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for case, (measured, how) in zip(cases, pool.map(measured_case, cases), strict=True):
            if measured is None:
                (skipped if how == "skipped" else failures).append(case.name)
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
                )
                + f"  ({how})",
                flush=True,
            )
    print(f"{device}: {time.monotonic() - started:.0f} s for {len(cases)} cases", flush=True)
    if skipped:
        print(
            f"not started within the {budget_s:.0f} s budget: {', '.join(skipped)}; "
            f"`python -m validation.run --device {device} --reuse` measures them",
            file=sys.stderr,
        )
    if failures:
        print(f"failed: {', '.join(failures)}", file=sys.stderr)
    if args.cases:
        return 1 if failures or skipped else 0
    if device == "cpu":
        if failures:
            print("docs/accuracy.md not written", file=sys.stderr)
            return 1
        cpu_comparisons = comparisons
    else:
        # the CPU tables come from the saved CPU results; the GPU section lists missing cases
        cpu_comparisons = saved_comparisons(RESULTS_DIR, cases)
        if len(cpu_comparisons) < len(cases):
            print(
                "validation/results/ lacks CPU results (run `make validate` first); "
                "docs/accuracy.md not written",
                file=sys.stderr,
            )
            return 1
    counts_path = RESULTS_DIR / "parameter_counts.json"
    if device == "cuda" and counts_path.exists():
        counts = json.loads(counts_path.read_text())  # the CPU run's, as its tables
    else:
        counts = parameter_counts(catalog_configs())
        counts_path.write_text(json.dumps(counts, indent=1))
    cuda_comparisons = saved_comparisons(CUDA_RESULTS_DIR, cases)
    write_report(REPORT_PATH, cpu_comparisons, counts, cuda_comparisons)
    print(f"wrote {REPORT_PATH.relative_to(ROOT)}; median/worst in the summary")
    return 1 if failures or skipped else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
