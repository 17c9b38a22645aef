"""The `detailed` method: architecture-aware memory per GPU, its parts (engine/memory.py lays
them out on the GPUs of a plan and makes the answer).

Each formula lives in one function with its source; each constant below is a named,
calibratable figure saying what it models (an accuracy harness measures real PyTorch runs and
tunes them). Sizes are computed exactly (int / Fraction) and rounded once per breakdown line.
Activations are counted for Hugging Face transformers' PyTorch modules (RMSNorm upcast, SiLU,
SDPA, PEFT LoRA layers), the code most people run. The training coefficients were checked with
torch.autograd.graph.saved_tensors_hooks on tiny Llama and Mixtral models (transformers 5.24,
peft 0.21, torch 2.13 CPU): what autograd saves equals these formulas up to a few per-token
scalars, except the loss term, which deliberately models the peak (logits and their gradient).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from calculator.engine.architecture import (
    Architecture,
    LinearLayer,
    ParameterBreakdown,
    StateLayers,
    lora_target_layers,
)
from calculator.engine.checkpoint import keeps_layer_16_bit
from calculator.engine.dtypes import (
    BNB_4BIT_DTYPES,
    ELEMENT_BYTES,
    LINEAR_MODULE_ONLY_DTYPES,
    UNQUANTISED_BYTES,
    embedding_bytes,
    linear_weight_bytes,
    other_parameter_bytes,
)
from calculator.engine.inputs import EstimateInputs
from calculator.engine.parallel import Layout, Stage

# --- training: activations saved for backward, per layer ------------------------------------
# HF LlamaRMSNorm: `hidden.to(float32)` is saved by pow() and mul() for backward
RMSNORM_FP32_INPUT_BYTES = 4
# ... and two tensors in the residual dtype, saved only for weight gradients: the normalised
# input (by `self.weight * x`) and the norm's output (by the projections that read it)
RMSNORM_WEIGHT_GRADIENT_COPIES = 2
# nn.LayerNorm (fused native_layer_norm) saves its input in the residual dtype (plus per-token
# mean/rstd), and the projection that reads it saves its output: 2 x residual bytes per element
# (validation saved_tensors of gpt2-train-b4-s256-adamw-fp32-sdpa: 4.02 + 4.00 B per token-h)
LAYERNORM_INPUT_COPIES = 1
LAYERNORM_WEIGHT_GRADIENT_COPIES = 1
# norms per decoder layer (input_layernorm, post_attention_layernorm)
NORMS_PER_LAYER = 2
# gated MLP `down(act(gate(x)) * up(x))`: gate out (act input), act out, up out, the product
GATED_MLP_SAVED_INTERMEDIATES = 4
# plain MLP `fc2(act(fc1(x)))`: fc1 out (act input), act out (fc2 input)
PLAIN_MLP_SAVED_INTERMEDIATES = 2
# of those, saved only for a frozen projection's weight gradient (the down_proj / fc2 input)
MLP_WEIGHT_GRADIENT_ONLY_INTERMEDIATES = 1
# gelu_new / gelu_fast (NewGELUActivation: a Python chain of pow, mul, add, tanh) hold 3 more
# MLP-wide tensors than a fused activation, both saved for backward (saved_tensors of
# gpt2-train-b4-s256-adamw-fp32-sdpa: mlp.act saves 4 tensors where a fused GELU saves 1)
COMPOSITE_GELU_EXTRA_INTERMEDIATES = 3
COMPOSITE_GELUS = ("gelu_new", "gelu_fast")
# ... but alive at once in a prefill (no_grad: each temporary goes when the next one is made):
# NewGELUActivation's `0.5 * input * (1.0 + torch.tanh(c * (input + 0.044715 *
# torch.pow(input, 3.0))))` (transformers 5.25 activations.py) holds its input, `0.5 * input`
# and two chain temporaries, two more than a fused activation's input and output (live-tensor
# snapshots at the peaks of gpt2-infer-b4-s512-fp32-sdpa and phi-infer-b4-s512-fp32-sdpa:
# c_fc / fc1's addmm, pow and two mul outputs, four MLP-wide tensors in mlp.act)
COMPOSITE_GELU_INFERENCE_EXTRA_INTERMEDIATES = 2
# quick_gelu (QuickGELUActivation, CLIP's towers: `input * torch.sigmoid(1.702 * input)`) holds
# one more, the sigmoid's output that the product saves (saved_tensors_hooks over a CLIP
# ViT-L/14-336 encoder layer, transformers 5.25, bfloat16, 577 positions: 8,200 B per position
# above the fused count, 4,096 x 2 B of it this tensor)
QUICK_GELU_EXTRA_INTERMEDIATES = 1
# attention output: saved by the attention kernel and by o_proj (one tensor)
ATTENTION_OUTPUT_COPIES = 1
# FlashAttention / SDPA save their output and a float32 logsumexp per (batch, head, position)
FLASH_LOGSUMEXP_BYTES = 4
# eager attention: softmax(scores, dtype=float32) output saved, plus its cast to the compute
# dtype saved by the matmul with V (transformers eager_attention_forward); no dropout mask
EAGER_SOFTMAX_BYTES = 4
# ... and in a bfloat16 prefill the float32 copy of the scores softmax runs on (see
# inference_layer_activations)
EAGER_SOFTMAX_CONVERTED_BYTES = 4
# weight formats whose kernels compute in float16 only: AutoGPTQ's exllama / exllamav2 kernels
# take half inputs (q4_matmul, gemm_half_q_half), cuda-old with use_cuda_fp16 raises on anything
# else; AutoAWQ's GEMM kernels are half-only (awq_ext gemm_forward_cuda)
FLOAT16_COMPUTE_WEIGHT_DTYPES = ("float16", "gptq_int4", "awq_int4")
# MoE: each (token, expert) pair keeps the gathered input and the expert output (for routing
# weights); routers keep a float32 softmax over the experts
MOE_GATHERED_INPUT_COPIES = 1
MOE_EXPERT_OUTPUT_COPIES = 1
ROUTER_PROBABILITY_BYTES = 4
# loss: log_softmax's float32 output saved for backward, the NLL gradient into it and its own
# gradient: three float32 b*s*V tensors alive while LogSoftmaxBackward0 runs, the training peak;
# the compute-dtype logits are gone by then (measured: qwen3-train-b2-s512-adamw-bf16-sdpa,
# llama-train-b2-s256-adamw-fp32-sdpa; docs/accuracy.md)
LOSS_FP32_LOGIT_COPIES = 3
# final_logit_softcapping (gemma2): tanh saves its compute-dtype b*s*V output for backward
# (gemma2-train-b1-s512-lora-bf16-eager)
SOFTCAP_LOGIT_COPIES = 1
# bitsandbytes before 0.43.2 (commit 9e75374, "fix QLoRA mem bug: delete useless buffered
# activation", #1270): MatMul4Bit.forward kept `ctx.tensors = (A, B)`, the input of every frozen
# 4-bit layer, whenever the input needed a gradient; since then `(None, B)`. Kept then: the two
# norm outputs (q/k/v and gate/up inputs), o_proj's input (the reshaped attention output, a copy)
# and down_proj's input (the product), the tensors a trainable projection keeps
BNB_SAVED_NORM_OUTPUTS = NORMS_PER_LAYER
BNB_SAVED_ATTENTION_OUTPUT_COPIES = 1
BNB_SAVED_MLP_INTERMEDIATES = MLP_WEIGHT_GRADIENT_ONLY_INTERMEDIATES
# litgpt's CausalSelfAttention (litgpt/model.py at 4a9b7e62, 0d207708, 58c5b188; lit_gpt/model.py
# at 8641822) projects `y.reshape(B, T, C)` of SDPA's `y.transpose(1, 2)`: on CUDA the flash and
# memory-efficient kernels allocate their output as (B, T, heads, head_dim) and return it
# transposed (pytorch aten/src/ATen/native/transformers/cuda/attention.cu), so o_proj's input is
# a view of the output SDPA keeps, no copy (the CPU kernel's output is head-major: a copy there)
FUSED_QKV_BNB_SAVED_ATTENTION_OUTPUT_COPIES = 0
# the MatMul4Bit inputs above sit in `ctx.tensors`, a ctx attribute rather than save_for_backward:
# autograd releases saved variables once a node has run but leaves ctx attributes until the graph
# itself is freed, so a loop that keeps the graph (previous_graph_alive) keeps them too
BNB_CTX_HELD_INPUT_COPIES = 1
# gradient checkpointing keeps each layer's input (plus one layer's full set while recomputing)
CHECKPOINTED_INPUTS_PER_LAYER = 1
# cross_entropy "chunked": torchtune modules/loss/ce_chunked_output_loss.py CEWithChunkedOutputLoss
# (num_output_chunks=8): the decoder returns the LM head's output as 8 chunks over the tokens and
# compute_cross_entropy upcasts one chunk at a time (`logits.float()`), each chunk's float32
# log_softmax saved for backward; the recipes `del logits` before backward
CHUNKED_LOSS_CHUNKS = 8
# activation_offloading: torchtune training/_activation_offloading.py OffloadActivations
# (max_fwd_stash_size=5): each saved tensor of at least min_offload_size (1024 B) is copied to
# pinned host memory on a side stream and kept on the GPU in fwd_stash until 5 newer tensors
# have been packed; the LM head runs under NoOpManager (get_act_offloading_ctx_manager), its
# input stays; in backward a node's tensors come back with the previous node's prefetched
OFFLOAD_FORWARD_STASH_TENSORS = 5
OFFLOAD_BACKWARD_LAYERS = 2

# previous_graph_alive: litgpt finetune/lora.py (4a9b7e62; lit-gpt 8641822 alike) runs
# `logits = model(input_ids, lm_head_chunk_size=128)`, loss and backward, and rebinds `logits`
# only when the next forward has returned, so the previous micro-batch's logits and, through
# their grad_fn, its graph are alive to the end of the next forward. Lightning Fabric's
# _FabricModule.forward casts the output after the forward context
# (precision.convert_output -> `tensor.to(torch.get_default_dtype())`, float32): at the end of the
# next forward the previous float32 logits, the new chunks in the compute dtype and their float32
# cast are alive together (lightning/fabric/wrappers.py, plugins/precision/utils.py
# _convert_fp_tensor, at Lightning b19c3a9)
PREVIOUS_GRAPH_FP32_LOGIT_COPIES = 2
PREVIOUS_GRAPH_COMPUTE_LOGIT_COPIES = 1

# --- inference (prefill): one layer's working set, not kept across layers --------------------
# residual stream + normalised input, alive through each sub-block
INFERENCE_HIDDEN_COPIES = 2
# the embedding output, kept by the model's forward through its whole layer loop
# (transformers 5.25 modeling_llama.py LlamaModel.forward: `inputs_embeds = self.embed_tokens(
# input_ids)`, `hidden_states = inputs_embeds`, the loop rebinds only `hidden_states`): a hidden-
# wide tensor beside the residual stream from the second layer on (live-tensor snapshot at the
# peak of llama-infer-b16-s512-bf16-sdpa: `embedding` (16, 512, 512) alive in layer 3's MLP)
INFERENCE_EMBEDDINGS_KEPT = 1
# the MLP sub-block runs while the layer's input is still referenced by the model's loop (the
# decoder layer's `residual + hidden_states` after attention is a new tensor; the caller's
# `hidden_states` and nn.Module's call arguments keep the input): one more hidden-wide tensor
# there (the same snapshot: layer 2's output `add` beside layer 3's residual `add` and its
# post_attention_layernorm output; phi's parallel block holds its attention output instead)
INFERENCE_MLP_LAYER_INPUT_COPIES = 1
# rotary embedding makes new q and k tensors while the projections are still alive
INFERENCE_ROTARY_COPIES = 1
# gated MLP: act(gate), up and their product alive together; plain MLP: fc1 out and act out
GATED_MLP_INFERENCE_INTERMEDIATES = 3
PLAIN_MLP_INFERENCE_INTERMEDIATES = 2
# generate(): logits_to_keep=1, then `logits[:, -1, :].to(float32)`: one fp32 copy of the row
INFERENCE_LOGITS_FP32_COPIES = 1
# a forward over every position (inference_logits "all"): no_grad frees each layer's working set
# before the next runs, so the LM head runs after the layers' peak, not on top of it, with the
# final norm's output (its input) alive beside the logits (LlamaModel.forward `hidden_states =
# self.norm(hidden_states)`, then LlamaForCausalLM `self.lm_head(hidden_states)`)
INFERENCE_LM_HEAD_INPUT_COPIES = 1
# bitsandbytes matmul_4bit over more than one token dequantises the 4-bit weight for each matmul,
# forward and backward (MatMul4Bit, bitsandbytes 0.41-0.45 autograd/_functions.py:
# `F.dequantize_4bit(B, quant_state).to(A.dtype)`): one matrix alive at a time. dequantize_4bit
# allocates quant_state.dtype (functional.py `torch.empty(shape, dtype=dtype)`); when that is not
# the compute dtype, `.to(A.dtype)` makes a second copy while the first still lives
NF4_DEQUANTISED_MATRICES = 1
DEQUANTISED_BYTES = 2
# per bnb_4bit_dequant_path: bytes per element alive at once (the dequantised matrix, its cast)
BNB_4BIT_DEQUANT_BYTES = {
    "compute": DEQUANTISED_BYTES,
    "float16_then_bfloat16": DEQUANTISED_BYTES + 2,
    "float16_then_float32": DEQUANTISED_BYTES + 4,  # a float32 copy
}
# GPTQ kernels (AutoGPTQ 0.5.0, the QuantLinear that transformers / optimum pick through
# gptq_kernel), for desc_act False checkpoints. exllama and exllamav2 allocate their buffers once,
# at post_init (auto_gptq/modeling/_utils.py autogptq_post_init), whatever the tokens:
# exllama: temp_dq, `torch.zeros((1, max_dq_buffer_size), float16)` with max_dq_buffer_size the
# largest `qweight.numel() * 8` = in x out values, and temp_state, (max_input_len, max_inner_outer
# _dim) float16, both 1 without act-order
EXLLAMA_DQ_BYTES = 2
EXLLAMA_TEMP_STATE_BYTES_NO_ACT_ORDER = 1 * 1 * 2
# exllamav2 (qlinear_exllamav2.py): one scratch tensor per device, the largest over the layers of
# scratch_space_fixed(max_input_len=2048, max_batch_size=8) = temp_dq_size() + temp_fwd_size():
# in x out x 2 + 128 and out x 2048 x 8 x 4 + 128 bytes (ExLlamaV2DeviceTensors.prepare:
# `torch.empty((scratch_bytes // 2,), dtype=torch.half)`)
EXLLAMAV2_DQ_BYTES = 2
EXLLAMAV2_MAX_INPUT_LEN = 2048
EXLLAMAV2_MAX_BATCH_SIZE = 8
EXLLAMAV2_FWD_BYTES = 4
EXLLAMAV2_ALIGNMENT_BYTES = 128
# cuda-old (qlinear_cuda_old.py forward): from kernel_switch_threshold = 128 rows of x (batch x
# tokens) on, each matmul dequantises its weight with torch ops: bitwise_right_shift of the
# expanded int32 qweight (4 B per value), `.to(torch.int8)` while it lives (1 B); the later
# steps hold less (two int8 and a float16 copy, 4 B)
CUDA_OLD_KERNEL_SWITCH_THRESHOLD = 128
CUDA_OLD_DEQUANTISED_BYTES = 4 + 1
# bitsandbytes LLM.int8 (int8 weights, MatMul8bitLt.forward under no_grad, a float16 input),
# per token of a matmul over in -> out beside its float16 output: "row_major" (bitsandbytes
# 0.45+: int8_vectorwise_quant's CA, in x 1 B, and int8_linear_matmul's int32 product, out x 4 B);
# "col32" (bitsandbytes 0.37-0.44 igemmlt: double_quant's CA and CAt and transform(CA, "col32"),
# 3 x in x 1 B, the int32 product out32, out x 4 B), which also turns each weight into the
# col_turing / col_ampere layout in its first forward (state.CxB = F.transform(state.CB)):
# Linear8bitLt.forward drops the row-major CB only after the matmul, so the prefill holds one
# more int8 copy of the largest matrix. Outlier columns (subA, state.subB) depend on the data
# and are left out
# AutoAWQ GEMM (awq/modules/linear/gemm.py WQLinearMMFunction.forward, v0.2.0; transformers'
# AwqConfig version "gemm"): from x.shape[0] * x.shape[1] >= 1024 (batch x tokens) each matmul
# dequantises its weight to float16 (awq_ext.dequantize_weights_cuda) and runs torch.matmul
AWQ_GEMM_DEQUANTISE_FROM_TOKENS = 1024
AWQ_DEQUANTISED_BYTES = 2
INT8_PRODUCT_BYTES = 4
INT8_INPUT_COPIES = {"row_major": 1, "col32": 3}
INT8_FIRST_FORWARD_WEIGHT_COPIES = {"row_major": 0, "col32": 1}

# --- hybrid layers: linear attention and state-space mixers (transformers 5.24) -------------
# the recurrent state is float32 (architecture.StateLayers): torch_chunk_gated_delta_rule casts
# q/k/v to float32 before the scan, Jamba's scan state is a float32 product
RECURRENT_STATE_BYTES = 4
# modeling_qwen3_next.py torch_chunk_gated_delta_rule (the PyTorch path, taken without the fla
# kernels): float32 tensors alive through its scan over chunks, per token and value head:
# key-wide (k_head_dim): query, key, k_beta, decayed_k_beta, k_cumdecay
GDN_FP32_KEY_COPIES = 5
# value-wide (v_head_dim): v_beta, new_values, core_attn_out
GDN_FP32_VALUE_COPIES = 3
# chunk x chunk float32 matrices per chunk and head: pairwise_decay, ut_system, intra_chunk_attn
GDN_CHUNK_MATRICES = 3
GDN_CHUNK_SIZE = 64  # torch_chunk_gated_delta_rule's chunk_size default
# What autograd saves for backward in one Gated DeltaNet layer (transformers 5.25
# modeling_qwen3_next.py Qwen3NextGatedDeltaNet.forward and torch_chunk_gated_delta_rule; every
# tensor seen with validation.saved_tensors on qwen3_next-train-b1-s256-adamw-bf16-sdpa, 23,163,072
# bytes a layer, matched to the byte by gated_deltanet_saved_bytes). float32, key-wide per value
# head, per token before padding: the fp32 query and key l2norm reads
GDN_SAVED_FP32_KEY_INPUTS = 2
# per padded token: the padded key (k_beta = key * beta), k_beta and the padded scaled query
# (both read by their chunk matmuls), k_cumdecay (solve_triangular's output) and the decayed key
# and query the scan over chunks reads
GDN_SAVED_FP32_KEY_COPIES = 6
# value-wide per padded token: the padded value (v_beta = value * beta), new_values
# (solve_triangular's output) and v_new (each chunk's, read by two matmuls)
GDN_SAVED_FP32_VALUE_COPIES = 3
# chunk x chunk per chunk and head: pairwise_decay (exp's output), k_beta @ key^T and
# query @ key^T (read by their products with pairwise_decay), ut_system (solve_triangular) and
# intra_chunk_attn (the scan's matmul)
GDN_SAVED_CHUNK_MATRICES = 5
# one value per token and head before padding: the two inverse norms of l2norm, softplus's input
# and output in g
GDN_SAVED_FP32_HEAD_SCALARS = 4
# per padded token and head: the padded beta and three exp outputs (cum_decay.exp() twice and
# (cum_decay[-1] - cum_decay).exp())
GDN_SAVED_FP32_PADDED_HEAD_SCALARS = 4
# compute dtype, per token and head: beta = b.sigmoid()'s output
GDN_SAVED_COMPUTE_HEAD_SCALARS = 1
# once a layer: float32 per value head, A_log.float().exp() and the softplus product's factor;
# the boolean strictly_upper_mask (chunk_size x chunk_size, one byte each)
GDN_SAVED_FP32_HEAD_PARAMETERS = 2
BOOL_BYTES = 1
# Qwen3NextRMSNormGated over value_dim: float32 input, weight * normed and the float32 gate; the
# compute-dtype normed value and the gate z; one rsqrt per token and head
GDN_NORM_FP32_COPIES = 3
GDN_NORM_COMPUTE_COPIES = 2
# compute-dtype tensors of Qwen3NextGatedDeltaNet.forward alive around the scan: the in_proj
# outputs (qkvz, ba), mixed_qkv (q, k, v concatenated, conv_dim) and the convolution's output
GDN_CONV_WIDE_COPIES = 2
# modeling_jamba.py mamba_selective_scan (the PyTorch path, taken without mamba-ssm): float32
# (batch, intermediate, seq, state) tensors alive through the scan: discrete_A, discrete_B,
# deltaB_u
MAMBA_SCAN_FP32_STATE_COPIES = 3
# intermediate-wide tensors alive beside the in_proj output as mamba_selective_scan returns
# (transformers 5.25 modeling_jamba.py, its sequential loop: the peak, where
# `scan_output * F.silu(z)` runs with discrete_A, discrete_B and deltaB_u still alive; traced
# tensor by tensor in the prefill of jamba-infer-b2-s1024-bf16-sdpa, whose Mamba mixers peak
# 453.1 MB above their input in the resident set). Compute dtype: the convolution output, the
# time step (dt_proj) and its softplus, the per-step scan outputs the loop keeps in a list, their
# torch.stack and silu(z)
MAMBA_INNER_COPIES = 6
# float32: the D skip connection's sum `scan_output + hidden_states * D` and its product with
# silu(z)
MAMBA_FP32_INNER_COPIES = 2
# modeling_mamba2.py mamba2_chunk_scan (transformers 5.25; the PyTorch path, taken without
# mamba-ssm), float32 tensors alive as it returns, per padded token (the sequence padded to whole
# chunks): intermediate-wide (heads x head_dim): x * dt (chunked), D_residual, Y_diag,
# C_times_states, Y_off, their sum and the sum + D_residual
MAMBA2_FP32_INNER_COPIES = 7
# heads x state-wide: B and C repeated over the heads of their group (repeat_interleave), B_decay
MAMBA2_FP32_STATE_COPIES = 3
# chunk-wide per head (chunk_size x chunk_size per chunk): L = exp(segment_sum(A)), G and M
MAMBA2_CHUNK_MATRICES = 3
# heads-wide: A * dt (chunked), A_cumsum, decay_states, state_decay_out
MAMBA2_FP32_HEAD_COPIES = 4
# per chunk and sequence, heads x head_dim x state: states, torch.cat([previous_states, states])
# and new_states (one more chunk for the latter two, counted as one chunk more for all three)
MAMBA2_CHUNK_STATE_COPIES = 3
# compute-dtype tensors of Mamba2Mixer.forward alive around the scan: the in_proj output
# (gate, x/B/C and dt are views of it) and the causal convolution's output
MAMBA2_CONV_WIDE_COPIES = 1

# --- gradients and optimizer states ---------------------------------------------------------
FP32_BYTES = 4
# PEFT's autocast_adapter_dtype=True upcasts LoRA weights to float32 (the default of the
# lora_adapter_dtype field; litgpt / torchtune keep them in the model's 16-bit dtype)
LORA_ADAPTER_BYTES = 4
# PEFT target_parameters on fused experts (ParamWrapper) saves the merged W + BA for backward
# (seen with saved_tensors_hooks on a tiny Mixtral, transformers 5.24 / peft 0.21)
LORA_MERGED_EXPERT_COPIES = 1
# lora_dropout: nn.Dropout(p > 0) in training runs native_dropout, which saves its bool mask, one
# byte per element (torch aten native_dropout_backward(grad, mask, scale)); lora_A then keeps
# the dropped copy instead of the input (litgpt lora.py LoRALinear / LoRAQKVLinear.forward
# `self.lora_dropout(x)`; PEFT lora/layer.py Linear.forward `lora_A(dropout(x))`)
LORA_DROPOUT_MASK_BYTES = 1
# litgpt's LoRAQKVLinear (lora.py at 8641822, 4a9b7e62): one lora_A of r x (enabled of q, k, v)
# rows reads the (dropped) input once for all of the fused projection's adapted parts
LITGPT_FUSED_QKV_NAMES = ("q_proj", "k_proj", "v_proj")

# --- context and expert parallelism: communication buffers ------------------------------------
# TransformerEngine ring attention (transformer_engine/pytorch/attention/dot_product_attention/
# context_parallel.py, AttnFuncWithCPAndKVP2P, NVIDIA/TransformerEngine d0067d0): forward keeps
# every step's K/V receive buffer in `p2p_comm_buffers` (cp_size of them, the first the local
# torch.cat of k and v) until the layer's attention returns; backward allocates two (2, *kv.shape)
# buffers (K/V and their gradient, double-buffered) and `dq_buffer = torch.empty_like(q)`
RING_BACKWARD_KV_BUFFERS = 4
RING_BACKWARD_Q_BUFFERS = 1
# Megatron-Core MoEAlltoAllTokenDispatcher: the permuted tokens sent (tokens x top_k x hidden)
# are freed once the all-to-all has delivered them; the received ones are the experts' saved
# input and the combined output is saved for the routing weights (both counted in the layer)
EP_ALL_TO_ALL_SEND_BUFFERS = 1
# vLLM's default all2all backend, allgather_reducescatter (vllm/config/parallel.py
# ParallelConfig.all2all_backend; vllm/distributed/device_communicators/all2all.py
# AgRsAll2AllManager): dispatch all_gatherv's hidden_states, topk_weights and topk_ids of every
# data-parallel rank; the experts write an output for every gathered token, reduce_scatterv'd back
AGRS_GATHERED_HIDDEN_COPIES = 2  # the gathered hidden states and the experts' output over them
AGRS_TOPK_BYTES = 4 + 4  # float32 topk_weights, int32 topk_ids per (token, expert)


@dataclass(frozen=True)
class ModelParts:
    """Parameters (and their stored bytes) of the pieces parallelism moves around."""

    embeddings: int
    lm_head: int
    layer_linear: int  # every linear weight matrix in the decoder layers
    layer_kv_linear: int  # k_proj + v_proj weight matrices (replicated under wide TP)
    layer_routed_linear: int  # fused routed-expert matrices (no autocast copy)
    layer_other: int  # biases, routers, q/k norms, sinks: the rest of the layers
    norms: int
    embeddings_bytes: Fraction
    lm_head_bytes: Fraction
    layer_linear_bytes: Fraction
    layer_kv_linear_bytes: Fraction
    layer_other_bytes: Fraction
    norms_bytes: Fraction
    largest_matrix: int  # parameters of the largest single weight (ZeRO-3 gathers it whole)
    largest_linear: int  # parameters of the largest nn.Linear weight of the layers
    total: int  # all parameters
    total_bytes: Fraction  # all parameters' bytes
    layer_routed_linear_bytes: Fraction = Fraction(0)  # bytes of the routed-expert matrices
    quantised_lm_head: int = 0  # parameters of the LM head matrix when it is quantised too
    exllamav2_scratch: int = 0  # gptq_int4: bytes of exllamav2's per-device scratch tensor
    # int8: the largest per-token in x copies + out x 4 over the quantised layers, per layout
    int8_matmul_row_major: int = 0
    int8_matmul_col32: int = 0


_parts_cache: dict[tuple[int, str, bool], tuple[Architecture, ModelParts]] = {}


def _breakdown_of(architecture: Architecture) -> ParameterBreakdown:
    if architecture.parameters is not None:
        return architecture.parameters
    # shape unknown: everything counts as layer matrices
    return ParameterBreakdown(0, 0, 0, architecture.num_parameters, 0, 0, 0, 0)


def model_parts(
    architecture: Architecture, weight_dtype: str, quantise_lm_head: bool = False
) -> ModelParts:
    """Split the model's parameters and bytes; cached per (architecture object, dtype, head)."""
    key = (id(architecture), weight_dtype, quantise_lm_head)
    cached = _parts_cache.get(key)
    if cached is not None and cached[0] is architecture:
        return cached[1]
    parts = _model_parts(architecture, weight_dtype, quantise_lm_head)
    if len(_parts_cache) >= 512:
        _parts_cache.clear()
    _parts_cache[key] = (architecture, parts)
    return parts


