"""What the calculator page and a saved estimate's page say about a result, in one place."""

from __future__ import annotations

from typing import Any

from calculator.web.querystring import with_changes

METHOD_NAMES = {"detailed": "Detailed", "standard": "Standard (original formulas)"}


def checkpoint_line(result: dict[str, Any], query: str | None) -> dict[str, str] | None:
    """The line "Published checkpoint: MXFP4 (experts), bfloat16 elsewhere", what the estimate
    sized, and a link to the other choice (`query` None: a saved estimate, no link)."""
    checkpoint = result.get("checkpoint")
    if not checkpoint:
        return None
    sized = result["inputs"]["weight_dtype"]
    published = checkpoint["weight_dtype"]
    line = {"text": f"Published checkpoint: {checkpoint['description']}", "sized": sized}
    if query is None or published is None:
        return line
    if sized == published:
        line["link_text"] = "size it dequantised (bfloat16)"
        line["link_query"] = with_changes(query, weight_dtype="bfloat16")
    else:
        line["link_text"] = "size the published format"
        line["link_query"] = with_changes(query, weight_dtype=published)
    return line
