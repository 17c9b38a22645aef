"""The serving plan of a result (mode "serving") for people: display strings only, from the
engine's `serving` answer; the calculator page and the permalink both render it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from calculator.charts import in_unit
from calculator.gpu_display import dollars, gpu_name, layout_label, rate

ENGINE_NAMES = {"vllm": "vLLM", "sglang": "SGLang", "transformers": "transformers"}


def _milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def serving_section(result: Mapping[str, Any], unit: str) -> dict[str, Any] | None:
    """What the serving card shows; None when the result is not a serving plan."""
    plan = result.get("serving")
    if not plan:
        return None
    memory = plan["memory"]
    engine = ENGINE_NAMES.get(plan["engine"], plan["engine"])
    max_model_len = result["inputs"]["max_model_len"]
    if memory["starts"]:
        count = plan["gpu_count"]
        layout = f" ({layout_label(plan['configuration'])})" if count > 1 else ""
        headline = (
            f"{engine} starts on {count} × {gpu_name(result)}{layout}"
            f": {memory['kv_cache_tokens']:,} tokens of KV cache, "
            f"{memory['max_concurrency']:,.2f}× concurrency at {max_model_len:,} tokens"
        )
    else:
        headline = f"{engine} would not start: {memory['error']}"
    rows = [
        ("Usable (memory × utilization)", memory["usable_bytes"]),
        ("Model weights", memory["weights_bytes"]),
        ("Activation peak (profiled)", memory["activation_peak_bytes"]),
        ("Non-torch memory", memory["non_torch_bytes"]),
        ("KV cache", memory["kv_cache_bytes"]),
    ]
    performance = plan["performance"]
    cost = plan["cost"] or {}
    return {
        "starts": memory["starts"],
        "headline": headline,
        "follows": plan["follows"],
        "memory": [(label, in_unit(value, unit), f"{value:,}") for label, value in rows],
        "blocks": f"{memory['num_blocks']:,} blocks of {result['inputs']['block_size']} tokens, "
        f"{memory['kv_bytes_per_token']:,} bytes a token on each GPU",
        "performance": None
        if performance is None
        else {
            "concurrency": f"{performance['concurrency']:,}",
            "limit": f"{plan['concurrency_limit']:,}",
            "ttft": _milliseconds(performance["ttft_s"]),
            "tpot": _milliseconds(performance["tpot_s"]),
            "per_request": rate(performance["output_tokens_per_s_per_request"], "tokens/s"),
            "output": rate(performance["output_tokens_per_s"], "tokens/s"),
            "per_hour": dollars(cost.get("per_hour")),
            "per_million_output": dollars(cost.get("per_million_output_tokens")),
            "per_million_input": dollars(cost.get("per_million_input_tokens")),
        },
        "curve": [
            {
                "concurrency": f"{point['concurrency']:,}",
                "tpot": _milliseconds(point["tpot_s"]),
                "output": rate(point["output_tokens_per_s"], "tokens/s"),
            }
            for point in plan["curve"]
        ],
        "deployments": None
        if plan["deployments"] is None
        else [
            {
                "name": row["name"],
                "count": row["gpu_count"],
                "layout": layout_label(row["configuration"]),
                "output": rate(row["output_tokens_per_s"], "tokens/s"),
                "per_hour": dollars(row["per_hour"]),
                "per_million_output": dollars(row["per_million_output_tokens"]),
            }
            for row in plan["deployments"]
        ],
    }