def _model_parts(architecture: Architecture, dtype: str, quantise_lm_head: bool) -> ModelParts:
    counts = _breakdown_of(architecture)
    linear_bytes = Fraction(0)
    kv_linear_bytes = Fraction(0)
    routed_bytes = Fraction(0)
    linear = kv_linear = routed_linear = largest = largest_linear = scratch = 0
    int8_matmul = dict.fromkeys(INT8_INPUT_COPIES, 0)
    for layer in architecture.linear_layers:
        keeps_16_bit = False
        size = layer.in_features * layer.out_features
        if layer.router and architecture.router_float32:
            # transformers keeps this router float32 whatever the model's dtype
            matrix_bytes = Fraction(FP32_BYTES * size)
        elif keeps_16_bit := keeps_layer_16_bit(layer, dtype, architecture.checkpoint):
            matrix_bytes = Fraction(UNQUANTISED_BYTES * size)
        else:
            matrix_bytes = linear_weight_bytes(dtype, layer.in_features, layer.out_features)
        linear += size * layer.count
        linear_bytes += matrix_bytes * layer.count
        # DeepSpeed's largest_layer: one module's parameters; transformers 5 fuses a layer's
        # routed experts into one 3-D parameter per projection
        largest = max(largest, size * architecture.num_experts if layer.routed_expert else size)
        if layer.routed_expert:
            routed_linear += size * layer.count
            routed_bytes += matrix_bytes * layer.count
        else:
            largest_linear = max(largest_linear, size)
        if layer.name in ("k_proj", "v_proj"):
            kv_linear += size * layer.count
            kv_linear_bytes += matrix_bytes * layer.count
        if dtype == "gptq_int4" and not layer.router and not keeps_16_bit:
            scratch = max(scratch, exllamav2_scratch_bytes(layer.in_features, layer.out_features))
        if dtype == "int8" and not layer.router and not keeps_16_bit:
            for layout, copies in INT8_INPUT_COPIES.items():
                per_token = layer.in_features * copies + layer.out_features * INT8_PRODUCT_BYTES
                int8_matmul[layout] = max(int8_matmul[layout], per_token)
    if not architecture.linear_layers:
        # matrices unknown (manual entry): counted as hidden_size-wide matrices
        linear = counts.attention + counts.mlp + counts.experts
        routed_linear = counts.experts
        hidden = architecture.hidden_size
        rows, rest = divmod(linear, hidden)
        linear_bytes = linear_weight_bytes(dtype, hidden, rows)
        linear_bytes += other_parameter_bytes(dtype) * rest
        routed_bytes = linear_bytes * Fraction(routed_linear, linear) if linear else Fraction(0)
    # the rest of the layers (biases, routers, q/k norms); taken against num_parameters so that
    # a count entered by hand (not derived from the shape) is what the weights add up to
    total = architecture.num_parameters or counts.total
    other = max(total - counts.embeddings - counts.lm_head - linear - counts.norms, 0)
    embeddings_bytes = embedding_bytes(dtype, counts.embeddings)
    lm_head_bytes = embedding_bytes(dtype, counts.lm_head)
    head_matrix = 0
    if quantise_lm_head and dtype in LINEAR_MODULE_ONLY_DTYPES and counts.lm_head:
        # Lightning Fabric's BitsandbytesPrecision replaces every torch.nn.Linear, the LM head
        # included (lightning/fabric/plugins/precision/bitsandbytes.py, init_context's
        # _ClassReplacementContextManager); its bias (phi) stays 16-bit
        hidden, vocab = architecture.hidden_size, architecture.vocab_size
        head_matrix = min(hidden * vocab, counts.lm_head)
        lm_head_bytes = linear_weight_bytes(dtype, hidden, vocab) + other_parameter_bytes(dtype) * (
            counts.lm_head - head_matrix
        )
    other_bytes = other_parameter_bytes(dtype) * other
    norms_bytes = other_parameter_bytes(dtype) * counts.norms
    return ModelParts(
        embeddings=counts.embeddings,
        lm_head=counts.lm_head,
        layer_linear=linear,
        layer_kv_linear=kv_linear,
        layer_routed_linear=routed_linear,
        layer_other=other,
        norms=counts.norms,
        embeddings_bytes=embeddings_bytes,
        lm_head_bytes=lm_head_bytes,
        layer_linear_bytes=linear_bytes,
        layer_kv_linear_bytes=kv_linear_bytes,
        layer_other_bytes=other_bytes,
        norms_bytes=norms_bytes,
        largest_matrix=max(largest, counts.embeddings, counts.lm_head),
        largest_linear=largest_linear,
        total=counts.embeddings + counts.lm_head + linear + other + counts.norms,
        total_bytes=embeddings_bytes + lm_head_bytes + linear_bytes + other_bytes + norms_bytes,
        layer_routed_linear_bytes=routed_bytes,
        quantised_lm_head=head_matrix,
        exllamav2_scratch=scratch,
        int8_matmul_row_major=int8_matmul["row_major"],
        int8_matmul_col32=int8_matmul["col32"],
    )


