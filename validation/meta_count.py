"""Parameter counts of full-size configs as transformers instantiates them, on the meta device.

    python -m validation.meta_count <request.json>   # {"slug": config, ...} -> one JSON line

Tied weights count once (`model.parameters()` yields a shared tensor once). The multimodal
configs the engine knows (calculator/engine/vision.py VISION_MODELS: Gemma 3, LLaVA, Mistral 3,
Qwen2.5-VL, Qwen3-VL, Llama 3.2 Vision) are counted whole (`AutoModelForImageTextToText`, the
vision tower and projector included), as the engine counts them; another config with a
`text_config` is counted for its text model.
"""

from __future__ import annotations

import json
import sys
import warnings
from typing import Any

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

# calculator/engine/vision.py VISION_MODELS (this script runs outside the service's venv)
VISION_MODELS = ("gemma3", "llava", "mistral3", "qwen2_5_vl", "qwen3_vl", "mllama")


def meta_count(config: dict[str, Any]) -> dict[str, Any]:
    note = None
    if config.get("model_type") in VISION_MODELS:
        with torch.device("meta"):
            model = AutoModelForImageTextToText.from_config(AutoConfig.for_model(**config))
        count = sum(p.numel() for p in model.parameters())
        return {"count": count, "note": "whole multimodal model: vision tower and projector"}
    if isinstance(config.get("text_config"), dict):
        text_config = dict(config["text_config"])
        text_config.setdefault("model_type", f"{config['model_type']}_text")
        config = text_config
        note = "text model of a multimodal config"
    hf_config = AutoConfig.for_model(**config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    return {"count": sum(p.numel() for p in model.parameters()), "note": note}


def main(argv: list[str]) -> int:
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    with open(argv[0]) as request:
        configs: dict[str, dict[str, Any]] = json.load(request)
    counts: dict[str, dict[str, Any]] = {}
    for slug, config in configs.items():
        try:
            counts[slug] = meta_count(config)
        except Exception as error:  # reported in the table, the other configs still count
            counts[slug] = {"error": f"{type(error).__name__}: {error}"[:300]}
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
