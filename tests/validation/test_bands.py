"""The error bands the service shows (calculator/data/error_bands.json) are what the published
GPU measurements give today: recomputed here, so a change of the engine or of the data that
moves them fails until `python -m validation.bands` is run again."""

from __future__ import annotations

import json

from calculator.domain.bands import BANDS_PATH, breakdown_bounds, fit_confidence
from validation.bands import compute


def test_the_bands_file_is_what_the_measurements_give():
    assert json.loads(BANDS_PATH.read_text(encoding="utf-8")) == compute()


def _result(mode="inference", finetuning="full", **breakdown):
    lines = {
        "weights": 600,
        "kv_cache": 100,
        "activations": 200,
        "gradients": 0,
        "optimizer_states": 0,
        "runtime_overhead": 100,
        **breakdown,
    }
    return {
        "inputs": {"mode": mode, "finetuning": finetuning, "memory_view": None},
        "breakdown": lines,
        "total_bytes": sum(lines.values()),
    }


def test_a_band_is_carried_by_the_modelled_line(monkeypatch):
    table = {"bands": {"inference": {"cases": 20, "min_error": -0.2, "max_error": 0.05}}}
    monkeypatch.setattr("calculator.domain.bands.band_table", lambda: table)
    bounds = breakdown_bounds(_result())
    # measured = estimate / (1 + error): 1,000 / 1.05 = 952.4 and 1,000 / 0.8 = 1,250
    assert bounds["total"] == {"low": 952, "high": 1250}
    assert bounds["lines"]["weights"] == {"provenance": "exact", "low": 600, "high": 600}
    # the activations take the difference: 200 - 48 and 200 + 250
    assert bounds["lines"]["activations"] == {"provenance": "modelled", "low": 152, "high": 450}
    assert bounds["lines"]["runtime_overhead"]["provenance"] == "default"


def test_a_workload_with_no_measurement_of_its_kind_takes_the_widest_band(monkeypatch):
    table = {
        "bands": {
            "lora": {"cases": 12, "min_error": -0.07, "max_error": 0.02},
            "all": {"cases": 43, "min_error": -0.19, "max_error": 0.02},
        }
    }
    monkeypatch.setattr("calculator.domain.bands.band_table", lambda: table)
    bounds = breakdown_bounds(_result(mode="training", finetuning="full"))
    assert (bounds["workload"], bounds["band_from"], bounds["cases"]) == ("full", "all", 43)


def test_fits_only_when_the_whole_band_fits(monkeypatch):
    table = {"bands": {"inference": {"cases": 20, "min_error": -0.2, "max_error": 0.05}}}
    monkeypatch.setattr("calculator.domain.bands.band_table", lambda: table)
    result = _result()
    result["breakdown_bounds"] = breakdown_bounds(result)
    # 1,000 bytes on a GPU of 1,100 usable: fits as estimated, but 1,000 / 0.8 = 1,250 may not
    result["answer"] = {"per_gpu_bytes": 1000, "usable_bytes": 1100}
    fit_confidence(result)
    assert result["answer"]["confidence"] == "may_not_fit"
    assert result["answer"]["per_gpu_high_bytes"] == 1250
    result["answer"] = {"per_gpu_bytes": 1000, "usable_bytes": 1300}
    fit_confidence(result)
    assert result["answer"]["confidence"] == "fits"