def exllamav2_scratch_bytes(in_features: int, out_features: int) -> int:
    """AutoGPTQ 0.5.0 QuantLinear (exllamav2) scratch_space_fixed() of one layer, in bytes."""
    temp_dq = in_features * out_features * EXLLAMAV2_DQ_BYTES + EXLLAMAV2_ALIGNMENT_BYTES
    rows = EXLLAMAV2_MAX_INPUT_LEN * EXLLAMAV2_MAX_BATCH_SIZE
    temp_fwd = out_features * rows * EXLLAMAV2_FWD_BYTES + EXLLAMAV2_ALIGNMENT_BYTES
    # allocated as scratch_bytes // 2 float16 values
    return (temp_dq + temp_fwd) // 2 * 2


def _stage_share(
    architecture: Architecture,
    layout: Layout,
    stage: Stage,
    embeddings: Fraction | int,
    lm_head: Fraction | int,
    linear: Fraction | int,
    kv_linear: Fraction | int,
    other: Fraction | int,
    norms: Fraction | int,
    routed: Fraction | int = 0,
) -> Fraction:
    """One GPU's share of a per-model quantity (parameters or bytes) under TP, PP and EP
    (context parallelism replicates the weights: each CP rank holds what its TP rank holds)."""
    tp, ep = layout.tensor_parallel, layout.expert_parallel
    # Megatron: column/row-parallel layers and vocab-parallel embeddings split over tp; KV
    # projections of replicated KV heads are kept whole per head; norms are replicated
    kv_share = Fraction(layout.kv_heads_per_gpu, architecture.num_key_value_heads)
    layers = Fraction(linear - kv_linear + other, tp) + kv_linear * kv_share + norms
    if ep > 1:
        # vLLM EP (fused_moe/config.py FusedMoEParallelConfig): each rank holds
        # num_experts / ep whole experts instead of a 1/tp slice of every expert; Megatron-Core
        # training: num_experts / ep experts, each split over etp = tp ranks
        etp = layout.expert_tensor_parallel
        layers += Fraction(routed, ep * etp) - Fraction(routed, tp)
    share = layers * stage.layer_fraction
    if stage.has_embeddings:
        share += Fraction(embeddings, tp)
    if stage.has_lm_head:
        # a tied LM head needs its own copy of the embeddings on the last pipeline stage
        head = lm_head if lm_head or layout.pipeline_parallel == 1 else embeddings
        share += Fraction(head, tp)
    return share


