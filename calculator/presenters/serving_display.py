"""The serving plan of a result (mode "serving") for people: display strings only, from the
engine's `serving` answer; the calculator page and the permalink both render it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from calculator.presenters.charts import Tick, in_unit, nice_step
from calculator.presenters.gpu_display import dollars, gpu_name, layout_label, rate

ENGINE_NAMES = {
    "vllm": "vLLM",
    "sglang": "SGLang",
    "llama.cpp": "llama.cpp",
    "transformers": "transformers",
}


def _milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


@dataclass(frozen=True)
class CurveChart:
    """Output tokens/s of the whole server (y) against requests decoding at once (x)."""

    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    polyline: str
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    limit_x: float  # the memory-bound limit: as many requests as the KV cache and max_num_seqs
    limit_label: str
    description: str


def curve_chart(
    curve: Sequence[Mapping[str, Any]], *, width: int = 560, height: int = 220
) -> CurveChart | None:
    """The serving curve as an SVG line, the last point (the limit) marked."""
    if len(curve) < 2:
        return None
    left, top, right, bottom = 72, 12, width - 16, height - 36
    xs = [point["concurrency"] for point in curve]
    ys = [point["output_tokens_per_s"] for point in curve]
    x_step = nice_step(max(xs))
    x_top = x_step * math.ceil(max(xs) / x_step)
    y_step = nice_step(max(ys))
    y_top = y_step * math.ceil(max(ys) / y_step)

    def sx(x: float) -> float:
        return round(left + (right - left) * x / x_top, 2)

    def sy(y: float) -> float:
        return round(bottom - (bottom - top) * y / y_top, 2)

    last = curve[-1]
    return CurveChart(
        width=width,
        height=height,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        polyline=" ".join(f"{sx(x)},{sy(y)}" for x, y in zip(xs, ys, strict=True)),
        x_ticks=tuple(
            Tick(sx(i * x_step), f"{i * x_step:,.0f}")
            for i in range(int(round(x_top / x_step)) + 1)
        ),
        y_ticks=tuple(
            Tick(sy(i * y_step), f"{i * y_step:,.0f}")
            for i in range(int(round(y_top / y_step)) + 1)
        ),
        limit_x=sx(last["concurrency"]),
        limit_label=f"limit: {last['concurrency']:,}",
        description=(
            f"Output tokens per second of the whole server rise from "
            f"{ys[0]:,.0f} with one request to {ys[-1]:,.0f} with {xs[-1]:,} at once, the most "
            "the KV cache and max_num_seqs allow"
        ),
    )


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
    if "draft_weights_bytes" in memory:
        rows.insert(2, ("Draft weights (speculative)", memory["draft_weights_bytes"]))
    blocks = (
        f"{memory['num_blocks']:,} blocks of {result['inputs']['block_size']} tokens, "
        f"{memory['kv_bytes_per_token']:,} bytes a token on each GPU"
    )
    state = memory.get("state_cache")
    if state is not None:
        # vLLM's hybrid KV cache: every block of every layer one page, big enough for a state
        blocks += (
            f"; {state['state_layers']} state layers beside {state['attention_layers']} "
            f"attention layers, {state['state_page_bytes']:,} bytes of state a layer and "
            f"request, pages of {state['page_bytes']:,} bytes, {state['blocks_per_request']:,} "
            f"blocks a {max_model_len:,}-token request"
        )
    if "llamacpp" in memory:
        headline, rows, blocks = _llamacpp_rows(result, memory, headline, unit)
    performance = plan["performance"]
    cost = plan["cost"] or {}
    return {
        "starts": memory["starts"],
        "headline": headline,
        "follows": plan["follows"],
        "memory": [(label, in_unit(value, unit), f"{value:,}") for label, value in rows],
        "blocks": blocks,
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
            "speculative": _speculative(performance.get("speculative")),
        },
        "chart": curve_chart(plan["curve"]),
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


def _speculative(step: Mapping[str, Any] | None) -> str | None:
    """A line on the speculative step: what it yields and costs (Leviathan et al. 2023)."""
    if step is None:
        return None
    return (
        f"{step['method']}, k = {step['num_speculative_tokens']}, acceptance "
        f"{step['acceptance_rate']:g}: {step['tokens_per_step']:.2f} tokens a step of "
        f"{_milliseconds(step['step_s'])} (verify {_milliseconds(step['verify_s'])}, "
        f"draft {_milliseconds(step['draft_s'])} each), {step['speedup']:.2f}× decode speed"
    )


def _llamacpp_rows(
    result: Mapping[str, Any], memory: Mapping[str, Any], headline: str, unit: str
) -> tuple[str, list[tuple[str, int]], str]:
    """llama.cpp's buffers, named as its log prints them, on the GPU and in host RAM."""
    cpp = memory["llamacpp"]
    inputs = result["inputs"]
    if memory["starts"]:
        headline = (
            f"llama.cpp starts on 1 × {gpu_name(result)}: offloaded {cpp['offloaded']} layers "
            f"to the GPU, {cpp['n_ctx']:,} tokens of context in {inputs['n_parallel']:,} "
            f"slot(s); host RAM {in_unit(cpp['host_bytes'], unit)}"
        )
    rows = [
        ("GPU memory", memory["total_memory_bytes"]),
        ("CUDA0 buffer (weights on the GPU)", cpp["gpu_weights_bytes"]),
        ("CUDA0 KV buffer", cpp["gpu_kv_bytes"]),
        *(
            [("CUDA0 RS buffer (recurrent states)", cpp["gpu_rs_bytes"])]
            if "rs_layers" in cpp
            else []
        ),
        ("CUDA0 compute buffer", cpp["gpu_compute_bytes"]),
        ("CUDA context", memory["non_torch_bytes"]),
        ("GPU in all", cpp["gpu_total_bytes"]),
        ("CPU buffer (weights in host RAM)", cpp["host_weights_bytes"]),
        ("CPU KV buffer (layers on the CPU)", cpp["host_kv_bytes"]),
        *(
            [("CPU RS buffer (layers on the CPU)", cpp["host_rs_bytes"])]
            if "rs_layers" in cpp
            else []
        ),
        ("Host compute buffer", cpp["host_compute_bytes"]),
        ("Host output buffer (logits)", cpp["output_buffer_bytes"]),
        ("Host RAM in all", cpp["host_bytes"]),
    ]
    blocks = (
        f"-c {cpp['n_ctx']:,} (padded to 256), {cpp['n_ctx_per_slot']:,} tokens a slot; "
        f"K ({inputs['cache_type_k']}) {in_unit(cpp['k_bytes'], unit)}, "
        f"V ({inputs['cache_type_v']}) {in_unit(cpp['v_bytes'], unit)}; "
        f"layers on the CPU read at {cpp['host_memory_bandwidth_bytes_per_s'] / 1e9:,.1f} GB/s"
    )
    return headline, rows, blocks
