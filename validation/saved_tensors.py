"""What autograd keeps for backward, per module: the evidence behind the activation formulas.

    python -m validation.saved_tensors <case-name>    # prints a table and one JSON line

Runs one training forward of the case under `torch.autograd.graph.saved_tensors_hooks` and
attributes each saved tensor's storage (counted once, where it was first saved) to the innermost
module running when it was saved. Parameters (and their autocast copies, reported apart) are not
activations and are left out of the per-module sums.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections import defaultdict
from typing import Any

import torch
import transformers

from validation.cases import CASES_BY_NAME, Case
from validation.measure import autocast_context, build_model, input_ids


def saved_tensor_bytes(case: Case) -> dict[str, Any]:
    model = build_model(case)
    model.train()
    parameter_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    parameter_shapes = {tuple(p.shape) for p in model.parameters()}
    stack: list[str] = []
    names = {module: name for name, module in model.named_modules()}

    def push(module: torch.nn.Module, *_: Any) -> None:
        stack.append(names[module])

    def pop(module: torch.nn.Module, *_: Any) -> None:
        stack.pop()

    handles = []
    for module in names:
        handles.append(module.register_forward_pre_hook(push))
        handles.append(module.register_forward_hook(pop))

    per_scope: dict[str, int] = defaultdict(int)
    weight_copies = 0
    seen: set[int] = set()
    detail: list[tuple[str, tuple[int, ...], str, int]] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal weight_copies
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        if pointer in parameter_storages or pointer in seen or storage.nbytes() == 0:
            return tensor
        seen.add(pointer)
        if tuple(tensor.shape) in parameter_shapes and tensor.dtype != torch.float32:
            weight_copies += storage.nbytes()
            return tensor
        scope = stack[-1] if stack else "(outside modules: loss)"
        per_scope[scope] += storage.nbytes()
        detail.append((scope, tuple(tensor.shape), str(tensor.dtype), storage.nbytes()))
        return tensor

    ids = input_ids(case, case.batch_size, case.sequence_length)
    hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor)
    with hooks, autocast_context(case):
        outputs = model(input_ids=ids, labels=ids, use_cache=False)
    for handle in handles:
        handle.remove()
    del outputs
    return {
        "case": case.name,
        "tokens": case.batch_size * case.sequence_length,
        "per_scope": dict(per_scope),
        "weight_copies": weight_copies,
        "detail": detail,
    }


def main(argv: list[str]) -> int:
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    result = saved_tensor_bytes(CASES_BY_NAME[argv[0]])
    tokens = result["tokens"]
    hidden = result_hidden_size(CASES_BY_NAME[argv[0]])
    for scope, shape, dtype, nbytes in result["detail"]:
        print(f"{scope:50s} {str(shape):28s} {dtype:15s} {nbytes:>12,d}")
    print("per scope, bytes and bytes / (tokens x hidden):")
    for scope, nbytes in result["per_scope"].items():
        print(f"  {scope:50s} {nbytes:>14,d} {nbytes / (tokens * hidden):8.2f}")
    print(f"  autocast weight copies {result['weight_copies']:,d}")
    print(json.dumps({key: value for key, value in result.items() if key != "detail"}))
    return 0


def result_hidden_size(case: Case) -> int:
    config = case.config
    return int(config.get("hidden_size") or config["n_embd"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