_stage_weights_cache: dict[
    tuple[int, str, bool, int, int, int, int], tuple[Architecture, tuple]
] = {}


def _stage_weights(
    architecture: Architecture, weight_dtype: str, layout: Layout, parts: ModelParts
) -> tuple[tuple[Fraction | int, Fraction | int], ...]:
    """Per reported stage, (parameters, bytes) on one GPU; cached like `model_parts`."""
    key = (
        id(architecture),
        weight_dtype,
        bool(parts.quantised_lm_head),
        layout.tensor_parallel,
        layout.pipeline_parallel,
        layout.expert_parallel,
        layout.expert_tensor_parallel,
    )
    cached = _stage_weights_cache.get(key)
    if cached is not None and cached[0] is architecture:
        return cached[1]
    weights = tuple(
        _gpu_parameters_and_bytes(architecture, layout, stage, parts) for stage in layout.stages
    )
    if len(_stage_weights_cache) >= 512:
        _stage_weights_cache.clear()
    _stage_weights_cache[key] = (architecture, weights)
    return weights


def _gpu_parameters_and_bytes(
    architecture: Architecture, layout: Layout, stage: Stage, parts: ModelParts
) -> tuple[Fraction | int, Fraction | int]:
    parameters = _stage_share(
        architecture,
        layout,
        stage,
        parts.embeddings,
        parts.lm_head,
        parts.layer_linear,
        parts.layer_kv_linear,
        parts.layer_other,
        parts.norms,
        parts.layer_routed_linear,
    )
    weight_bytes = _stage_share(
        architecture,
        layout,
        stage,
        parts.embeddings_bytes,
        parts.lm_head_bytes,
        parts.layer_linear_bytes,
        parts.layer_kv_linear_bytes,
        parts.layer_other_bytes,
        parts.norms_bytes,
        parts.layer_routed_linear_bytes,
    )
    return parameters, weight_bytes


def kv_cache_bytes(
    architecture: Architecture,
    layout: Layout,
    stage: Stage,
    batch_size: int,
    tokens: int,
    kv_dtype: str,
    conv_state_bytes: int = 2,
) -> Fraction:
    """KV cache of one GPU's layers for `batch_size` sequences of `tokens` tokens, and the fixed
    state of its linear-attention / state-space layers (`conv_state_bytes`: the activations'
    element size, which the convolution state keeps)."""
    element: Fraction | int = ELEMENT_BYTES[kv_dtype]
    element = int(element) if element.denominator == 1 else element
    if architecture.is_mla:
        # DeepSeek-V2/V3 MLA: the compressed latent and the shared rope key, for all heads
        # (kv_lora_rank + qk_rope_head_dim values per layer per token), kept whole on every TP rank
        per_layer_token = architecture.kv_lora_rank + architecture.qk_rope_head_dim
    else:
        # K and V: 2 * num_key_value_heads * head_dim values per layer per token
        per_layer_token = 2 * layout.kv_heads_per_gpu * architecture.head_dim
    # hybrids: only the attention layers keep a KV cache; worst case, the stage holds as many
    # of them as it can, the rest of its layers keep a fixed state (and, Falcon-H1, the
    # attention layers their mixer's state too)
    layers = min(stage.num_layers, architecture.num_attention_layers)
    sliding = architecture.num_sliding_window_layers if architecture.sliding_window else 0
    # worst case: the stage holds as many global (full-length) layers as possible
    global_layers = min(layers, architecture.num_attention_layers - sliding)
    window_layers = layers - global_layers
    # transformers 5.24 DynamicSlidingWindowLayer.update (cache_utils.py lines 244-247) keeps
    # `full_key_states[:, :, -self.sliding_window + 1 :, :]`: the last sliding_window - 1 tokens.
    # The token being generated completes the window: it is an activation of the step (its k and
    # v are concatenated for the attention), not cache. Attention still spans the full window
    # (hardware.py's attended positions). A window of 1 holds nothing here (transformers' slice
    # `-0:` would keep every token there: a degenerate window no published model uses)
    window_tokens = min(tokens, architecture.sliding_window - 1) if window_layers else 0
    held_tokens = global_layers * tokens + window_layers * window_tokens
    cache = batch_size * held_tokens * per_layer_token * element
    state = architecture.state_layers
    if state is None:
        return Fraction(cache)
    state_layers = min(stage.num_layers - layers, state.count)
    if state.beside_attention:
        state_layers = min(stage.num_layers, state.count)
    per_sequence = state_layer_bytes(state, conv_state_bytes)
    # heads and channels split over tensor-parallel ranks (as the KV heads are)
    return cache + Fraction(batch_size * state_layers * per_sequence, layout.tensor_parallel)


def cross_attention_cache_bytes(
    architecture: Architecture,
    layout: Layout,
    stage: Stage,
    batch_size: int,
    vision_states: int,
    kv_dtype: str,
) -> Fraction:
    """The cross-attention layers' cache (Llama 3.2 Vision): each keeps K and V of the
    `vision_states` projected vision states of a sequence's images, computed once at prefill
    (MllamaTextCrossAttention: k_proj/v_proj of cross_attention_states, cache.update; transformers
    5.25 MllamaForConditionalGeneration._prepare_static_cache sizes these layers to images x
    max_num_tiles x (patches + 1)). Worst case, the stage holds as many of them as it can."""
    tower = architecture.vision
    if tower is None or not tower.cross_attention_layers or not vision_states:
        return Fraction(0)
    layers = min(stage.num_layers, tower.cross_attention_layers)
    per_state = 2 * layout.kv_heads_per_gpu * architecture.head_dim
    return batch_size * layers * vision_states * per_state * ELEMENT_BYTES[kv_dtype]


def state_layer_bytes(state: StateLayers, conv_state_bytes: int) -> int:
    """One sequence's state in one linear-attention / state-space layer: the convolution state
    (conv_dim x conv_kernel, activations' dtype) and the float32 recurrent state."""
    conv = state.conv_elements * conv_state_bytes
    return conv + state.recurrent_elements * RECURRENT_STATE_BYTES


@dataclass(frozen=True)
class ActivationDtypes:
    compute: int  # bytes of matmul outputs (16-bit compute, or float32)
    residual: int  # bytes of the residual stream (the embeddings' dtype)


def _activation_dtypes(inputs: EstimateInputs) -> ActivationDtypes:
    weights_fp32 = inputs.weight_dtype == "float32"
    # float32 weights compute in float32 unless training under autocast (mixed precision);
    # quantised weights compute in 16-bit
    autocast = inputs.training and inputs.mixed_precision
    compute = FP32_BYTES if weights_fp32 and not autocast else 2
    residual = FP32_BYTES if weights_fp32 else 2
    return ActivationDtypes(compute=compute, residual=residual)


@dataclass(frozen=True)
class AttentionWidths:
    """Values per token in one layer (all tensor-parallel ranks together)."""

    heads: int
    q: int
    k: int
    v: int
    out: int
    k_repeated: int  # after repeat_kv (eager attention expands KV heads to all heads)
    v_repeated: int
    latent: int  # MLA: q and kv low-rank latents (q_lora_rank + kv_lora_rank)


def attention_widths(architecture: Architecture, layout: Layout) -> AttentionWidths:
    heads = architecture.num_attention_heads
    if architecture.is_mla:
        qk_dim = (architecture.qk_nope_head_dim + architecture.qk_rope_head_dim) or (
            architecture.head_dim
        )
        v_dim = architecture.v_head_dim or architecture.head_dim
        return AttentionWidths(
            heads=heads,
            q=heads * qk_dim,
            k=heads * qk_dim,
            v=heads * v_dim,
            out=heads * v_dim,
            k_repeated=heads * qk_dim,
            v_repeated=heads * v_dim,
            latent=architecture.q_lora_rank + architecture.kv_lora_rank,
        )
    head_dim = architecture.head_dim
    kv_width = layout.kv_heads_per_gpu * layout.tensor_parallel * head_dim
    return AttentionWidths(
        heads=heads,
        q=heads * head_dim,
        k=kv_width,
        v=kv_width,
        out=heads * head_dim,
        k_repeated=heads * head_dim,
        v_repeated=heads * head_dim,
        latent=0,
    )


def _divide(value: int, tensor_parallel: int) -> Fraction | int:
    # exact: stays an int (fast) without tensor parallelism
    return value if tensor_parallel == 1 else Fraction(value, tensor_parallel)


def _per_gpu(replicated: int, split: int, tensor_parallel: int) -> Fraction | int:
    return replicated + _divide(split, tensor_parallel)


