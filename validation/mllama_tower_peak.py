"""The Mllama ViT's inference peak, measured: the evidence behind its kept encoder outputs, patch
embeddings and tile mask (calculator/engine/memory.py vision_activations).

    python -m validation.mllama_tower_peak     # one JSON line: peak bytes per layer count

Builds Llama 3.2 Vision's tower at 224 px tiles (validation.vision_saved_tensors.mllama: 4
tiles of 16 x 16 patches and [CLS], each padded to 264 positions) with a few local and global
layers (random weights, bfloat16, SDPA, CPU) and tracks the bytes of the storages its
operators create while they are referenced (a TorchDispatchMode; parameters and buffers left
out; the pixel input is counted, 1,204,224 bytes). Run it in a validation environment with
torch and transformers (not the service's venv).
"""

from __future__ import annotations

import json
import sys
import warnings
import weakref
from typing import Any

import torch
import transformers
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from validation.vision_saved_tensors import mllama


class LiveBytes(TorchDispatchMode):
    """The peak of the bytes of storages that some operator output still references."""

    def __init__(self, skip: set[int]) -> None:
        super().__init__()
        self.skip = skip
        self.references: dict[int, int] = {}
        self.sizes: dict[int, int] = {}
        self.live = 0
        self.peak = 0

    def _release(self, pointer: int) -> None:
        self.references[pointer] -= 1
        if not self.references[pointer]:
            self.live -= self.sizes.pop(pointer)
            del self.references[pointer]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            pointer = storage.data_ptr()
            if not pointer or pointer in self.skip:
                continue
            if pointer not in self.references:
                self.references[pointer] = 0
                self.sizes[pointer] = storage.nbytes()
                self.live += storage.nbytes()
                self.peak = max(self.peak, self.live)
            self.references[pointer] += 1
            weakref.finalize(tensor, self._release, pointer)
        return out


def peak_bytes(local: int, global_layers: int, inputs: dict[str, Any]) -> int:
    model = mllama(local, global_layers).eval()
    skip = {p.untyped_storage().data_ptr() for p in model.parameters()}
    skip |= {b.untyped_storage().data_ptr() for b in model.buffers()}
    mode = LiveBytes(skip)
    with torch.no_grad(), mode:
        model(**inputs)
    return mode.peak


def main() -> int:
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    inputs = {
        "pixel_values": torch.randn(1, 1, 4, 3, 224, 224, dtype=torch.bfloat16),
        "aspect_ratio_ids": torch.tensor([[6]]),  # [2, 2]: four tiles
        "aspect_ratio_mask": torch.ones(1, 1, 4, dtype=torch.long),
    }
    layers = [(2, 1), (3, 1), (2, 2)]
    result: dict[str, Any] = {
        f"local_{local}_global_{global_layers}": peak_bytes(local, global_layers, inputs)
        for local, global_layers in layers
    }
    result["transformers"] = transformers.__version__
    result["torch"] = torch.__version__
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
