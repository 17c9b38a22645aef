"""The shape of a model that memory depends on, and its exact parameter count.

Built from manual fields (`architecture_from_fields`) or a Hugging Face `config.json`
(`architecture_from_hf_config`). Pure Python: nothing here imports Django.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LinearLayer:
    """One kind of projection matrix, e.g. every layer's `q_proj`: what LoRA adapts."""

    name: str  # "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", ...
    in_features: int
    out_features: int
    count: int  # how many such matrices the whole model has (layers x experts ...)
    active_count: int  # how many of them one token passes through (MoE: experts per token)


@dataclass(frozen=True)
class ParameterBreakdown:
    """Exact parameter counts by kind; `total` equals what transformers instantiates."""

    embeddings: int  # token embeddings (+ learned position embeddings)
    lm_head: int  # 0 when tied to the embeddings
    attention: int  # all layers: q/k/v/o (or MLA) projections, their biases, q/k norms
    mlp: int  # all dense MLPs and shared experts
    experts: int  # all routed experts of all MoE layers
    active_experts: int  # the routed experts one token passes through, all layers
    router: int  # MoE gates (and their biases)
    norms: int  # layer norms / RMS norms (weights and biases), final norm

    @property
    def total(self) -> int:
        return (
            self.embeddings
            + self.lm_head
            + self.attention
            + self.mlp
            + self.experts
            + self.router
            + self.norms
        )

    @property
    def active(self) -> int:
        return self.total - self.experts + self.active_experts


@dataclass(frozen=True)
class Architecture:
    model_type: str  # Hugging Face model_type ("llama", "qwen3_moe", ...) or "custom"
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool = False
    gated_mlp: bool = True  # SwiGLU / GeGLU: gate, up and down matrices; else up and down
    # Mixture of experts (num_experts == 0: dense)
    num_experts: int = 0
    num_experts_per_token: int = 0
    num_shared_experts: int = 0
    moe_intermediate_size: int = 0
    num_dense_layers: int = 0  # layers that keep a dense MLP in an MoE model
    # Multi-head latent attention (kv_lora_rank == 0: not MLA)
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    # Sliding-window attention (sliding_window == 0: every layer is global)
    sliding_window: int = 0
    num_sliding_window_layers: int = 0
    max_position_embeddings: int = 0
    default_dtype: str = "bfloat16"
    # Counts: exact from the shape when the family is known, else as entered
    num_parameters: int = 0
    num_active_parameters: int = 0
    parameters_exact: bool = False
    parameters: ParameterBreakdown | None = None
    linear_layers: tuple[LinearLayer, ...] = ()

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0