@dataclass(frozen=True)
class LayerActivations:
    """Bytes one layer saves for backward (training) or holds at its peak (inference),
    as (replicated on every TP rank, split over TP ranks)."""

    replicated: int
    split: int


def _mlp_widths(architecture: Architecture) -> tuple[int, int, int]:
    """(routed intermediate per expert, experts per token, shared-expert intermediate)."""
    moe_intermediate = architecture.moe_intermediate_size or architecture.intermediate_size
    shared = architecture.shared_expert_intermediate_size
    return moe_intermediate, architecture.num_experts_per_token, shared


def _rmsnorm_saved_bytes(residual: int, frozen_base: bool) -> int:
    """Bytes per element an RMSNorm (and the projections reading it) keep for backward."""
    # a frozen norm weight and frozen projections need neither the normalised input nor the output
    copies = 0 if frozen_base else RMSNORM_WEIGHT_GRADIENT_COPIES
    return RMSNORM_FP32_INPUT_BYTES + copies * residual


def _norm_saved_bytes(architecture: Architecture, residual: int, frozen_base: bool) -> int:
    """Bytes per element a decoder norm (and the projections reading it) keep for backward."""
    if not architecture.layer_norm:
        return _rmsnorm_saved_bytes(residual, frozen_base)
    # LayerNorm: its input always (input gradient); the output only for projections' weight grads
    copies = LAYERNORM_INPUT_COPIES + (0 if frozen_base else LAYERNORM_WEIGHT_GRADIENT_COPIES)
    return copies * residual


def _activation_extra_intermediates(architecture: Architecture, inference: bool = False) -> int:
    """MLP-wide tensors a composite activation (gelu_new) holds beyond a fused one: saved for
    backward in training, alive at once in a prefill (`inference`)."""
    if architecture.hidden_act in COMPOSITE_GELUS:
        if inference:
            return COMPOSITE_GELU_INFERENCE_EXTRA_INTERMEDIATES
        return COMPOSITE_GELU_EXTRA_INTERMEDIATES
    if architecture.hidden_act == "quick_gelu":
        return QUICK_GELU_EXTRA_INTERMEDIATES
    return 0


def _bnb_saves_inputs(inputs: EstimateInputs) -> bool:
    """Whether the frozen base is 4-bit bitsandbytes layers keeping their inputs (< 0.43.2)."""
    return inputs.bnb_4bit_saves_inputs and inputs.weight_dtype in BNB_4BIT_DTYPES


def _training_attention_split(widths: AttentionWidths, inputs: EstimateInputs, compute: int) -> int:
    """What one attention block saves for backward (split over tensor-parallel ranks)."""
    batch, seq = inputs.batch_size, inputs.sequence_length
    tokens = batch * seq
    if inputs.recompute_core_attention:
        # Megatron --recompute-granularity selective (megatron/core/transformer/attention.py
        # _checkpointed_attention_forward): the core attention (scores, softmax, the K/V
        # repeat for GQA, or the flash kernel) runs under tensor_parallel.checkpoint, which keeps
        # its inputs q, k, v; its output is kept by the output projection
        split = tokens * (widths.q + widths.k + widths.v) * compute
        return split + tokens * widths.out * ATTENTION_OUTPUT_COPIES * compute
    if inputs.attention_implementation == "flash":
        # flash / SDPA: q, k, v, output and the logsumexp; no score matrix
        split = tokens * _flash_saved_qkv_width(widths, inputs) * compute
        split += tokens * widths.out * ATTENTION_OUTPUT_COPIES * compute
        return split + batch * widths.heads * seq * FLASH_LOGSUMEXP_BYTES
    # eager: q, repeated k and v, output, and the b*a*s*s softmax (fp32 + compute-dtype cast)
    scores_element = EAGER_SOFTMAX_BYTES + (compute if compute != EAGER_SOFTMAX_BYTES else 0)
    split = tokens * (widths.q + widths.k_repeated + widths.v_repeated) * compute
    split += tokens * widths.out * ATTENTION_OUTPUT_COPIES * compute
    return split + batch * widths.heads * seq * seq * scores_element


def _flash_saved_qkv_width(widths: AttentionWidths, inputs: EstimateInputs) -> int:
    """Values per token the q, k and v that SDPA keeps hold. transformers: three projections.
    litgpt's CausalSelfAttention (fused_qkv_attention; litgpt/model.py at 4a9b7e62) splits one
    qkv output: with fewer KV heads than query heads it expands K and V to every query head
    before SDPA (`k.expand(...)` then `reshape`, a copy); without, V stays a view of the qkv
    output, which SDPA's saved value keeps whole. q and k are the rotary `torch.cat` results."""
    if not inputs.fused_qkv_attention:
        return widths.q + widths.k + widths.v
    if widths.k != widths.k_repeated:
        return widths.q + widths.k_repeated + widths.v_repeated
    return widths.q + widths.k + (widths.q + widths.k + widths.v)


