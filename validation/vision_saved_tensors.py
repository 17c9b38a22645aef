"""What one vision-tower encoder layer saves for backward, measured: the evidence behind the
trained tower's activations (calculator/engine/detailed.py vision_activations).

    python -m validation.vision_saved_tensors     # one JSON line: bytes per layer, per tower

Builds each tower with 1 and with 2 encoder layers (random weights, bfloat16, SDPA, CPU) and
counts the storages autograd saves in a training forward (torch.autograd.graph
saved_tensors_hooks, each storage once, parameters left out); the difference is one layer.
Run it in a validation environment with torch and transformers (not the service's venv).
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable
from typing import Any

import torch
import transformers
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    MllamaVisionConfig,
    MllamaVisionModel,
    PixtralVisionConfig,
    PixtralVisionModel,
)
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
    Qwen2_5_VisionTransformerPretrainedModel,
)


def saved_bytes(model: torch.nn.Module, inputs: dict[str, Any]) -> int:
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set[int] = set()
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        if pointer not in parameters and pointer not in seen:
            seen.add(pointer)
            total += storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(**inputs)
    return total


def one_layer(build: Callable[[int], torch.nn.Module], inputs: dict[str, Any]) -> int:
    return saved_bytes(build(2), inputs) - saved_bytes(build(1), inputs)


def clip(layers: int) -> torch.nn.Module:
    # CLIP ViT-L/14-336 (LLaVA 1.5's tower)
    config = CLIPVisionConfig(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=layers,
        num_attention_heads=16,
        image_size=336,
        patch_size=14,
        attn_implementation="sdpa",
    )
    return CLIPVisionModel(config).to(torch.bfloat16).train()


def pixtral(layers: int) -> torch.nn.Module:
    # Mistral Small 3.1's Pixtral tower
    config = PixtralVisionConfig(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=layers,
        num_attention_heads=16,
        head_dim=64,
        image_size=1540,
        patch_size=14,
        hidden_act="silu",
        attn_implementation="sdpa",
    )
    return PixtralVisionModel(config).to(torch.bfloat16).train()


def qwen2_5_vl(layers: int) -> torch.nn.Module:
    # Qwen2.5-VL-7B's ViT, every block with full attention (one window per image either way)
    config = Qwen2_5_VLVisionConfig(
        depth=layers,
        hidden_size=1280,
        intermediate_size=3420,
        num_heads=16,
        out_hidden_size=3584,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=112,
        fullatt_block_indexes=list(range(layers)),
        hidden_act="silu",
    )
    model = Qwen2_5_VisionTransformerPretrainedModel._from_config(
        config, attn_implementation="sdpa"
    )
    return model.to(torch.bfloat16).train()


def mllama(local: int, global_layers: int) -> torch.nn.Module:
    # Llama 3.2 Vision's ViT at 224 px tiles (4 x (16 x 16 + [CLS]), each tile padded to 264):
    # the layers are those of the 560 px model, on fewer positions
    config = MllamaVisionConfig(
        hidden_size=1280,
        intermediate_size=5120,
        num_hidden_layers=local,
        num_global_layers=global_layers,
        attention_heads=16,
        image_size=224,
        patch_size=14,
        max_num_tiles=4,
        intermediate_layers_indices=[0],
        vision_output_dim=2 * 1280,
    )
    model = MllamaVisionModel._from_config(config, attn_implementation="sdpa")
    return model.to(torch.bfloat16).train()


def mllama_layers() -> dict[str, int]:
    """Bytes one local and one gated global layer save, for one image of 4 tiles."""
    inputs = {
        "pixel_values": torch.randn(1, 1, 4, 3, 224, 224, dtype=torch.bfloat16),
        "aspect_ratio_ids": torch.tensor([[6]]),  # [2, 2]: four tiles
        "aspect_ratio_mask": torch.ones(1, 1, 4, dtype=torch.long),
    }
    base = saved_bytes(mllama(1, 1), inputs)
    return {
        "positions": 4 * 264,
        "bytes_per_local_layer": saved_bytes(mllama(2, 1), inputs) - base,
        "bytes_per_global_layer": saved_bytes(mllama(1, 2), inputs) - base,
    }


def main() -> int:
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    pixels = torch.randn(1, 3, 336, 336, dtype=torch.bfloat16)
    result = {
        "clip_vit_l_14_336": {
            "positions": 577,
            "bytes_per_layer": one_layer(clip, {"pixel_values": pixels}),
        },
        "pixtral_336px": {
            "positions": 576,
            "bytes_per_layer": one_layer(
                pixtral, {"pixel_values": pixels, "image_sizes": torch.tensor([[336, 336]])}
            ),
        },
        "qwen2_5_vl_vit_336px": {
            "positions": 576,
            "bytes_per_layer": one_layer(
                qwen2_5_vl,
                {
                    "hidden_states": torch.randn(576, 3 * 2 * 14 * 14, dtype=torch.bfloat16),
                    "grid_thw": torch.tensor([[1, 24, 24]]),
                },
            ),
        },
        "mllama_vit_224px": mllama_layers(),
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
