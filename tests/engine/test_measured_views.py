"""Issue 15: what real runs hold. Memory views, LoRA adapter dtype, bitsandbytes 4-bit variants
and their saved inputs, gradient accumulation, logits for every position, paged optimizers,
fused-QKV LoRA targets and gpt_bigcode. Every figure is worked out by hand here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calculator.engine import EstimateError, calculate

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "configs"
PUBLISHED = ROOT / "validation" / "published" / "configs"
LLAMA_2 = {"hf_config": json.loads((FIXTURES / "meta-llama--Llama-2-7b-hf.json").read_text())}
OCTOCODER = {"hf_config": json.loads((PUBLISHED / "bigcode--octocoder.json").read_text())}
STABLELM = {
    "hf_config": json.loads((PUBLISHED / "stabilityai--stablelm-base-alpha-3b.json").read_text())
}
MiB = 2**20


def breakdown(**payload):
    return calculate({"runtime_overhead_bytes": 0, **payload})["breakdown"]


def test_gpt_bigcode_is_read_from_its_config_with_one_key_value_head():
    # octocoder (StarCoder 15.5B): 40 layers of c_attn 6144 -> 6144 + 2 x 128 (multi-query),
    # c_proj 6144 -> 6144, c_fc 6144 -> 24576, c_proj 24576 -> 6144, all with biases, and two
    # LayerNorms; wte 49152 x 6144, wpe 8192 x 6144, ln_f; the LM head is tied
    h, inner, fused = 6144, 24576, 6144 + 2 * 128
    layer = (h * fused + fused) + (h * h + h) + (h * inner + inner) + (inner * h + h) + 4 * h
    total = 40 * layer + 49152 * h + 8192 * h + 2 * h
    result = calculate({"model": OCTOCODER, "runtime_overhead_bytes": 0})
    assert result["parameters"]["total"] == total == 15_517_456_384
    # KV cache: 40 layers x 2 x 1 head x 128 values per token, float32 (the config's torch_dtype)
    assert result["breakdown"]["kv_cache"] == 2048 * 40 * 2 * 128 * 4


def test_fused_qkv_lora_targets_are_accepted_for_the_families_that_have_them():
    # stablelm-base-alpha-3b (gpt_neox): query_key_value 4096 -> 3 x 4096, 16 layers, rank 8:
    # 8 x (4096 + 12288) x 16 = 2,097,152, the trainable count litgpt's resource tables print
    result = calculate(
        {
            "model": STABLELM,
            "mode": "training",
            "finetuning": "lora",
            "lora_rank": 8,
            "lora_target_modules": ["query_key_value"],
        }
    )
    assert result["parameters"]["trainable"] == 8 * (4096 + 12288) * 16 == 2_097_152


def test_a_name_the_family_lacks_is_refused_naming_its_own():
    with pytest.raises(EstimateError) as caught:
        calculate(
            {
                "model": STABLELM,
                "mode": "training",
                "finetuning": "lora",
                "lora_target_modules": ["q_proj"],
            }
        )
    assert caught.value.field == "lora_target_modules"
    assert "query_key_value" in str(caught.value)


def test_memory_views():
    allocated = calculate({"model": LLAMA_2, "memory_view": "allocated"})
    device = calculate({"model": LLAMA_2, "memory_view": "device"})
    default = calculate({"model": LLAMA_2})
    assert allocated["breakdown"]["runtime_overhead"] == 0
    reserved = calculate({"model": LLAMA_2, "memory_view": "reserved"})
    # nvidia-smi: the caching allocator's segments (the reserved view's rounding) and the CUDA
    # context beside them
    assert device["breakdown"]["runtime_overhead"] == (
        reserved["breakdown"]["runtime_overhead"] + 1343 * MiB
    )
    assert reserved["breakdown"]["runtime_overhead"] > 0
    assert default["breakdown"]["runtime_overhead"] == 1024 * MiB  # engine 2.3's default
    given = calculate({"model": LLAMA_2, "memory_view": "device", "runtime_overhead_bytes": 5})
    assert given["breakdown"]["runtime_overhead"] == 5


def test_nf4_without_double_quantisation_keeps_a_float32_absmax_per_64_weights():
    nf4 = breakdown(model=LLAMA_2, weight_dtype="nf4")
    single = breakdown(model=LLAMA_2, weight_dtype="nf4_no_dq")
    fp4 = breakdown(model=LLAMA_2, weight_dtype="fp4")
    # Llama-2-7B's layer matrices: 32 x (4 x 4096^2 + 3 x 4096 x 11008) = 6,476,005,376 weights;
    # double quantisation: 1 byte per 64 plus 4 per 16,384; without: 4 bytes per 64. Every
    # matrix has a multiple of 16,384 weights
    weights = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)
    assert single["weights"] - nf4["weights"] == weights // 64 * 4 - (
        weights // 64 + weights // 16384 * 4
    )
    assert fp4["weights"] == single["weights"]


def test_sixteen_bit_lora_adapters_halve_their_gradients_and_states():
    payload = {"model": LLAMA_2, "mode": "training", "finetuning": "lora", "lora_rank": 8}
    fp32 = breakdown(**payload)
    bf16 = breakdown(**payload, lora_adapter_dtype="bfloat16")
    # all-linear rank 8: 32 x 8 x (4 x 8192 + 3 x 15104) = 19,988,480 adapter parameters
    adapters = 32 * 8 * (4 * (4096 + 4096) + 3 * (4096 + 11008))
    assert fp32["gradients"] == adapters * 4 and bf16["gradients"] == adapters * 2
    assert bf16["optimizer_states"] == adapters * 2 * 2  # AdamW zeros_like(param): bf16
    assert fp32["weights"] - bf16["weights"] == adapters * 2


def test_old_bitsandbytes_keeps_every_4bit_layers_input():
    payload = {
        "model": LLAMA_2,
        "mode": "training",
        "finetuning": "qlora",
        "batch_size": 1,
        "sequence_length": 1024,
        "lora_target_modules": ["q_proj", "v_proj"],
    }
    current = breakdown(**payload)
    old = breakdown(**payload, bnb_4bit_saves_inputs=True)
    # per token and layer: the two norm outputs (2 x 4096 x 2 B), o_proj's input (4096 x 2 B),
    # down_proj's input (11008 x 2 B); 1024 tokens, 32 layers
    per_token_layer = 2 * 4096 * 2 + 4096 * 2 + 11008 * 2
    assert old["activations"] - current["activations"] == 1024 * 32 * per_token_layer
    # a 16-bit LoRA base is not a bitsandbytes layer: the flag changes nothing
    lora = {**payload, "finetuning": "lora", "weight_dtype": "bfloat16"}
    assert breakdown(**lora) == breakdown(**lora, bnb_4bit_saves_inputs=True)


def test_gradient_accumulation_keeps_the_gradients_through_backward():
    payload = {"model": LLAMA_2, "mode": "training", "batch_size": 1, "sequence_length": 4096}
    one = breakdown(**payload)
    accumulated = breakdown(**payload, gradient_accumulation_steps=4)
    # full fine-tuning in bf16: 6,738,415,616 gradients of 2 bytes, now alive at the peak too
    assert accumulated["gradients"] == one["gradients"] == 6_738_415_616 * 2
    gradients = 6_738_415_616 * 2
    total = sum(accumulated.values()) - sum(one.values())
    # the peak was weights + states + max(activations, gradients): now both add up
    assert total == min(one["activations"] + gradients, gradients)


def test_logits_for_every_position():
    last = breakdown(model=LLAMA_2, sequence_length=100)
    every = breakdown(model=LLAMA_2, sequence_length=100, inference_logits="all")
    # the LM head runs after the layers' working set is freed (no_grad): its input (the final
    # norm's output, 100 x 4,096 float16) and 100 positions of 32,000 float16 logits plus the
    # last one's float32 copy, 7,347,200 B, stay below the layers' peak, which is what the
    # "last" figure holds beside its one row of logits (32,000 x (2 + 4) B)
    head = 100 * 4096 * 2 + 100 * 32000 * 2 + 32000 * 4
    layers = last["activations"] - 32000 * (2 + 4)
    assert head == 7_347_200 < layers
    assert every["activations"] == layers
    # with a 256,000-token vocabulary the head's phase is the peak: 100 x (4,096 x 2 + 256,000
    # x 2) + 256,000 x 4 bytes
    wide = {"hf_config": {**LLAMA_2["hf_config"], "vocab_size": 256000}}
    every = breakdown(model=wide, sequence_length=100, inference_logits="all")
    assert every["activations"] == 100 * (4096 * 2 + 256000 * 2) + 256000 * 4


def test_paged_optimizer_states_are_outside_the_allocator():
    payload = {
        "model": LLAMA_2,
        "mode": "training",
        "finetuning": "qlora",
        "lora_rank": 8,
        "lora_target_modules": ["q_proj", "v_proj"],
        "optimizer": "paged_adamw",
        "lora_adapter_dtype": "bfloat16",
    }
    adapters = 32 * 2 * 8 * (4096 + 4096)
    # bitsandbytes' 32-bit PagedAdamW: two float32 states whatever the adapters' dtype
    assert breakdown(**payload)["optimizer_states"] == adapters * 2 * 4
    # Optimizer8bit.get_state_buffer pages only parameters of 1e5 values or more: rank-8 A and B
    # on 4096-wide projections are 32,768 values, ordinary device tensors that
    # max_memory_allocated counts
    assert breakdown(**payload, memory_view="allocated")["optimizer_states"] == adapters * 2 * 4
    # rank 32: 131,072 values each, all paged
    rank_32 = {**payload, "lora_rank": 32, "memory_view": "allocated"}
    assert breakdown(**rank_32)["optimizer_states"] == 0
    # full fine-tuning: only the 65 RMSNorm weights (4096 values each) stay on the device
    full = {"model": LLAMA_2, "mode": "training", "optimizer": "paged_adamw"}
    assert breakdown(**full, memory_view="allocated")["optimizer_states"] == 65 * 4096 * 2 * 4


NF4_PREFILL = {
    "model": LLAMA_2,
    "weight_dtype": "nf4_no_dq",
    "batch_size": 1,
    "sequence_length": 58,
    "memory_view": "allocated",
}


def test_float16_quantised_4bit_weights_are_dequantised_then_cast():
    # bitsandbytes 0.41-0.42 MatMul4Bit.forward: F.dequantize_4bit(B, quant_state).to(A.dtype)
    # with quant_state.dtype float16 (Params4bit.cuda: self.data.contiguous().half()): the
    # float16 matrix and its bfloat16 cast live together. Largest 4-bit matrix of Llama 2 7B
    # (transformers keeps the LM head 16-bit): gate/up/down_proj, 4096 x 11008
    largest = 4096 * 11008
    compute = breakdown(**NF4_PREFILL)
    cast = breakdown(**NF4_PREFILL, bnb_4bit_dequant_path="float16_then_bfloat16")
    fp32 = breakdown(**NF4_PREFILL, bnb_4bit_dequant_path="float16_then_float32")
    assert cast["activations"] - compute["activations"] == largest * 2
    assert fp32["activations"] - compute["activations"] == largest * 4
    assert cast["weights"] == compute["weights"]
    # one token takes the gemv kernel (matmul_4bit: A.numel() == A.shape[-1]): no copy at all
    decode = {**NF4_PREFILL, "sequence_length": 1}
    assert breakdown(**decode) == breakdown(**decode, bnb_4bit_dequant_path="float16_then_float32")


def test_a_quantised_lm_head_is_stored_4bit_and_is_the_largest_matrix_dequantised():
    head = 32000 * 4096
    kept = breakdown(**NF4_PREFILL, bnb_4bit_dequant_path="float16_then_bfloat16")
    quantised = breakdown(
        **NF4_PREFILL, bnb_4bit_dequant_path="float16_then_bfloat16", quantise_lm_head=True
    )
    # nf4 without double quantisation: half a byte per value plus a float32 absmax per 64
    assert kept["weights"] - quantised["weights"] == head * 2 - (head // 2 + head // 64 * 4)
    # the LM head (131 M values) is now the largest 4-bit matrix: 2 + 2 bytes of it, in place of
    # the MLP matrix's
    assert quantised["activations"] - kept["activations"] == (head - 4096 * 11008) * 4
    # 16-bit weights have no quantised LM head
    bf16 = {**NF4_PREFILL, "weight_dtype": "bfloat16"}
    assert breakdown(**bf16) == breakdown(**bf16, quantise_lm_head=True)


def test_an_unknown_dequantisation_path_is_refused():
    with pytest.raises(EstimateError):
        calculate({**NF4_PREFILL, "bnb_4bit_dequant_path": "int8"})


def test_adafactor_keeps_a_row_and_a_column_vector_per_matrix():
    # transformers.optimization.Adafactor, beta1=None: exp_avg_sq_row (out) + exp_avg_sq_col
    # (in) per 2-D parameter, exp_avg_sq (numel) per 1-D parameter, float32
    payload = {"model": LLAMA_2, "mode": "training", "batch_size": 1, "sequence_length": 128}
    per_layer = 4 * (4096 + 4096) + 2 * (4096 + 11008) + (11008 + 4096)
    tables = 2 * (32000 + 4096)  # embed_tokens and the untied lm_head
    norms = (2 * 32 + 1) * 4096
    full = breakdown(**payload, optimizer="adafactor")
    assert full["optimizer_states"] == (32 * per_layer + tables + norms) * 4
    # LoRA rank 8 on q_proj and v_proj: A (8 x 4096) and B (4096 x 8) each, per layer
    lora = breakdown(
        **payload,
        optimizer="adafactor",
        finetuning="lora",
        lora_rank=8,
        lora_target_modules=["q_proj", "v_proj"],
    )
    assert lora["optimizer_states"] == 32 * 2 * ((8 + 4096) + (4096 + 8)) * 4


def test_the_standard_method_refuses_adafactor_by_field():
    with pytest.raises(EstimateError) as caught:
        calculate(
            {"model": LLAMA_2, "mode": "training", "method": "standard", "optimizer": "adafactor"}
        )
    assert caught.value.field == "optimizer"


def test_the_caching_allocator_rounds_and_packs_as_its_source_says():
    # c10/cuda/CUDACachingAllocator.cpp: 512-byte blocks; at most 1 MiB from 2 MiB segments,
    # below 10 MiB from 20 MiB segments, from 10 MiB a segment of its own rounded to 2 MiB
    from calculator.engine.memory import caching_allocator_reserved

    assert caching_allocator_reserved([(100, 1)]) == 2 * MiB
    assert caching_allocator_reserved([(MiB, 3)]) == 4 * MiB  # 3 MiB packed into two segments
    assert caching_allocator_reserved([(MiB + 1, 1)]) == 20 * MiB
    assert caching_allocator_reserved([(4 * MiB, 6)]) == 40 * MiB  # 24 MiB into two segments
    assert caching_allocator_reserved([(10 * MiB, 1)]) == 10 * MiB
    assert caching_allocator_reserved([(10 * MiB + 1, 2)]) == 2 * 12 * MiB


def test_the_reserved_view_adds_what_the_allocator_rounds_up():
    payload = {"model": LLAMA_2, "batch_size": 1, "sequence_length": 512}
    allocated = calculate({**payload, "memory_view": "allocated"})["breakdown"]
    reserved = calculate({**payload, "memory_view": "reserved"})["breakdown"]
    assert {k: v for k, v in reserved.items() if k != "runtime_overhead"} == {
        k: v for k, v in allocated.items() if k != "runtime_overhead"
    }
    # bf16 Llama 2 7B: every matrix and the embeddings are whole multiples of 2 MiB; the 65
    # RMSNorm weights (4096 x 2 B) share one 2 MiB segment; each layer's K and V (512 tokens x
    # 4096 x 2 B = 4 MiB) go into 20 MiB segments: 64 x 4 MiB in 13; the prefill's working set
    # is one block rounded up to 2 MiB
    norms = 2 * MiB - 65 * 4096 * 2
    cache = 13 * 20 * MiB - 64 * 4 * MiB
    activations = -(-allocated["activations"] // (2 * MiB)) * 2 * MiB - allocated["activations"]
    assert reserved["runtime_overhead"] == norms + cache + activations


LORA_QV = {
    "model": LLAMA_2,
    "mode": "training",
    "finetuning": "lora",
    "lora_rank": 8,
    "lora_target_modules": ["q_proj", "v_proj"],
    "batch_size": 1,
    "sequence_length": 1024,
}
TOKENS = 1024
# what one Llama 2 7B layer saves under LoRA (frozen base, flash attention, bf16 compute): the two
# RMSNorms' float32 inputs; q, k, v and the attention output; the float32 logsumexp; silu's input,
# its output and up_proj's output; and lora_A's float32 input and lora_B's input on q and v
LAYER_SAVES = (
    TOKENS * 4096 * 2 * 4
    + TOKENS * 3 * 4096 * 2
    + TOKENS * 4096 * 2
    + 32 * TOKENS * 4
    + TOKENS * 11008 * 3 * 2
    + 2 * TOKENS * (4096 + 8) * 4
)
LAYER_INPUT = TOKENS * 4096 * 2


def test_checkpointing_one_layer_in_k_keeps_the_others_whole():
    # torchtitan _apply_ac_to_transformer_block: layers counted from 1, count % k == 0 wrapped;
    # k = 2 over 32 layers: 16 keep their input only, 16 keep everything, one is recomputed,
    # once backward reaches it: after the loss's float32 tensors (1,024 x 32,000 x 12 B, more
    # than a layer's saves) are freed, so the recomputed layer adds nothing to the peak
    assert TOKENS * 32_000 * 12 > LAYER_SAVES
    every = breakdown(**LORA_QV, gradient_checkpointing=True)
    second = breakdown(**LORA_QV, gradient_checkpointing=True, checkpoint_every_k_layers=2)
    none = breakdown(**LORA_QV)
    assert second["activations"] - every["activations"] == 16 * (LAYER_SAVES - LAYER_INPUT)
    assert none["activations"] - second["activations"] == 16 * LAYER_SAVES - 16 * LAYER_INPUT
    # k larger than the layers: nothing is checkpointed, nothing recomputed
    assert breakdown(**LORA_QV, gradient_checkpointing=True, checkpoint_every_k_layers=33) == none


def test_recomputing_the_core_attention_drops_the_scores():
    # Megatron --recompute-granularity selective: q, k, v and the output stay; eager attention's
    # float32 softmax and its bf16 cast (32 heads x 1024 x 1024, 6 B) are recomputed per layer
    eager = {**LORA_QV, "attention_implementation": "eager"}
    kept = breakdown(**eager)
    recomputed = breakdown(**eager, recompute_core_attention=True)
    assert kept["activations"] - recomputed["activations"] == 32 * (32 * TOKENS * TOKENS * 6)
    # flash keeps no scores: only its float32 logsumexp goes
    flash = (
        breakdown(**LORA_QV)["activations"]
        - breakdown(**LORA_QV, recompute_core_attention=True)["activations"]
    )
    assert flash == 32 * (32 * TOKENS * 4)


def test_checkpointing_one_layer_in_k_without_checkpointing_says_it_changes_nothing():
    result = calculate({**LORA_QV, "checkpoint_every_k_layers": 2})
    assert result["breakdown"] == calculate(LORA_QV)["breakdown"]
    assert any("checkpoint_every_k_layers applies with" in note for note in result["notes"])


MISTRAL = {"hf_config": json.loads((PUBLISHED / "mistralai--Mistral-7B-v0.1.json").read_text())}
LITGPT_QLORA = {
    "mode": "training",
    "finetuning": "qlora",
    "weight_dtype": "nf4_no_dq",
    "batch_size": 2,
    "sequence_length": 512,
    "lora_rank": 32,
    "lora_target_modules": ["q_proj", "v_proj"],
    "lora_adapter_dtype": "bfloat16",
    "optimizer": "paged_adamw",
    "bnb_4bit_saves_inputs": True,
    "bnb_4bit_dequant_path": "float16_then_bfloat16",
    "quantise_lm_head": True,
}
LITGPT_LORA = {**LITGPT_QLORA, "finetuning": "lora", "weight_dtype": "bfloat16"}


# litgpt's LoRAQKVLinear without dropout: one lora_A (2 x 32 rows) keeps the input once and conv1d
# its 64 outputs, (4096 + 64) x 2 B per token and layer, where separate q_proj and v_proj adapters
# keep 2 x (4096 + 32) x 2 B
FUSED_LORA_SAVING = 2 * (4096 + 32) * 2 - (4096 + 64) * 2


def test_litgpt_fused_qkv_keeps_the_whole_qkv_output_behind_v():
    # litgpt model.py (4a9b7e62) CausalSelfAttention: q and k are new tensors (the rotary
    # torch.cat), v a view of the one qkv output; SDPA keeps v, so all 3 x 4096 values per token
    # stay where transformers' v_proj output keeps 4096: 8192 more bf16 values per token and
    # layer, 1024 tokens, 32 layers
    payload = {"model": LLAMA_2, **LITGPT_LORA}
    separate = breakdown(**payload)
    fused = breakdown(**payload, fused_qkv_attention=True)
    per_token_layer = 8192 * 2 - FUSED_LORA_SAVING
    assert fused["activations"] - separate["activations"] == 1024 * 32 * per_token_layer
    # QLoRA under bitsandbytes 0.41: besides, o_proj's input is `y.reshape(B, T, C)`, a view of the
    # output SDPA keeps, not a copy: 4096 bf16 values less per token and layer
    qlora = {"model": LLAMA_2, **LITGPT_QLORA}
    difference = (
        breakdown(**qlora, fused_qkv_attention=True)["activations"]
        - breakdown(**qlora)["activations"]
    )
    assert difference == 1024 * 32 * (8192 * 2 - 4096 * 2 - FUSED_LORA_SAVING)


def test_litgpt_fused_qkv_expands_grouped_kv_heads_before_sdpa():
    # Mistral 7B: 32 query heads, 8 KV heads of 128. litgpt expands K and V to 32 heads
    # (`k.expand(...)`, then reshape copies) before SDPA, which keeps them: (4096 - 1024) more
    # values for each of K and V per token, 32 layers, 1024 tokens, bf16. v_proj's adapter reads
    # 1024 outputs, but lora_A sees the same 4096 inputs: the adapter saving is as for Llama 2
    payload = {"model": MISTRAL, **LITGPT_LORA}
    separate = breakdown(**payload)
    fused = breakdown(**payload, fused_qkv_attention=True)
    per_token_layer = 2 * (4096 - 1024) * 2 - FUSED_LORA_SAVING
    assert fused["activations"] - separate["activations"] == 1024 * 32 * per_token_layer


def test_litgpt_loop_keeps_the_previous_graph_and_old_bitsandbytes_inputs():
    payload = {"model": LLAMA_2, **LITGPT_QLORA, "fused_qkv_attention": True}
    dropped = breakdown(**payload)
    kept = breakdown(**payload, previous_graph_alive=True)
    tokens, vocab = 1024, 32000
    # the engine's loss: three float32 b*s*V tensors at LogSoftmaxBackward0
    loss = tokens * vocab * 3 * 4
    # at the end of the next forward: the previous float32 logits, the new bf16 chunks and their
    # float32 cast; and the previous micro-batch's MatMul4Bit ctx.tensors of 32 layers: both norm
    # outputs (2 x 4096) and down_proj's input (11008), bf16 (o_proj's input is SDPA's output)
    logits = tokens * vocab * (4 + 2 + 4)
    inputs = 32 * tokens * (2 * 4096 + 11008) * 2
    assert kept["activations"] - dropped["activations"] == logits + inputs - loss
    notes = calculate({"runtime_overhead_bytes": 0, **payload, "previous_graph_alive": True})[
        "notes"
    ]
    assert any("4-bit layers' inputs are alive beside the new activations" in n for n in notes)
    # a 16-bit base keeps no ctx attributes: 10 B of logits per b*s*V stay below the loss's 12
    lora = {"model": LLAMA_2, **LITGPT_LORA, "fused_qkv_attention": True}
    assert breakdown(**lora, previous_graph_alive=True) == breakdown(**lora)
    # with gradient checkpointing the forward builds no graph inside the layers
    checkpointed = {**payload, "gradient_checkpointing": True}
    assert breakdown(**checkpointed, previous_graph_alive=True) == breakdown(**checkpointed)


def test_lora_dropout_keeps_the_dropped_input_and_its_mask_per_adapter():
    # PEFT-style separate q_proj and v_proj adapters, bf16, rank 32: with dropout each lora_A
    # keeps its own dropped copy (4096 x 2 B, as the undropped input before) and dropout its bool
    # mask (4096 x 1 B): 2 adapters x 4096 B more per token and layer, 1024 tokens, 32 layers
    payload = {"model": LLAMA_2, **LITGPT_LORA}
    plain = breakdown(**payload)
    dropped = breakdown(**payload, lora_dropout=True)
    assert dropped["activations"] - plain["activations"] == 1024 * 32 * 2 * 4096 * 1


def test_litgpt_fused_qkv_lora_reads_its_dropped_input_once():
    # litgpt LoRAQKVLinear: one lora_A (2 x 32 rows for q and v) reads one dropped copy of the
    # input with one mask; conv1d keeps lora_A's 64 outputs. Per token and layer:
    # (4096 x 2 + 4096 x 1) + 64 x 2 where separate adapters keep 2 x ((4096 x 2 + 4096) + 32 x 2)
    payload = {"model": LLAMA_2, **LITGPT_LORA, "lora_dropout": True}
    fused_attention = 1024 * 32 * 8192 * 2  # the qkv output behind v (the test above)
    separate = breakdown(**payload)
    fused = breakdown(**payload, fused_qkv_attention=True)
    fused_lora = 4096 * 2 + 4096 + 64 * 2
    separate_lora = 2 * (4096 * 2 + 4096 + 32 * 2)
    difference = fused["activations"] - separate["activations"]
    assert difference == fused_attention + 1024 * 32 * (fused_lora - separate_lora)