def mixer_working_set(state: StateLayers, inputs: EstimateInputs, compute: int) -> int:
    """Bytes a linear-attention / state-space mixer holds during its prefill scan, beyond the
    residual stream (split over tensor-parallel ranks), as transformers 5.24's PyTorch scans
    allocate them (the fla / mamba-ssm kernels, when installed, hold less)."""
    batch, seq = inputs.batch_size, inputs.sequence_length
    tokens = batch * seq
    if state.kind == "mamba2":
        # mamba2_chunk_scan pads the sequence to a whole number of chunks
        chunks = -(-seq // state.chunk_size)
        padded = batch * chunks * state.chunk_size
        heads = state.state_heads
        fp32_per_token = (
            MAMBA2_FP32_INNER_COPIES * state.inner_width
            + MAMBA2_FP32_STATE_COPIES * heads * state.state_cols
            + MAMBA2_CHUNK_MATRICES * heads * state.chunk_size
            + MAMBA2_FP32_HEAD_COPIES * heads
        )
        chunk_states = batch * (chunks + 1) * MAMBA2_CHUNK_STATE_COPIES * state.recurrent_elements
        wide = state.projection_width + MAMBA2_CONV_WIDE_COPIES * state.conv_dim
        fp32 = padded * fp32_per_token + chunk_states
        return tokens * wide * compute + fp32 * FP32_BYTES
    if state.kind == "gated_deltanet":
        # torch_chunk_gated_delta_rule pads the sequence to a whole number of chunks
        padded = batch * -(-seq // GDN_CHUNK_SIZE) * GDN_CHUNK_SIZE
        fp32_per_token = state.state_heads * (
            GDN_FP32_KEY_COPIES * state.state_rows
            + GDN_FP32_VALUE_COPIES * state.state_cols
            + GDN_CHUNK_MATRICES * GDN_CHUNK_SIZE
        )
        wide = state.projection_width + GDN_CONV_WIDE_COPIES * state.conv_dim
        return tokens * wide * compute + padded * fp32_per_token * FP32_BYTES
    # mamba_selective_scan: (batch, intermediate, seq, state) float32 tensors
    fp32_per_token = (
        MAMBA_SCAN_FP32_STATE_COPIES * state.recurrent_elements
        + MAMBA_FP32_INNER_COPIES * state.inner_width
    )
    wide = state.projection_width + MAMBA_INNER_COPIES * state.inner_width
    return tokens * (wide * compute + fp32_per_token * FP32_BYTES)


def gated_deltanet_saved_bytes(state: StateLayers, inputs: EstimateInputs, compute: int) -> int:
    """Bytes one Gated DeltaNet layer saves for backward (the constants above): the causal
    convolution's input and its output before the slice to the sequence (conv_kernel - 1
    positions longer; F.conv1d padding=kernel - 1), torch_chunk_gated_delta_rule's float32
    tensors, one recurrent state per chunk (read by the scan's matmuls: the zeros it starts from
    and every state but the last), the gated RMSNorm and out_proj's input."""
    batch, seq = inputs.batch_size, inputs.sequence_length
    tokens = batch * seq
    chunks = -(-seq // GDN_CHUNK_SIZE)
    padded = batch * chunks * GDN_CHUNK_SIZE
    heads = state.state_heads
    key, value = heads * state.state_rows, heads * state.state_cols
    fp32 = (
        tokens * (GDN_SAVED_FP32_KEY_INPUTS * key + GDN_SAVED_FP32_HEAD_SCALARS * heads)
        + padded
        * (
            GDN_SAVED_FP32_KEY_COPIES * key
            + GDN_SAVED_FP32_VALUE_COPIES * value
            + heads * GDN_SAVED_CHUNK_MATRICES * GDN_CHUNK_SIZE
            + GDN_SAVED_FP32_PADDED_HEAD_SCALARS * heads
        )
        + batch * chunks * (state.recurrent_elements + heads)  # the states, chunk_decay
        + tokens * (GDN_NORM_FP32_COPIES * state.inner_width + heads)
    )
    conv = tokens * state.conv_dim + batch * state.conv_dim * (seq + state.conv_kernel - 1)
    wide = conv + tokens * (
        GDN_SAVED_COMPUTE_HEAD_SCALARS * heads
        + GDN_NORM_COMPUTE_COPIES * state.inner_width
        + state.inner_width  # out_proj's input
    )
    fp32 += GDN_SAVED_FP32_HEAD_PARAMETERS * heads
    return fp32 * FP32_BYTES + wide * compute + GDN_CHUNK_SIZE**2 * BOOL_BYTES


def _training_mixer_delta(
    architecture: Architecture, widths: AttentionWidths, inputs: EstimateInputs, compute: int
) -> int:
    """What a state layer saves for backward beyond an attention layer (negative: less): the
    scan's working set (taken as saved whole), and out_proj's input, in place of attention
    (Falcon-H1: beside it)."""
    state = architecture.state_layers
    if state is None:
        return 0
    tokens = inputs.batch_size * inputs.sequence_length
    if state.kind == "gated_deltanet":
        mixer = gated_deltanet_saved_bytes(state, inputs, compute)
    else:
        mixer = mixer_working_set(state, inputs, compute) + tokens * state.inner_width * compute
    if state.beside_attention:
        return mixer
    return mixer - _training_attention_split(widths, inputs, compute)


# Mamba2Block and NemotronHBlock: one RMSNorm and one mixer (Mamba-2, attention, MLP or MoE) per
# layer, where the other families' layers have attention and an MLP behind two norms
SINGLE_MIXER_BLOCK_NORMS = 1


def _single_mixer_blocks_delta(
    architecture: Architecture,
    widths: AttentionWidths,
    inputs: EstimateInputs,
    dtypes: ActivationDtypes,
    frozen_base: bool,
) -> tuple[int, int]:
    """(replicated, split) bytes the whole model saves beyond what the MLP-layer terms (each an
    attention + MLP layer behind two norms) and the state layers' deltas count, where layers
    are single-mixer blocks: their real attention blocks and norms less the counted ones."""
    if not (architecture.num_layers_without_mlp or architecture.num_layers_without_attention):
        return 0, 0
    state = architecture.state_layers
    replaced = state.count if state is not None and not state.beside_attention else 0
    mlp_layers = architecture.num_mlp_layers
    # attention blocks counted: one per MLP layer, less those the state deltas took away
    attention_blocks = architecture.num_attention_layers - (mlp_layers - replaced)
    tokens = inputs.batch_size * inputs.sequence_length
    norm = _norm_saved_bytes(architecture, dtypes.residual, frozen_base)
    norms = architecture.num_layers * SINGLE_MIXER_BLOCK_NORMS - mlp_layers * NORMS_PER_LAYER
    replicated = norms * tokens * architecture.hidden_size * norm
    split = attention_blocks * _training_attention_split(widths, inputs, dtypes.compute)
    return replicated, split


def bnb_saved_inputs(
    architecture: Architecture,
    widths: AttentionWidths,
    inputs: EstimateInputs,
    dtypes: ActivationDtypes,
    moe_layer: bool,
) -> LayerActivations:
    """The inputs one layer's frozen 4-bit projections keep in MatMul4Bit's ctx.tensors
    (bitsandbytes before 0.43.2) beyond what the layer saves anyway."""
    tokens = inputs.batch_size * inputs.sequence_length
    replicated = tokens * architecture.hidden_size * BNB_SAVED_NORM_OUTPUTS * dtypes.residual
    copies = (
        FUSED_QKV_BNB_SAVED_ATTENTION_OUTPUT_COPIES
        if inputs.fused_qkv_attention
        else BNB_SAVED_ATTENTION_OUTPUT_COPIES
    )
    split = tokens * widths.out * copies * dtypes.compute
    if not moe_layer:
        # bitsandbytes quantises nn.Linear only: fused experts stay 16-bit, saving nothing
        intermediate = architecture.intermediate_size * BNB_SAVED_MLP_INTERMEDIATES
        split += tokens * intermediate * dtypes.compute
    return LayerActivations(replicated, split)


def training_layer_activations(
    architecture: Architecture,
    widths: AttentionWidths,
    inputs: EstimateInputs,
    dtypes: ActivationDtypes,
    moe_layer: bool,
    frozen_base: bool,
) -> LayerActivations:
    """Activations one decoder layer saves for backward (Korthikanti et al. 2022, adapted to
    RMSNorm, gated MLPs at their real width, flash attention and frozen LoRA bases)."""
    batch, seq = inputs.batch_size, inputs.sequence_length
    tokens = batch * seq
    hidden = architecture.hidden_size
    compute, residual = dtypes.compute, dtypes.residual
    # a frozen projection saves no input: only its weight gradient would need it
    norm = _norm_saved_bytes(architecture, residual, frozen_base)
    replicated = tokens * hidden * NORMS_PER_LAYER * norm
    # MLA's q and kv latent norms are RMSNorms
    replicated += tokens * widths.latent * _rmsnorm_saved_bytes(residual, frozen_base)
    split = _training_attention_split(widths, inputs, compute)
    saved = (
        GATED_MLP_SAVED_INTERMEDIATES if architecture.gated_mlp else (PLAIN_MLP_SAVED_INTERMEDIATES)
    )
    if frozen_base:
        saved -= MLP_WEIGHT_GRADIENT_ONLY_INTERMEDIATES
    if frozen_base and _bnb_saves_inputs(inputs):
        bnb = bnb_saved_inputs(architecture, widths, inputs, dtypes, moe_layer)
        replicated += bnb.replicated
        split += bnb.split
    saved += _activation_extra_intermediates(architecture)
    if moe_layer:
        moe_intermediate, per_token, shared = _mlp_widths(architecture)
        pairs = tokens * per_token
        replicated += tokens * architecture.num_experts * ROUTER_PROBABILITY_BYTES
        gathered = 0 if frozen_base else MOE_GATHERED_INPUT_COPIES * residual
        replicated += pairs * hidden * (gathered + MOE_EXPERT_OUTPUT_COPIES * compute)
        split += pairs * moe_intermediate * saved * compute
        split += tokens * shared * saved * compute
    else:
        split += tokens * architecture.intermediate_size * saved * compute
    return LayerActivations(replicated, split)


def inference_layer_activations(
    architecture: Architecture,
    widths: AttentionWidths,
    inputs: EstimateInputs,
    dtypes: ActivationDtypes,
    moe_layer: bool,
    tensor_parallel: int,
    follows_a_layer: bool = True,
    moe_dispatch_bytes: int = 0,
    keeps_embeddings: bool = False,
    mlp_transient: Fraction | int = 0,
) -> Fraction:
    """Peak working set of one decoder layer during prefill (no_grad: nothing is kept for
    backward, so the peak is the larger of the attention and MLP sub-blocks). `follows_a_layer`:
    another layer ran before it on this GPU (what it returned may still be referenced).
    `moe_dispatch_bytes`: an MoE layer's expert-parallel dispatch/combine buffers.
    `keeps_embeddings`: the model's forward, on this GPU, holds its embedding output and the
    layer's input through the layer (a language model's decoder loop). `mlp_transient`: what a
    quantised matmul allocates while it runs (per GPU), in the MLP sub-block."""
    batch, seq = inputs.batch_size, inputs.sequence_length
    tokens = batch * seq
    hidden = architecture.hidden_size
    compute, residual = dtypes.compute, dtypes.residual
    hidden_copies = INFERENCE_HIDDEN_COPIES
    if keeps_embeddings and follows_a_layer:
        # the first layer's input is the embedding output itself; later layers' are not
        hidden_copies += INFERENCE_EMBEDDINGS_KEPT
    hidden_bytes = tokens * hidden * hidden_copies * residual
    mlp_layer_input = 0
    if keeps_embeddings:
        mlp_layer_input = tokens * hidden * INFERENCE_MLP_LAYER_INPUT_COPIES * residual
    # attention: q, k, v, their rotary copies, the output
    projections = widths.q + widths.k + widths.v
    rotary = (widths.q + widths.k) * INFERENCE_ROTARY_COPIES
    attention_split = tokens * (projections + rotary + widths.out) * compute
    attention_replicated = hidden_bytes + tokens * widths.latent * compute
    if inputs.attention_implementation == "eager":
        if architecture.eager_softmax_float32:
            # eager_attention_forward: scores * scaling, + mask (a new tensor), softmax(dtype=
            # float32) while its input lives, .to(compute) while that lives: compute + 4 +
            # compute B per score element, 4 + 4 in float32
            cast = compute if compute != FP32_BYTES else 0
            scores_element = compute + EAGER_SOFTMAX_BYTES + cast
            float16 = inputs.weight_dtype in FLOAT16_COMPUTE_WEIGHT_DTYPES
            if compute != FP32_BYTES and not float16:
                # ATen's softmax(input, dim, dtype) (torch aten/src/ATen/native/SoftMax.cpp)
                # takes the fused half_to_float kernel only for a CUDA float16 input; a bfloat16
                # one is converted first, `input_.toType(dtype)`, and _softmax runs on that
                # float32 copy, alive beside the float32 output and the 16-bit input: compute +
                # 4 + 4 B per score element (live-tensor snapshot at the peak of
                # deepseek_v2-infer-b4-s1024-bf16-eager: `add` 64 MiB, `_to_copy` and
                # `_softmax` 128 MiB each on 33.6 M score elements, 10 B each; llama-infer-b2-
                # s512-bf16-eager: peak +41.9 MiB on 4.19 M score elements, 10.5 B each)
                converted = compute + EAGER_SOFTMAX_CONVERTED_BYTES + EAGER_SOFTMAX_BYTES
                scores_element = max(scores_element, converted)
        else:
            # a compute-dtype softmax: the family's score-sized tensors alive at once
            # (architecture.py _COMPUTE_DTYPE_SOFTMAX: gpt2 2)
            scores_element = architecture.eager_score_copies * compute
        if follows_a_layer:
            # the previous layer's probabilities, still referenced by the model's layer loop
            # (architecture.py _CARRIED_PROBABILITIES: falcon 1)
            scores_element += architecture.eager_probabilities_carried * compute
        attention_split += tokens * (widths.k_repeated + widths.v_repeated) * compute
        attention_split += batch * widths.heads * seq * seq * scores_element
        # the 4-D float causal mask (batch, 1, s, s) eager attention adds to the scores
        attention_replicated += batch * seq * seq * compute
    live = (
        GATED_MLP_INFERENCE_INTERMEDIATES
        if architecture.gated_mlp
        else (PLAIN_MLP_INFERENCE_INTERMEDIATES)
    )
    live += _activation_extra_intermediates(architecture, inference=True)
    mlp_replicated = hidden_bytes + mlp_layer_input
    if moe_layer:
        moe_intermediate, per_token, shared = _mlp_widths(architecture)
        pairs = tokens * per_token
        mlp_replicated += tokens * architecture.num_experts * ROUTER_PROBABILITY_BYTES
        moe_copies = MOE_GATHERED_INPUT_COPIES + MOE_EXPERT_OUTPUT_COPIES
        mlp_replicated += pairs * hidden * moe_copies * compute + moe_dispatch_bytes
        mlp_split = (pairs * moe_intermediate + tokens * shared) * live * compute
    else:
        mlp_split = tokens * architecture.intermediate_size * live * compute
    return Fraction(
        max(
            _per_gpu(attention_replicated, attention_split, tensor_parallel),
            _per_gpu(mlp_replicated, mlp_split, tensor_parallel) + mlp_transient,
        )
    )


def lora_adapter_parameters(architecture: Architecture, inputs: EstimateInputs) -> int:
    """LoRA: r * (in + out) per adapted matrix (A: in x r, B: r x out) over the targets; PEFT
    gives fused expert parameters rank r x lora_rank_factor."""
    rank = inputs.lora_rank
    return sum(
        rank * layer.lora_rank_factor * (layer.in_features + layer.out_features) * layer.count
        for layer in lora_targets(architecture, inputs)
    )


def lora_targets(architecture: Architecture, inputs: EstimateInputs) -> tuple[LinearLayer, ...]:
    # which matrices PEFT adapts for target_modules is the architecture's knowledge
    return lora_target_layers(architecture, inputs.lora_target_modules)


def lora_activations(
    architecture: Architecture, inputs: EstimateInputs, dtypes: ActivationDtypes
) -> int:
    """Whole-model LoRA activations. An adapted nn.Linear: PEFT casts its input to the adapter
    dtype (float32) and lora_A saves it, lora_B saves lora_A's output (under autocast lora_A saves
    a 16-bit cast instead); with lora_dropout lora_A saves the dropped copy and dropout its mask;
    litgpt's fused qkv (fused_qkv_attention) has one lora_A for its adapted q, k and v. An
    adapted fused expert parameter (PEFT target_parameters): the merged
    weight W + BA is materialised in the compute dtype and saved for backward, every layer."""
    tokens = inputs.batch_size * inputs.sequence_length
    # the input cast to the adapter dtype (16-bit under autocast or with 16-bit adapters)
    element = 2 if inputs.mixed_precision else lora_adapter_bytes(inputs)
    # with dropout, the dropped copy lora_A keeps and its mask
    input_element = element + (LORA_DROPOUT_MASK_BYTES if inputs.lora_dropout else 0)
    total = 0
    fused_input_counted = False
    for layer in lora_targets(architecture, inputs):
        if layer.routed_expert:
            merged = layer.in_features * layer.out_features * layer.count
            total += merged * LORA_MERGED_EXPERT_COPIES * dtypes.compute
            continue
        rank = inputs.lora_rank * layer.lora_rank_factor
        kept_input = layer.in_features * input_element
        if inputs.fused_qkv_attention and layer.name in LITGPT_FUSED_QKV_NAMES:
            # one lora_A for the fused qkv: its input once, its r rows per adapted part
            kept_input = 0 if fused_input_counted else kept_input
            fused_input_counted = True
        total += tokens * layer.active_count * (kept_input + rank * element)
    return total


def _moe_layer_counts(architecture: Architecture) -> tuple[int, int]:
    """(dense layers, MoE layers)."""
    layers = architecture.num_mlp_layers  # Mamba-2 and Nemotron-H blocks may have none
    if not architecture.is_moe:
        return layers, 0
    dense = min(architecture.num_dense_layers, layers)
    return dense, layers - dense


def _training_activations(
    architecture: Architecture,
    inputs: EstimateInputs,
    layout: Layout,
    stage: Stage,
    dtypes: ActivationDtypes,
    widths: AttentionWidths,
) -> tuple[Fraction, Fraction]:
    """(activations at the peak before any gradient exists, what is alive beside every
    gradient while backward recomputes the stage's lowest checkpointed layer: 0 without
    checkpointing)."""
    tp = layout.tensor_parallel
    tokens = inputs.batch_size * inputs.sequence_length
    frozen_base = inputs.finetuning in ("lora", "qlora")
    dense_layers, moe_layers = _moe_layer_counts(architecture)
    per_kind = [
        (
            count,
            training_layer_activations(architecture, widths, inputs, dtypes, moe, frozen_base),
        )
        for count, moe in ((dense_layers, False), (moe_layers, True))
        if count
    ]
    all_layers = sum(
        (count * _per_gpu(layer.replicated, layer.split, tp) for count, layer in per_kind),
        0,
    )
    # hybrids: the state layers hold a linear-attention / state-space mixer instead of attention
    mixer_delta = _divide(_training_mixer_delta(architecture, widths, inputs, dtypes.compute), tp)
    if architecture.state_layers is not None:
        all_layers += architecture.state_layers.count * mixer_delta
    blocks_replicated, blocks_split = _single_mixer_blocks_delta(
        architecture, widths, inputs, dtypes, frozen_base
    )
    all_layers += _per_gpu(blocks_replicated, blocks_split, tp)
    lora_all: Fraction | int = 0
    if frozen_base:
        lora_all = _divide(lora_activations(architecture, inputs, dtypes), tp)
    hidden = architecture.hidden_size
    # the saved set of the one checkpointed layer being recomputed in backward (0 without)
    recomputed: Fraction | int = 0
    beside_gradients: Fraction | int = 0
    if inputs.gradient_checkpointing:
        one_layer: Fraction | int = max(
            (_per_gpu(layer.replicated, layer.split, tp) for _, layer in per_kind), default=0
        )
        state = architecture.state_layers
        if state is not None:
            one_layer = max(one_layer, one_layer + mixer_delta)
        if state is not None and architecture.num_layers_without_mlp:
            # a single-mixer block: its norm and its Mamba-2 mixer
            mixer = mixer_working_set(state, inputs, dtypes.compute)
            mixer += tokens * state.inner_width * dtypes.compute
            norm = _norm_saved_bytes(architecture, dtypes.residual, frozen_base)
            one_layer = max(one_layer, _per_gpu(tokens * hidden * norm, mixer, tp))
        one_layer += Fraction(lora_all) / architecture.num_layers
        # torchtitan / torchtune layer-selective AC (torchtitan models/llama3/infra/parallelize.py
        # _apply_ac_to_transformer_block): the wrapper counts the layers from 1 and checkpoints
        # those with count % k == 0; the others keep everything they save
        layers = max(stage.num_layers, 1)
        checkpointed = layers // inputs.checkpoint_every_k_layers
        kept_inputs = checkpointed * tokens * hidden * dtypes.residual
        plain = Fraction(layers - checkpointed, layers)
        stage_layers = (all_layers + lora_all) * stage.layer_fraction
        # what one micro-batch keeps through to its backward, for each one in flight
        kept = kept_inputs * CHECKPOINTED_INPUTS_PER_LAYER + stage_layers * plain
        if inputs.activation_offloading:
            # the kept inputs (and the plain layers' sets) are on the host; the GPU holds the
            # last few still being copied (fwd_stash), at most the kept set itself
            stash = OFFLOAD_FORWARD_STASH_TENSORS * tokens * hidden * dtypes.residual
            kept = min(kept, Fraction(stash))
        stored: Fraction | int = kept * stage.in_flight_micro_batches
        if checkpointed:
            recomputed = one_layer
            # backward reaches the lowest checkpointed layer last, with the gradients of every
            # layer above it allocated: its recomputed set and kept input, and the k - 1 whole
            # layers below it (live-tensor snapshot of a llama case with a 512-token vocabulary,
            # b8 s512 fp32 checkpointed, where this phase peaks: the recomputed MLP's tensors
            # beside the weight gradients of the layers above)
            below = stage_layers / layers * (inputs.checkpoint_every_k_layers - 1)
            beside_gradients = one_layer + tokens * hidden * dtypes.residual + below
            # and what the other micro-batches in flight on this pipeline stage keep
            beside_gradients += kept * (stage.in_flight_micro_batches - 1)
    else:
        stage_layers = (all_layers + lora_all) * stage.layer_fraction
        stored = stage_layers * stage.in_flight_micro_batches
        if inputs.activation_offloading:
            # every layer's saved set on the host but the node's own and the prefetched one's
            # in backward (the fwd_stash's 5 tensors are less than that)
            one_layer = max(
                (_per_gpu(layer.replicated, layer.split, tp) for _, layer in per_kind), default=0
            )
            one_layer += Fraction(lora_all) / max(architecture.num_layers, 1)
            stored = min(stored, OFFLOAD_BACKWARD_LAYERS * one_layer)
    # one layer's context-/expert-parallel communication buffers, while it runs (0 without)
    transient = training_parallel_buffers(architecture, inputs, layout, dtypes, widths)
    # what one layer holds while backward runs through it: its communication buffers and, under
    # checkpointing, its recomputed saved set. torch.utils.checkpoint (non-reentrant, the
    # use_reentrant=False transformers 5.25 modeling_utils.py gradient_checkpointing_enable
    # passes to GradientCheckpointingLayer, modeling_layers.py) recomputes a layer only when
    # backward reaches it, after LogSoftmaxBackward0 and the LM head's and final norm's backward
    # have freed the loss tensors (llama-train-b8-s512-adamw-fp32-ckpt-sdpa: step 2's backward
    # peak is 1,556.3 MiB above weights and optimizer states, the kept inputs 32 + final norm 24
    # + loss 1,500 MiB, without the 164 MiB of a recomputed layer)
    layer_backward = recomputed + transient
    if beside_gradients:
        beside_gradients += transient
    if stage.has_lm_head:
        # final norm, then the loss's float32 b*s*V tensors (and the soft cap's tanh output)
        stored += tokens * hidden * _norm_saved_bytes(architecture, dtypes.residual, frozen_base)
        logit_element: Fraction | int = LOSS_FP32_LOGIT_COPIES * FP32_BYTES
        if inputs.cross_entropy == "chunked":
            chunk = Fraction(FP32_BYTES, CHUNKED_LOSS_CHUNKS)
            # end of forward: every chunk's 16-bit logits and saved float32 log_softmax, and the
            # last chunk's float32 copy (none when the logits are float32 already); backward:
            # the saved outputs and one chunk's two float32 gradients
            copy = chunk if dtypes.compute != FP32_BYTES else 0
            logit_element = max(dtypes.compute + FP32_BYTES + copy, FP32_BYTES + 2 * chunk)
        elif inputs.cross_entropy == "chunked_compiled":
            # compiled, upcast and log_softmax fuse into one kernel and AOTAutograd's min-cut
            # partitioner (torch/_functorch/partitioners.py) saves the chunk's 16-bit input and
            # per-token statistics, recomputing the rest: every chunk's 16-bit logits, and in
            # backward one chunk's 16-bit gradient beside them
            logit_element = dtypes.compute * (1 + Fraction(1, CHUNKED_LOSS_CHUNKS))
        if architecture.final_logit_softcapping:
            logit_element += SOFTCAP_LOGIT_COPIES * dtypes.compute
        # the loss's buffers and a layer's (forward or backward) are not alive at once, nor the
        # loss and what the previous micro-batch's graph holds at the end of the next forward
        logits = tokens * architecture.vocab_size * logit_element
        loss = logits if tp == 1 else Fraction(logits) / tp
        previous = previous_graph_bytes(architecture, inputs, layout, stage, dtypes, widths)
        stored += max(loss, previous, layer_backward)
    else:
        stored += layer_backward
    return Fraction(stored), Fraction(beside_gradients)


def previous_graph_bytes(
    architecture: Architecture,
    inputs: EstimateInputs,
    layout: Layout,
    stage: Stage,
    dtypes: ActivationDtypes,
    widths: AttentionWidths,
) -> Fraction | int:
    """previous_graph_alive: what the last micro-batch's graph, kept by the loop, still holds at
    the end of the next forward (the stage with the LM head), beside that forward's activations:
    its float32 logits, the new logits and their float32 cast, and the tensors its nodes keep as
    ctx attributes, the 4-bit layers' inputs (bitsandbytes before 0.43.2). Saved variables are
    gone after backward; with gradient checkpointing the forward ran without a graph."""
    if not inputs.previous_graph_alive:
        return 0
    tokens = inputs.batch_size * inputs.sequence_length
    logit_element = PREVIOUS_GRAPH_FP32_LOGIT_COPIES * FP32_BYTES
    logit_element += PREVIOUS_GRAPH_COMPUTE_LOGIT_COPIES * dtypes.compute
    held: Fraction | int = _divide(
        tokens * architecture.vocab_size * logit_element, layout.tensor_parallel
    )
    frozen_base = inputs.finetuning in ("lora", "qlora")
    if frozen_base and _bnb_saves_inputs(inputs) and not inputs.gradient_checkpointing:
        dense_layers, moe_layers = _moe_layer_counts(architecture)
        model_inputs: Fraction | int = 0
        for count, moe in ((dense_layers, False), (moe_layers, True)):
            bnb = bnb_saved_inputs(architecture, widths, inputs, dtypes, moe)
            model_inputs += count * _per_gpu(bnb.replicated, bnb.split, layout.tensor_parallel)
        held += model_inputs * stage.layer_fraction * BNB_CTX_HELD_INPUT_COPIES
    return held


@dataclass(frozen=True)
class ParallelBuffers:
    """One layer's communication buffers on one GPU in training (bytes): ring attention's K/V
    (forward, backward) and the expert-parallel all-to-all's send side."""

    ring_forward: Fraction | int = 0
    ring_backward: Fraction | int = 0
    all_to_all: int = 0

    @property
    def peak(self) -> Fraction | int:
        # attention and the MoE block run one after the other
        return max(self.ring_forward, self.ring_backward, self.all_to_all)


def parallel_buffers(
    architecture: Architecture,
    inputs: EstimateInputs,
    layout: Layout,
    dtypes: ActivationDtypes,
    widths: AttentionWidths,
) -> ParallelBuffers:
    """`inputs` as one GPU sees them: sequence_length already the CP rank's share."""
    tokens = inputs.batch_size * inputs.sequence_length
    cp, tp = layout.context_parallel, layout.tensor_parallel
    ring_forward: Fraction | int = 0
    ring_backward: Fraction | int = 0
    if cp > 1:
        # one rank's K and V chunk (its 1/tp of the KV heads) in the compute dtype
        kv_chunk = _divide(tokens * (widths.k + widths.v) * dtypes.compute, tp)
        q_chunk = _divide(tokens * widths.q * dtypes.compute, tp)
        ring_forward = cp * kv_chunk
        ring_backward = RING_BACKWARD_KV_BUFFERS * kv_chunk + RING_BACKWARD_Q_BUFFERS * q_chunk
    all_to_all = 0
    if layout.expert_parallel > 1 and architecture.is_moe:
        pairs = tokens * architecture.num_experts_per_token
        all_to_all = pairs * architecture.hidden_size * dtypes.compute * EP_ALL_TO_ALL_SEND_BUFFERS
    return ParallelBuffers(ring_forward, ring_backward, all_to_all)


def training_parallel_buffers(
    architecture: Architecture,
    inputs: EstimateInputs,
    layout: Layout,
    dtypes: ActivationDtypes,
    widths: AttentionWidths,
) -> Fraction | int:
    if layout.context_parallel == layout.expert_parallel == 1:
        return 0
    return parallel_buffers(architecture, inputs, layout, dtypes, widths).peak


def inference_dispatch_bytes(
    architecture: Architecture, inputs: EstimateInputs, layout: Layout, dtypes: ActivationDtypes
) -> int:
    """vLLM's allgather_reducescatter dispatch/combine of one MoE layer under expert parallelism
    across data-parallel ranks: every rank's tokens gathered (hidden states, top-k weights and
    ids) and the experts' output over all of them, before the reduce-scatter. With dp 1 the
    tokens are already on every rank (no dispatch)."""
    dp = layout.data_parallel
    if layout.expert_parallel == 1 or dp == 1 or not architecture.is_moe:
        return 0
    gathered = dp * inputs.batch_size * inputs.sequence_length
    hidden = gathered * architecture.hidden_size * dtypes.compute * AGRS_GATHERED_HIDDEN_COPIES
    return hidden + gathered * architecture.num_experts_per_token * AGRS_TOPK_BYTES


def _bnb_4bit_dequantised(
    inputs: EstimateInputs, matrix: int, tensor_parallel: int
) -> Fraction | int:
    """The dequantised copy (and its cast to the compute dtype) of a 4-bit matrix of `matrix`
    values, made for matmuls over more than one token (bitsandbytes matmul_4bit; a single
    token takes the gemv kernel without it)."""
    tokens = inputs.batch_size * inputs.sequence_length
    if inputs.weight_dtype not in BNB_4BIT_DTYPES or tokens == 1:
        return 0
    copies = NF4_DEQUANTISED_MATRICES * BNB_4BIT_DEQUANT_BYTES[inputs.bnb_4bit_dequant_path]
    return _divide(matrix * copies, tensor_parallel)


def _dequantisation_buffer(
    inputs: EstimateInputs, parts: ModelParts, tensor_parallel: int
) -> Fraction | int:
    """Training's dequantised copy of the largest 4-bit matrix, the LM head when it is
    quantised too."""
    largest = max(parts.largest_linear, parts.quantised_lm_head)
    return _bnb_4bit_dequantised(inputs, largest, tensor_parallel)


def gptq_kernel_buffers(inputs: EstimateInputs, parts: ModelParts, tensor_parallel: int) -> int:
    """What the GPTQ kernel (gptq_kernel) holds beside the weights through every step:
    exllama's and exllamav2's buffers, allocated once at post_init (AutoGPTQ 0.5.0)."""
    if inputs.weight_dtype != "gptq_int4":
        return 0
    largest = parts.largest_linear
    if inputs.gptq_kernel == "exllama":
        temp_dq = largest * EXLLAMA_DQ_BYTES
        return round(_divide(temp_dq, tensor_parallel)) + EXLLAMA_TEMP_STATE_BYTES_NO_ACT_ORDER
    if inputs.gptq_kernel == "exllamav2":
        return round(_divide(parts.exllamav2_scratch, tensor_parallel))
    return 0


def gptq_cuda_old_dequantised(
    inputs: EstimateInputs, parts: ModelParts, tensor_parallel: int
) -> int:
    """cuda-old's dequantised copy of the largest matrix, made per matmul over 128 rows or
    more (AutoGPTQ 0.5.0 qlinear_cuda_old.forward)."""
    rows = inputs.batch_size * inputs.sequence_length
    if inputs.weight_dtype != "gptq_int4" or inputs.gptq_kernel != "cuda_old":
        return 0
    if rows < CUDA_OLD_KERNEL_SWITCH_THRESHOLD:
        return 0
    return round(_divide(parts.largest_linear * CUDA_OLD_DEQUANTISED_BYTES, tensor_parallel))


def awq_gemm_buffers(inputs: EstimateInputs, parts: ModelParts, tensor_parallel: int) -> int:
    """AutoAWQ's GEMM kernel over 1024 tokens or more: the float16 copy of the largest matrix."""
    tokens = inputs.batch_size * inputs.sequence_length
    if inputs.weight_dtype != "awq_int4" or tokens < AWQ_GEMM_DEQUANTISE_FROM_TOKENS:
        return 0
    return round(_divide(parts.largest_linear * AWQ_DEQUANTISED_BYTES, tensor_parallel))


def int8_matmul_buffers(inputs: EstimateInputs, parts: ModelParts, tensor_parallel: int) -> int:
    """bitsandbytes LLM.int8's working memory in its largest matmul over the prefill's tokens
    (bnb_int8_matmul): the int8 input copies and the int32 product, and with the col32 layout
    the first forward's transformed copy of the largest weight."""
    if inputs.weight_dtype != "int8":
        return 0
    layout = inputs.bnb_int8_matmul
    per_token = parts.int8_matmul_col32 if layout == "col32" else parts.int8_matmul_row_major
    tokens = inputs.batch_size * inputs.sequence_length
    transformed = parts.largest_linear * INT8_FIRST_FORWARD_WEIGHT_COPIES[layout]
    return round(_divide(tokens * per_token + transformed, tensor_parallel))


def _matmul_transients(
    inputs: EstimateInputs, parts: ModelParts, tensor_parallel: int
) -> tuple[Fraction | int, Fraction | int]:
    """What quantised matmuls allocate while they run, beside their inputs and outputs: in the
    largest layer matmul (an MLP projection) and in the LM head's when it is quantised too
    (bitsandbytes 4-bit dequantised copies, GPTQ cuda-old's, AWQ GEMM's, LLM.int8's copies)."""
    layer = _bnb_4bit_dequantised(inputs, parts.largest_linear, tensor_parallel)
    head = _bnb_4bit_dequantised(inputs, parts.quantised_lm_head, tensor_parallel)
    layer += gptq_cuda_old_dequantised(inputs, parts, tensor_parallel)
    layer += awq_gemm_buffers(inputs, parts, tensor_parallel)
    layer += int8_matmul_buffers(inputs, parts, tensor_parallel)
    return layer, head


def _inference_activations(
    architecture: Architecture,
    inputs: EstimateInputs,
    layout: Layout,
    stage: Stage,
    dtypes: ActivationDtypes,
    widths: AttentionWidths,
    parts: ModelParts | None = None,
) -> Fraction:
    """The prefill's peak: the busiest layer (quantised matmuls' transients in its MLP
    sub-block, where the largest matrices are), then the LM head."""
    tp = layout.tensor_parallel
    layer_transient, head_transient = (
        _matmul_transients(inputs, parts, tp) if parts is not None else (0, 0)
    )
    dense_layers, moe_layers = _moe_layer_counts(architecture)
    # the busiest layer is one that follows another when the stage holds more than one
    follows_a_layer = stage.num_layers > 1
    dispatch = inference_dispatch_bytes(architecture, inputs, layout, dtypes)

    def layer_peaks(mlp_transient: Fraction | int) -> list[Fraction | int]:
        return [
            inference_layer_activations(
                architecture,
                widths,
                inputs,
                dtypes,
                moe,
                tp,
                follows_a_layer,
                dispatch if moe else 0,
                keeps_embeddings=stage.has_embeddings,
                mlp_transient=mlp_transient,
            )
            for count, moe in ((dense_layers, False), (moe_layers, True))
            if count
        ]

    mixer_peaks: list[Fraction | int] = []
    state = architecture.state_layers
    if state is not None:
        # a state layer's mixer sub-block (its MLP sub-block is one of the peaks above)
        tokens = inputs.batch_size * inputs.sequence_length
        copies = INFERENCE_HIDDEN_COPIES
        if stage.has_embeddings and follows_a_layer:
            # the embedding output the model's loop keeps (live-tensor snapshot at the peak of
            # nemotron_h-infer-b2-s1024-bf16-sdpa: `embedding` beside layer 4's output and
            # layer 5's norm in its Mamba-2 mixer)
            copies += INFERENCE_EMBEDDINGS_KEPT
        hidden_bytes = tokens * architecture.hidden_size * copies * dtypes.residual
        mixer = mixer_working_set(state, inputs, dtypes.compute)
        mixer_peaks.append(_per_gpu(hidden_bytes, mixer, tp))
    peak = max([*layer_peaks(layer_transient), *mixer_peaks])
    if stage.has_lm_head:
        # the last position's logits (generate()), or every position's (a plain forward), in the
        # compute dtype, and the last position's float32 copy the sampler reads
        positions = inputs.sequence_length if inputs.inference_logits == "all" else 1
        logits = inputs.batch_size * architecture.vocab_size
        logit_bytes = logits * positions * dtypes.compute
        logit_bytes += logits * INFERENCE_LOGITS_FP32_COPIES * FP32_BYTES
        if inputs.inference_logits == "all":
            tokens = inputs.batch_size * inputs.sequence_length
            head_input = tokens * architecture.hidden_size * INFERENCE_LM_HEAD_INPUT_COPIES
            head = _per_gpu(head_input * dtypes.residual, logit_bytes, tp) + head_transient
            return Fraction(max(peak, head))
        if head_transient:
            # a quantised head's transient comes after the layers' (its matmul follows them)
            peak = max(peak, max([*layer_peaks(0), *mixer_peaks]) + head_transient)
        peak += _divide(logit_bytes, tp)
    return Fraction(peak)


def lora_adapter_bytes(inputs: EstimateInputs) -> int:
    """Bytes per LoRA adapter parameter: the lora_adapter_dtype field (PEFT: float32)."""
    return int(ELEMENT_BYTES[inputs.lora_adapter_dtype])
