"""The harness's cases: small random-weight models of real families, and what to run on them.

Each family's config is its published config.json with the same keys and layout, reduced in
depth and width (head_dim kept realistic, 64-256) so that one case runs in well under a minute on
two CPU cores while the model still takes tens to hundreds of MiB. Dropout is set to 0 wherever a
family has it, as in modern fine-tuning recipes (the engine assumes no dropout masks).

Pure Python: this module imports neither torch nor the engine, so the case list and the engine
payloads can be built anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Families, each different from the others in attention, MLP, vocabulary, MoE or tied embeddings.
FAMILY_CONFIGS: dict[str, dict[str, Any]] = {
    # meta-llama/Llama-2-7b-hf layout: GQA (as Llama-2-70B / Llama-3), SwiGLU, untied, 32k vocab
    "llama": {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 512,
        "intermediate_size": 1536,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "vocab_size": 32000,
        "max_position_embeddings": 4096,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    },
    # Qwen/Qwen2.5-0.5B layout: q/k/v biases, tied embeddings, 151,936-token vocabulary
    "qwen2": {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": 512,
        "intermediate_size": 2048,
        "num_hidden_layers": 2,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "max_window_layers": 2,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 32768,
        "use_sliding_window": False,
        "attention_dropout": 0.0,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
    },
    # google/gemma-2-2b layout: head_dim 256, sliding/global layers alternating, GeGLU, four norms
    # per layer, logit soft-capping (hence eager attention only), tied, 256k vocabulary
    "gemma2": {
        "architectures": ["Gemma2ForCausalLM"],
        "model_type": "gemma2",
        "hidden_size": 512,
        "intermediate_size": 2048,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 256,
        "vocab_size": 256000,
        "max_position_embeddings": 8192,
        "hidden_activation": "gelu_pytorch_tanh",
        "query_pre_attn_scalar": 256,
        "sliding_window": 256,
        "final_logit_softcapping": 30.0,
        "attn_logit_softcapping": 50.0,
        "rms_norm_eps": 1e-06,
        "rope_theta": 10000.0,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
    },
    # mistralai/Mistral-7B-v0.1 layout: sliding-window attention on every layer, head_dim 128
    "mistral": {
        "architectures": ["MistralForCausalLM"],
        "model_type": "mistral",
        "hidden_size": 512,
        "intermediate_size": 1792,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "vocab_size": 32000,
        "max_position_embeddings": 32768,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0,
        "sliding_window": 512,
        "attention_dropout": 0.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    },
    # mistralai/Mixtral-8x7B-v0.1 layout: 8 experts, 2 per token, router
    "mixtral": {
        "architectures": ["MixtralForCausalLM"],
        "model_type": "mixtral",
        "hidden_size": 512,
        "intermediate_size": 1024,
        "num_hidden_layers": 2,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
        "vocab_size": 32000,
        "max_position_embeddings": 32768,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-05,
        "rope_theta": 1000000.0,
        "router_aux_loss_coef": 0.02,
        "output_router_logits": False,
        "sliding_window": None,
        "attention_dropout": 0.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    },
    # deepseek-ai/DeepSeek-V2-Lite layout: multi-head latent attention (no q LoRA), MoE with
    # shared experts after one dense layer
    "deepseek_v2": {
        "architectures": ["DeepseekV2ForCausalLM"],
        "model_type": "deepseek_v2",
        "hidden_size": 512,
        "intermediate_size": 1408,
        "moe_intermediate_size": 256,
        "num_hidden_layers": 3,
        "num_attention_heads": 8,
        "num_key_value_heads": 8,
        "q_lora_rank": None,
        "kv_lora_rank": 128,
        "qk_nope_head_dim": 64,
        "qk_rope_head_dim": 32,
        "v_head_dim": 64,
        "n_routed_experts": 8,
        "n_shared_experts": 2,
        "num_experts_per_tok": 2,
        "first_k_dense_replace": 1,
        "moe_layer_freq": 1,
        "n_group": 1,
        "topk_group": 1,
        "topk_method": "greedy",
        "norm_topk_prob": False,
        "routed_scaling_factor": 1.0,
        "scoring_func": "softmax",
        "aux_loss_alpha": 0.001,
        "seq_aux": True,
        "vocab_size": 32000,
        "max_position_embeddings": 4096,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-06,
        "rope_theta": 10000.0,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    },
    # microsoft/phi-2 layout: head_dim 80, plain GELU MLP, partial rotary (40 % = 32 dims),
    # biases everywhere, LayerNorm, parallel attention and MLP, untied LM head with bias
    "phi": {
        "architectures": ["PhiForCausalLM"],
        "model_type": "phi",
        "hidden_size": 640,
        "intermediate_size": 2560,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 8,
        "partial_rotary_factor": 0.4,
        "vocab_size": 51200,
        "max_position_embeddings": 2048,
        "hidden_act": "gelu_new",
        "layer_norm_eps": 1e-05,
        "rope_theta": 10000.0,
        "qk_layernorm": False,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attention_dropout": 0.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float16",
    },
    # openai-community/gpt2 layout: learned positions, Conv1D, MHA, GELU, tied, 50,257 vocab
    "gpt2": {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "n_embd": 512,
        "n_layer": 4,
        "n_head": 8,
        "n_positions": 1024,
        "n_ctx": 1024,
        "n_inner": None,
        "vocab_size": 50257,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-05,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
    },
    # tiiuae/falcon-7b layout: multi-query attention (one KV head), parallel attention/MLP,
    # plain GELU MLP, no biases, 65k vocab
    "falcon": {
        "architectures": ["FalconForCausalLM"],
        "model_type": "falcon",
        "hidden_size": 512,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "multi_query": True,
        "new_decoder_architecture": False,
        "parallel_attn": True,
        "bias": False,
        "alibi": False,
        "vocab_size": 65024,
        "layer_norm_epsilon": 1e-05,
        "hidden_dropout": 0.0,
        "attention_dropout": 0.0,
        "bos_token_id": 11,
        "eos_token_id": 11,
        "torch_dtype": "bfloat16",
    },
    # EleutherAI/pythia-410m layout (GPT-NeoX): MHA with fused QKV, partial rotary (25 %),
    # parallel residual, untied, biases
    "gpt_neox": {
        "architectures": ["GPTNeoXForCausalLM"],
        "model_type": "gpt_neox",
        "hidden_size": 512,
        "intermediate_size": 2048,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "rotary_pct": 0.25,
        "rotary_emb_base": 10000,
        "vocab_size": 50304,
        "max_position_embeddings": 2048,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-05,
        "use_parallel_residual": True,
        "attention_dropout": 0.0,
        "hidden_dropout": 0.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float16",
    },
    # Qwen/Qwen3-8B layout: q/k RMS norms, head_dim 128 != hidden / heads, untied
    "qwen3": {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "hidden_size": 512,
        "intermediate_size": 1536,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "head_dim": 128,
        "vocab_size": 151936,
        "max_position_embeddings": 40960,
        "max_window_layers": 4,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "use_sliding_window": False,
        "sliding_window": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    },
    # Mamba2Config's layout (transformers 5.25 defaults: head_dim 64, state 128, n_groups 8,
    # expand 2, conv_kernel 4, chunk_size 256, 32,768-token vocabulary): no attention, no MLP
    "mamba2": {
        "architectures": ["Mamba2ForCausalLM"],
        "model_type": "mamba2",
        "hidden_size": 512,
        "num_hidden_layers": 4,
        "num_heads": 16,
        "head_dim": 64,
        "expand": 2,
        "state_size": 128,
        "n_groups": 2,
        "conv_kernel": 4,
        "chunk_size": 256,
        "vocab_size": 32768,
        "use_bias": False,
        "use_conv_bias": True,
        "residual_in_fp32": True,
        "layer_norm_epsilon": 1e-05,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    },
    # Nemotron-H layout (NemotronHConfig defaults: Mamba-2 heads of 64, state 128, 8 groups,
    # relu2 MLPs, chunk_size 128): one mixer per block, Mamba-2 (M), MLP (-), attention (*) and
    # a MoE block (E) of plain up/down experts with a shared expert
    "nemotron_h": {
        "architectures": ["NemotronHForCausalLM"],
        "model_type": "nemotron_h",
        "hidden_size": 512,
        "hybrid_override_pattern": "M-M*-ME",
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "intermediate_size": 1536,
        "mamba_num_heads": 16,
        "mamba_head_dim": 64,
        "ssm_state_size": 128,
        "n_groups": 2,
        "conv_kernel": 4,
        "chunk_size": 128,
        "n_routed_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 256,
        "moe_shared_expert_intermediate_size": 512,
        "mlp_hidden_act": "relu2",
        "vocab_size": 32000,
        "max_position_embeddings": 8192,
        "layer_norm_epsilon": 1e-05,
        "attention_dropout": 0.0,
        "hidden_dropout": 0.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    },
    # Falcon-H1-0.5B's proportions (transformers' FalconH1 model doc table: 8 attention heads,
    # 2 KV heads, Mamba-2 heads of 64, state 128): attention and Mamba-2 side by side per layer
    "falcon_h1": {
        "architectures": ["FalconH1ForCausalLM"],
        "model_type": "falcon_h1",
        "hidden_size": 512,
        "intermediate_size": 1536,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "mamba_d_ssm": 768,
        "mamba_n_heads": 12,
        "mamba_d_head": 64,
        "mamba_d_state": 128,
        "mamba_n_groups": 1,
        "mamba_d_conv": 4,
        "mamba_chunk_size": 256,
        "mamba_rms_norm": False,
        "vocab_size": 32768,
        "max_position_embeddings": 16384,
        "rms_norm_eps": 1e-05,
        "attention_dropout": 0.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    },
    # Qwen/Qwen3-Next-80B-A3B-Instruct layout: Gated DeltaNet on three layers of four, gated
    # attention (head_dim 256, q/k norms, partial rotary 25 %) on the fourth, MoE with a gated
    # shared expert on every layer, 151,936-token vocabulary
    "qwen3_next": {
        "architectures": ["Qwen3NextForCausalLM"],
        "model_type": "qwen3_next",
        "hidden_size": 512,
        "intermediate_size": 1536,
        "num_hidden_layers": 4,
        "full_attention_interval": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 256,
        "partial_rotary_factor": 0.25,
        "linear_num_key_heads": 4,
        "linear_num_value_heads": 8,
        "linear_key_head_dim": 128,
        "linear_value_head_dim": 128,
        "linear_conv_kernel_dim": 4,
        "num_experts": 8,
        "num_experts_per_tok": 2,
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
        "moe_intermediate_size": 256,
        "shared_expert_intermediate_size": 256,
        "norm_topk_prob": True,
        "output_router_logits": False,
        "vocab_size": 151936,
        "max_position_embeddings": 262144,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-06,
        "rope_theta": 10000000.0,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    },
    # ai21labs/AI21-Jamba-Mini-1.5 layout: Mamba-1 mixers (state 16, expand 2, dt/B/C norms)
    # with attention on one layer of the period and experts on every other layer; the period
    # halved (4, offset 2) so that four layers hold every kind: Mamba + MLP, Mamba + experts,
    # attention + MLP, Mamba + experts
    "jamba": {
        "architectures": ["JambaForCausalLM"],
        "model_type": "jamba",
        "hidden_size": 512,
        "intermediate_size": 1536,
        "num_hidden_layers": 4,
        "attn_layer_period": 4,
        "attn_layer_offset": 2,
        "expert_layer_period": 2,
        "expert_layer_offset": 1,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "mamba_d_state": 16,
        "mamba_d_conv": 4,
        "mamba_expand": 2,
        "mamba_dt_rank": "auto",
        "mamba_conv_bias": True,
        "mamba_proj_bias": False,
        "use_mamba_kernels": False,
        "vocab_size": 65536,
        "max_position_embeddings": 262144,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-06,
        "sliding_window": None,
        "attention_dropout": 0.0,
        "output_router_logits": False,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    },
    # llava-hf/llava-1.5-7b-hf layout: a CLIP ViT tower (quick_gelu, [CLS] dropped by the
    # "default" feature strategy, the second-to-last layer's features), a two-layer GELU
    # projector with biases, a Llama language model with the image token at 32000 of 32064;
    # the tower reduced to ViT-B/16's width at 224 px (196 patches) and 2 layers
    "llava": {
        "architectures": ["LlavaForConditionalGeneration"],
        "model_type": "llava",
        "image_token_index": 32000,
        "projector_hidden_act": "gelu",
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "multimodal_projector_bias": True,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "text_config": {
            "model_type": "llama",
            "hidden_size": 512,
            "intermediate_size": 1536,
            "num_hidden_layers": 4,
            "num_attention_heads": 8,
            "num_key_value_heads": 2,
            "vocab_size": 32064,
            "max_position_embeddings": 4096,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-05,
            "rope_theta": 10000.0,
            "attention_bias": False,
            "attention_dropout": 0.0,
            "mlp_bias": False,
            "tie_word_embeddings": False,
        },
        "vision_config": {
            "model_type": "clip_vision_model",
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 3,
            "num_attention_heads": 12,
            "image_size": 224,
            "patch_size": 16,
            "projection_dim": 512,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-05,
            "attention_dropout": 0.0,
        },
    },
}


@dataclass(frozen=True)
class Case:
    """One measurement: a family's config and what to run on it, in the engine's own terms."""

    name: str
    family: str
    mode: str  # "inference" (one prefill with a KV cache) | "training" (forward, backward, step)
    batch_size: int
    sequence_length: int
    dtype: str  # the weights' dtype: "float32" | "bfloat16"
    attention: str = "sdpa"  # transformers attn_implementation: "sdpa" | "eager"
    optimizer: str = "adamw"  # "adamw" (fused AdamW, the HF Trainer default) | "sgd_momentum"
    finetuning: str = "full"  # "full" | "lora" (PEFT all-linear)
    lora_rank: int = 16
    mixed_precision: bool = False  # bf16 autocast over fp32 weights (Trainer `bf16=True`)
    gradient_checkpointing: bool = False
    quick: bool = False  # small enough for the test suite
    # vision-language models: images in each sequence, their tokens beside the text's
    # sequence_length ones; height and width None: the size the processor resizes them to
    images_per_request: int = 0
    image_height: int | None = None
    image_width: int | None = None

    @property
    def config(self) -> dict[str, Any]:
        return FAMILY_CONFIGS[self.family]

    @property
    def engine_attention(self) -> str:
        # SDPA on the CPU dispatches to _scaled_dot_product_flash_attention_for_cpu (checked with
        # torch.profiler on torch 2.13): scores are not stored, as with FlashAttention on a GPU.
        return "flash" if self.attention == "sdpa" else "eager"


def _inference(
    family: str, batch: int, seq: int, dtype: str, attention: str = "sdpa", images: int = 0
) -> Case:
    short = {"float32": "fp32", "bfloat16": "bf16"}[dtype]
    pictures = f"-img{images}" if images else ""
    name = f"{family}-infer-b{batch}-s{seq}{pictures}-{short}-{attention}"
    return Case(name, family, "inference", batch, seq, dtype, attention, images_per_request=images)


def _training(family: str, batch: int, seq: int, label: str, **options: Any) -> Case:
    dtype = options.pop("dtype", "float32")
    attention = options.pop("attention", "sdpa")
    name = f"{family}-train-b{batch}-s{seq}-{label}-{attention}"
    return Case(name, family, "training", batch, seq, dtype, attention, **options)


# deepseek_v2 and falcon run eager attention: their SDPA calls cannot reach a kernel that skips
# the scores (deepseek_v2: q/k head_dim 96 != v head_dim 64; falcon: a materialised mask with one
# KV head broadcast), so torch takes the math kernel, which stores float32 scores on the CPU.
CASES: tuple[Case, ...] = (
    # Inference: one prefill with use_cache=True and logits for the last position only.
    _inference("llama", 1, 512, "bfloat16"),
    _inference("llama", 4, 1024, "float32"),
    _inference("llama", 2, 512, "bfloat16", "eager"),
    _inference("llama", 8, 256, "float32", "eager"),
    _inference("qwen2", 2, 1024, "bfloat16"),
    _inference("qwen2", 1, 512, "float32", "eager"),
    _inference("gemma2", 2, 1024, "bfloat16", "eager"),
    _inference("mistral", 2, 1024, "bfloat16"),
    _inference("mistral", 1, 512, "float32", "eager"),
    _inference("mixtral", 2, 512, "bfloat16"),
    _inference("deepseek_v2", 2, 512, "bfloat16", "eager"),
    _inference("phi", 4, 512, "float32"),
    _inference("gpt2", 4, 512, "float32"),
    _inference("gpt2", 2, 1024, "bfloat16", "eager"),
    _inference("falcon", 4, 1024, "bfloat16", "eager"),
    _inference("gpt_neox", 2, 512, "float32", "eager"),
    _inference("qwen3", 2, 1024, "bfloat16"),
    _inference("mamba2", 2, 1024, "bfloat16", "eager"),  # no attention: no SDPA path
    _inference("nemotron_h", 2, 1024, "bfloat16"),
    _inference("falcon_h1", 2, 1024, "bfloat16"),
    _inference("qwen3_next", 2, 512, "bfloat16"),
    _inference("jamba", 2, 1024, "bfloat16"),
    _inference("llava", 2, 256, "bfloat16", images=2),
    # Training: two steps of forward, backward and optimizer step.
    _training("llama", 2, 256, "adamw-fp32"),
    _training("llama", 2, 512, "adamw-bf16mixed", mixed_precision=True),
    _training("llama", 2, 256, "sgdm-fp32", optimizer="sgd_momentum"),
    _training("llama", 4, 512, "adamw-fp32-ckpt", gradient_checkpointing=True),
    _training("llama", 2, 512, "lora-bf16", dtype="bfloat16", finetuning="lora"),
    _training("llama", 1, 256, "adamw-fp32", attention="eager"),
    _training("qwen2", 1, 512, "adamw-bf16mixed", mixed_precision=True),
    _training("qwen2", 2, 256, "lora-bf16", dtype="bfloat16", finetuning="lora"),
    _training(
        "gemma2", 1, 512, "lora-bf16", dtype="bfloat16", finetuning="lora", attention="eager"
    ),
    _training("mistral", 2, 512, "adamw-fp32-ckpt", gradient_checkpointing=True),
    _training("mixtral", 2, 256, "adamw-fp32"),
    _training("deepseek_v2", 2, 256, "adamw-bf16mixed", mixed_precision=True, attention="eager"),
    _training("phi", 2, 512, "sgdm-fp32", optimizer="sgd_momentum"),
    _training("gpt2", 4, 256, "adamw-fp32"),
    _training("gpt2", 2, 256, "adamw-bf16mixed", mixed_precision=True, attention="eager"),
    _training(
        "falcon",
        2,
        512,
        "adamw-bf16mixed-ckpt",
        mixed_precision=True,
        gradient_checkpointing=True,
        attention="eager",
    ),
    _training("gpt_neox", 2, 256, "lora-fp32", finetuning="lora", lora_rank=8),
    _training("qwen3", 2, 512, "adamw-bf16", dtype="bfloat16"),
    _training("mamba2", 1, 256, "adamw-fp32", attention="eager"),
    _training("nemotron_h", 1, 256, "adamw-fp32"),
    _training("falcon_h1", 1, 512, "adamw-bf16mixed", mixed_precision=True),
    _training("qwen3_next", 1, 256, "adamw-bf16", dtype="bfloat16"),
    _training("jamba", 1, 256, "adamw-fp32"),
    _training("llava", 2, 128, "img1-adamw-bf16", dtype="bfloat16", images_per_request=1),
    # Other shapes (session 6): larger batches and lengths of the mechanisms that missed
    _training("gpt2", 8, 512, "adamw-fp32"),
    _training("gpt2", 2, 1024, "adamw-fp32", attention="eager"),
    _inference("deepseek_v2", 4, 1024, "bfloat16", "eager"),
    _inference("deepseek_v2", 1, 2048, "float32", "eager"),
    _inference("llama", 16, 512, "bfloat16"),
    _inference("qwen2", 8, 1024, "bfloat16"),
    _training("llama", 8, 512, "adamw-fp32-ckpt", gradient_checkpointing=True),
    _training(
        "qwen2", 4, 512, "adamw-bf16mixed-ckpt", mixed_precision=True, gradient_checkpointing=True
    ),
    _training("gpt2", 4, 512, "adamw-fp32-ckpt", gradient_checkpointing=True),
    # Quick cases for the test suite: a few seconds each.
    Case("llama-quick-infer", "llama", "inference", 1, 64, "float32", quick=True),
    Case("llama-quick-train", "llama", "training", 1, 64, "float32", quick=True),
)

CASES_BY_NAME: dict[str, Case] = {case.name: case for case in CASES}


def engine_payload(case: Case, method: str) -> dict[str, Any]:
    """The engine request that describes `case`, with no runtime overhead (a CPU has none)."""
    payload: dict[str, Any] = {
        "model": {"hf_config": case.config},
        "mode": case.mode,
        "method": method,
        "batch_size": case.batch_size,
        "sequence_length": case.sequence_length,
        "weight_dtype": case.dtype,
        "attention_implementation": case.engine_attention,
        "runtime_overhead_bytes": 0,
    }
    if case.mode == "training":
        payload |= {
            "optimizer": case.optimizer,
            "finetuning": case.finetuning,
            "mixed_precision": case.mixed_precision,
            "gradient_checkpointing": case.gradient_checkpointing,
        }
        if case.finetuning == "lora":
            payload["lora_rank"] = case.lora_rank
    if case.images_per_request:
        payload |= {
            "images_per_request": case.images_per_request,
            "image_height": case.image_height,
            "image_width": case.image_width,
        }
    return payload
