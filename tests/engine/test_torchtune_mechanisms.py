"""What torchtune's single-device recipes change (validation/published: the torchtune README's
optimization flags): the chunked cross-entropy, eager or compiled, activation offloading,
the optimizer step fused into backward, and paged optimizer states under memory_view
reserved. Every figure is worked out by hand from the libraries' code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calculator.engine import EstimateError, calculate

FIXTURES = Path(__file__).parent / "fixtures" / "configs"
# Llama-2-7B: 32 layers, hidden 4096, vocabulary 32,000, an untied LM head
LLAMA_2 = {"hf_config": json.loads((FIXTURES / "meta-llama--Llama-2-7b-hf.json").read_text())}
TOKENS = 1 * 512
VOCAB, HIDDEN, LAYERS = 32_000, 4096, 32
LORA = {
    "model": LLAMA_2,
    "mode": "training",
    "runtime_overhead_bytes": 0,
    "finetuning": "lora",
    "lora_target_modules": ["q_proj", "v_proj"],
    "batch_size": 1,
    "sequence_length": 512,
}
FULL_BF16 = {
    "model": LLAMA_2,
    "mode": "training",
    "runtime_overhead_bytes": 0,
    "weight_dtype": "bfloat16",
    "gradient_checkpointing": True,
    "batch_size": 1,
    "sequence_length": 512,
}


def breakdown(**payload):
    return calculate(payload)["breakdown"]


def test_the_chunked_cross_entropy_keeps_one_float32_chunk_at_a_time():
    plain = breakdown(**LORA)["activations"]
    # plain: log_softmax's float32 output, the NLL gradient into it and its own gradient, three
    # float32 tokens x vocabulary tensors (12 B per logit). CEWithChunkedOutputLoss, 8 chunks:
    # at the end of forward every chunk's bf16 logits (2 B), every chunk's saved float32
    # log_softmax (4 B) and the last chunk's float32 copy (4 / 8 B): 6.5 B per logit
    chunked = breakdown(**LORA, cross_entropy="chunked")["activations"]
    assert plain - chunked == TOKENS * VOCAB * (12 - (2 + 4 + 4 / 8)) == 90_112_000
    # compiled: only the bf16 logits saved (2 B) and one chunk's bf16 gradient (2 / 8 B)
    compiled = breakdown(**LORA, cross_entropy="chunked_compiled")["activations"]
    assert plain - compiled == TOKENS * VOCAB * (12 - (2 + 2 / 8)) == 159_744_000


def test_activation_offloading_leaves_the_forward_stash_of_checkpointed_inputs():
    checkpointed = {**LORA, "gradient_checkpointing": True}
    kept = breakdown(**checkpointed)["activations"]
    offloaded = breakdown(**checkpointed, activation_offloading=True)["activations"]
    # 32 checkpointed inputs of tokens x hidden bf16 each; OffloadActivations keeps the last 5
    # tensors packed (max_fwd_stash_size) on the GPU until their copies finish
    assert kept - offloaded == (LAYERS - 5) * TOKENS * HIDDEN * 2 == 113_246_208


def test_the_optimizer_step_in_backward_keeps_one_gradient():
    lines = breakdown(**FULL_BF16, optimizer_in_backward=True)
    # register_optim_in_bwd_hooks: each gradient is stepped and freed as soon as it is whole;
    # the largest is the embedding (or the LM head), 32,000 x 4096 bf16 values
    assert lines["gradients"] == VOCAB * HIDDEN * 2 == 262_144_000
    # the optimizer states stay whole: AdamW's two bf16 states of every parameter
    assert lines["optimizer_states"] == breakdown(**FULL_BF16)["optimizer_states"]


def test_the_optimizer_step_in_backward_refuses_gradient_accumulation():
    with pytest.raises(EstimateError) as caught:
        calculate({**FULL_BF16, "optimizer_in_backward": True, "gradient_accumulation_steps": 2})
    assert caught.value.field == "optimizer_in_backward"


def test_paged_states_are_outside_the_reserved_segments_too():
    # bitsandbytes pages states with cudaMallocManaged, which torch's caching allocator never
    # sees: max_memory_reserved leaves them out as max_memory_allocated does; the 65 RMSNorm
    # weights (4096 values, under the 1e5 paging threshold) keep two float32 states on the GPU
    payload = {**FULL_BF16, "optimizer": "paged_adamw", "runtime_overhead_bytes": None}
    lines = breakdown(**payload, memory_view="reserved")
    assert lines["optimizer_states"] == 65 * 4096 * 2 * 4 == 2_129_920


# QLoRA Llama-2-7B (q and v, rank 8) under FSDP FULL_SHARD over 2 GPUs, no runtime overhead
FSDP_QLORA_2_GPUS = {
    "model": LLAMA_2,
    "mode": "training",
    "runtime_overhead_bytes": 0,
    "finetuning": "qlora",
    "weight_dtype": "nf4",
    "lora_target_modules": ["q_proj", "v_proj"],
    "lora_rank": 8,
    "num_gpus": 2,
    "zero_stage": 3,
    "sharding": "fsdp",
}


def test_fsdp_shards_packed_four_bit_data_and_keeps_the_quant_states_whole():
    # FSDP FULL_SHARD over 2 GPUs of a QLoRA Llama-2-7B (bitsandbytes NF4 with double
    # quantisation, packed into bnb_4bit_quant_storage): the flattened parameters, the packed
    # half byte a weight, the bf16 embeddings, LM head and norms, and the float32 adapters are
    # halved; each module's quant_state (a uint8 absmax per 64 weights, a float32 absmax per 256
    # blocks) is not a parameter and stays whole on both GPUs; the root unit (embeddings and LM
    # head) and two decoder layers (computing, prefetched) are gathered, packed
    payload = FSDP_QLORA_2_GPUS
    values = LAYERS * (4 * HIDDEN * HIDDEN + 3 * HIDDEN * 11008)
    packed = values // 2
    quant_states = values // 64 + values // 16384 * 4
    root = 2 * VOCAB * HIDDEN * 2
    norms = 65 * HIDDEN * 2
    adapters = LAYERS * 2 * 8 * (HIDDEN + HIDDEN) * 4
    gathered = root + 2 * packed // LAYERS
    expected = (packed + root + norms) // 2 + quant_states + adapters // 2 + gathered
    assert breakdown(**payload)["weights"] == expected == 2_719_232_000


def test_fsdp_cpu_offload_copies_the_largest_units_shard_to_the_gpu():
    # FSDP CPUOffload(offload_params=True) (torch 2.2/2.3 FSDP1: _runtime_utils._unshard runs
    # FlatParamHandle.pre_unshard on the pre-unshard stream, flat_param_to(device) copies the
    # host shard to the GPU before the all-gather): the shards and adapters live on the host;
    # the GPU keeps the whole quant states, the gathered root unit and two packed layers, and
    # the pre-unshard stream's block, sized by the largest unit's shard (here the root unit's:
    # bf16 embeddings and LM head, over 2 GPUs)
    payload = {**FSDP_QLORA_2_GPUS, "offload": "optimizer_and_parameters"}
    values = LAYERS * (4 * HIDDEN * HIDDEN + 3 * HIDDEN * 11008)
    packed = values // 2
    quant_states = values // 64 + values // 16384 * 4
    root = 2 * VOCAB * HIDDEN * 2
    gathered = root + 2 * packed // LAYERS
    shard_copy = max(root, packed // LAYERS) // 2
    expected = quant_states + gathered + shard_copy
    assert breakdown(**payload)["weights"] == expected == 1_091_575_808
    assert any("CPUOffload" in note for note in calculate(payload)["notes"])
    # the same copy under DeepSpeed's ZeRO-3 offload_param is not FSDP's
    deepspeed = breakdown(**{**payload, "sharding": "deepspeed"})["weights"]
    assert deepspeed != expected
