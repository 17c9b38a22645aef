"""Expert parallelism (vLLM --enable-expert-parallel): routed experts split over tp x dp ranks.

vLLM's rule (vllm/model_executor/layers/fused_moe/config.py, FusedMoEParallelConfig.make): with
expert parallelism the MoE layers flatten the tensor- and data-parallel ranks of a pipeline stage
into one group, ep_size = tp_size x dp_size, and each rank holds num_experts / ep_size whole
experts; attention stays tensor parallel (replicated over data parallel ranks). Every expected
number is worked out here from the configs' shapes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calculator.engine import EstimateError, calculate
from calculator.presenters.gpu_display import layout_label

CONFIGS = Path(__file__).parent / "fixtures" / "configs"
GIB = 1024**3


def config(name: str) -> dict:
    return {"hf_config": json.loads((CONFIGS / f"{name}.json").read_text())}


# A tiny Mixtral: 2 layers, hidden 128, 4 heads of 32 (2 KV heads), 4 experts of width 256, top-2,
# vocab 500, untied LM head, bf16
TINY_MIXTRAL = {
    "hf_config": {
        "model_type": "mixtral",
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 500,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "torch_dtype": "bfloat16",
    }
}
# by hand: embeddings and LM head 2 x 500 x 128 = 128,000; per layer q and o 128x128, k and v
# 128x64 (49,152), router 128x4 (512), experts 4 x (gate 128x256 + up 128x256 + down 256x128)
# (393,216); norms 2 x 2 x 128 + 128 = 640
TINY_ROUTED = 2 * 4 * 3 * 128 * 256  # 786,432
TINY_TOTAL = 128_000 + 2 * (49_152 + 512 + 393_216) + 640  # 1,014,400

LLAMA_31_8B = config("meta-llama--Llama-3.1-8B")
MIXTRAL = config("mistralai--Mixtral-8x7B-v0.1")


def run(model: dict, **fields) -> dict:
    return calculate({"model": model, "sequence_length": 1, **fields})


def test_ep_holds_a_quarter_of_the_experts_and_all_of_the_rest():
    one = run(TINY_MIXTRAL)
    assert one["parameters"]["total"] == TINY_TOTAL
    assert one["breakdown"]["weights"] == 2 * TINY_TOTAL
    # 4 GPUs, tp 1, dp 4, ep 4: attention, embeddings, routers and norms replicated, one of the
    # four experts per GPU: 1,014,400 - 786,432 + 786,432 / 4 = 424,576 parameters in bf16
    ep = run(TINY_MIXTRAL, num_gpus=4, tensor_parallel=1, pipeline_parallel=1, expert_parallel=4)
    assert ep["breakdown"]["weights"] == 2 * (TINY_TOTAL - TINY_ROUTED + TINY_ROUTED // 4)
    assert ep["breakdown"]["weights"] == 849_152
    assert ep["inputs"]["expert_parallel"] == 4
    assert any("expert parallel 4" in note for note in ep["notes"])
    # without EP the four data-parallel replicas each hold the whole model
    dp = run(TINY_MIXTRAL, num_gpus=4, tensor_parallel=1, pipeline_parallel=1)
    assert dp["breakdown"]["weights"] == 2 * TINY_TOTAL


def test_ep_equal_to_tp_holds_the_same_expert_bytes_as_tp():
    # ep = tp (dp 1): num_experts / 4 whole experts or a quarter of every expert, the same bytes
    tp = run(MIXTRAL, num_gpus=4)
    ep = run(MIXTRAL, num_gpus=4, expert_parallel=4)
    assert (ep["inputs"]["tensor_parallel"], ep["inputs"]["pipeline_parallel"]) == (4, 1)
    assert ep["breakdown"] == tp["breakdown"]


def test_mixtral_ep_8_over_data_parallel_attention():
    result = run(MIXTRAL, num_gpus=8, tensor_parallel=1, pipeline_parallel=1, expert_parallel=8)
    total = result["parameters"]["total"]
    # Mixtral-8x7B: 46,702,792,704 parameters (transformers' count of the published config)
    assert total == 46_702_792_704
    # routed experts: 32 layers x 8 experts x 3 matrices of 4096 x 14336
    routed = 32 * 8 * 3 * 4096 * 14336
    assert routed == 45_097_156_608
    # one of the 8 experts per GPU: 46,702,792,704 - 45,097,156,608 x 7/8 = 7,242,780,672 in bf16
    assert result["breakdown"]["weights"] == 2 * (total - routed * 7 // 8) == 14_485_561_344


@pytest.mark.parametrize(
    ("model", "fields", "message"),
    [
        (LLAMA_31_8B, {"num_gpus": 2}, "this model is dense (no routed experts): use 1"),
        (
            TINY_MIXTRAL,
            {"num_gpus": 4, "tensor_parallel": 1, "pipeline_parallel": 1, "expert_parallel": 2},
            "tensor_parallel x data_parallel = 1 x 4 = 4; use 4, or 1",
        ),
        (
            TINY_MIXTRAL,
            {"num_gpus": 1, "expert_parallel": 2},
            "= 1 x 1 = 1; use 1, or add GPUs to split the experts",
        ),
        # 8 ranks, 4 experts: the divisors of 4 below 8 are 1, 2, 4
        (
            TINY_MIXTRAL,
            {"num_gpus": 8, "tensor_parallel": 1, "pipeline_parallel": 1, "expert_parallel": 8},
            "must divide the model's 4 routed experts: the nearest valid are 4",
        ),
        # training (Megatron-Core): a divisor of cp x dp = 4, and the whole model trained
        (
            TINY_MIXTRAL,
            {"num_gpus": 4, "tensor_parallel": 1, "mode": "training", "expert_parallel": 3},
            "must divide context_parallel x data_parallel = 1 x 4 = 4",
        ),
        (
            TINY_MIXTRAL,
            {
                "num_gpus": 4,
                "tensor_parallel": 1,
                "mode": "training",
                "finetuning": "lora",
                "expert_parallel": 4,
            },
            "use finetuning full or partial, or 1",
        ),
        (
            TINY_MIXTRAL,
            {"num_gpus": 4, "tensor_parallel": 1, "method": "standard", "expert_parallel": 4},
            "the standard method has no expert parallelism",
        ),
        (TINY_MIXTRAL, {"expert_parallel": 0}, "must be between 1 and 100,000, not 0"),
    ],
)
def test_invalid_expert_parallel_is_a_field_error(model, fields, message):
    fields = {"expert_parallel": 2, **fields}
    with pytest.raises(EstimateError) as error:
        run(model, **fields)
    assert error.value.field == "expert_parallel"
    assert message in error.value.message


H100 = {
    "slug": "h100-sxm",
    "name": "H100 SXM",
    # NVIDIA H100 SXM datasheet: 80 GB HBM3 at 3.35 TB/s, BF16 989.4 TFLOPS dense
    "memory_bytes": 80 * GIB,
    "memory_bandwidth_bytes_per_s": 3_350_000_000_000,
    "bf16_dense_tflops": 989.4,
    "price_per_hour_usd": 2.99,
}


def test_the_gpu_search_keeps_an_asked_expert_parallelism():
    # Mixtral-8x7B in bf16 is 93.4 GB of weights (46,702,792,704 x 2 bytes): more than one
    # 80 GiB H100 holds, so the fewest GPUs are 2, laid out TP 2 with the experts split EP 2
    # (dp 1: ep = tp x dp = 2, each GPU holding 4 of the 8 experts)
    result = calculate(
        {
            "model": MIXTRAL,
            "num_gpus": 8,
            "tensor_parallel": 1,
            "pipeline_parallel": 1,
            "expert_parallel": 8,
            "gpu": H100,
        }
    )
    assert result["answer"]["configuration"]["expert_parallel"] == 8
    assert layout_label(result["answer"]["configuration"]) == "EP 8 × DP"
    fit = result["fit"][0]
    assert fit["fits_on_one"] is False
    assert fit["fewest_gpus"] == 2
    assert fit["configuration"] == {
        "num_gpus": 2,
        "tensor_parallel": 2,
        "pipeline_parallel": 1,
        "data_parallel": 1,
        "zero_stage": 0,
        "expert_parallel": 2,
        "context_parallel": 1,
    }
    assert layout_label(fit["configuration"]) == "TP 2 × EP 2"
    # weights per GPU at TP 2 x EP 2: half of every matrix but the replicated norms and the
    # KV heads (8 KV heads over 2 ranks: split), so at most half the 93.4 GB plus the norms
    per_gpu = fit["per_gpu_bytes"]
    assert 46_702_792_704 < per_gpu < 80 * GIB


# --- training (Megatron-Core) -------------------------------------------------------------------
# megatron/core/parallel_state.py (NVIDIA/Megatron-LM d98e8a6): the expert grid is etp x ep x edp
# x pp with expert_tensor_parallel_size defaulting to tensor_model_parallel_size, world_size %
# (etp x ep x pp) == 0; the distributed optimizer shards dense parameters over intra_dp_cp_group
# and routed experts over intra_expt_dp_group (megatron/core/distributed/
# distributed_data_parallel.py)
TINY_DENSE = TINY_TOTAL - TINY_ROUTED  # 227,968: attention, routers, embeddings, norms


def train(model: dict, **fields) -> dict:
    return calculate({"model": model, "mode": "training", "runtime_overhead_bytes": 0, **fields})


def test_training_ep_splits_the_experts_weights_gradients_and_states():
    # 4 GPUs, tp 1, dp 4, ep 4: one expert in four per GPU, the rest replicated; pure bf16
    # AdamW: weights and gradients 2 B, states 2 x 2 B per parameter
    on_gpu = TINY_DENSE + TINY_ROUTED // 4
    assert on_gpu == 424_576
    result = train(
        TINY_MIXTRAL,
        sequence_length=64,
        num_gpus=4,
        tensor_parallel=1,
        pipeline_parallel=1,
        expert_parallel=4,
    )
    assert result["breakdown"]["weights"] == 2 * on_gpu == 849_152
    assert result["breakdown"]["gradients"] == 2 * on_gpu
    assert result["breakdown"]["optimizer_states"] == 4 * on_gpu
    assert any("Expert parallel 4 in training" in note for note in result["notes"])


def test_training_ep_keeps_each_expert_split_over_tensor_parallel_ranks():
    # tp 2 x ep 2 on 4 GPUs (cp x dp = 2): each GPU keeps 2 of the 4 experts, half of each
    # (786,432 / 4 = 196,608), half of the dense matrices and all 640 norm weights:
    # (227,968 - 640) / 2 + 640 = 114,304
    on_gpu = (TINY_DENSE - 640) // 2 + 640 + TINY_ROUTED // 4
    assert on_gpu == 310_912
    result = train(
        TINY_MIXTRAL,
        sequence_length=64,
        num_gpus=4,
        tensor_parallel=2,
        pipeline_parallel=1,
        expert_parallel=2,
    )
    assert result["breakdown"]["weights"] == 2 * on_gpu == 621_824


def test_training_ep_under_zero_1_shards_states_over_the_expert_data_parallel_ranks():
    # dp 4, ep 4, ZeRO-1: dense states over 4 ranks, the GPU's single expert over 4 / 4 = 1:
    # 4 B x (227,968 / 4 + 196,608 / 1) = 4 x 1,014,400 / 4 - the same as sharding the
    # whole model over 4 ranks without EP
    states = 4 * (TINY_DENSE // 4 + TINY_ROUTED // 4)
    assert states == 1_014_400
    for ep in (1, 2, 4):
        result = train(
            TINY_MIXTRAL,
            sequence_length=64,
            num_gpus=4,
            tensor_parallel=1,
            pipeline_parallel=1,
            expert_parallel=ep,
            zero_stage=1,
        )
        assert result["breakdown"]["optimizer_states"] == states


def test_training_ep_names_the_all_to_all_send_buffer():
    # 64 tokens x top-2 x hidden 128 x 2 B per MoE layer
    send = 64 * 2 * 128 * 2  # 32,768 B
    result = train(
        TINY_MIXTRAL,
        sequence_length=64,
        num_gpus=4,
        tensor_parallel=1,
        pipeline_parallel=1,
        expert_parallel=4,
    )
    expected = f"send-side buffer ({send / 2**20:.2f} MiB per MoE layer)"
    assert any(expected in note for note in result["notes"])


def test_training_ep_with_context_parallel_divides_cp_x_dp():
    # 8 GPUs: tp 1, cp 4, dp 2; ep 8 divides cp x dp = 8 (Megatron's rule), and Mixtral's
    # sequence 4,096 is a multiple of 2 x 4
    result = train(
        MIXTRAL,
        sequence_length=4_096,
        num_gpus=8,
        tensor_parallel=1,
        pipeline_parallel=1,
        context_parallel=4,
        expert_parallel=8,
    )
    assert result["inputs"]["expert_parallel"] == 8
    with pytest.raises(EstimateError) as error:
        train(
            MIXTRAL,
            sequence_length=4_096,
            num_gpus=8,
            tensor_parallel=1,
            pipeline_parallel=1,
            context_parallel=2,
            expert_parallel=3,
        )
    assert error.value.field == "expert_parallel"
    # divisors of cp x dp = 8 that divide Mixtral's 8 experts: 2 and 4 around 3
    assert "= 2 x 4 = 8" in error.value.message
    assert "the nearest valid are 2 or 4" in error.value.message


def test_the_gpu_search_keeps_an_asked_training_expert_parallelism():
    result = calculate(
        {
            "model": MIXTRAL,
            "mode": "training",
            "mixed_precision": True,
            "gradient_checkpointing": True,
            "sequence_length": 4_096,
            "num_gpus": 8,
            "tensor_parallel": 1,
            "pipeline_parallel": 1,
            "expert_parallel": 8,
            "zero_stage": 1,
            "gpu": H100,
        }
    )
    configuration = result["fit"][0]["configuration"]
    # every layout searched keeps ep 8, so data parallelism comes in multiples of 8
    assert configuration["expert_parallel"] == 8
    assert configuration["data_parallel"] % 8 == 0
    assert "EP 8" in layout_label(configuration)


def test_inference_ep_over_data_parallel_ranks_adds_the_allgather_buffers():
    # vLLM's allgather_reducescatter: dp 4 ranks x 256 tokens gathered, hidden states and the
    # experts' output over them (2 x 1,024 x 128 x 2 B = 524,288) plus top-2 float32 weights and
    # int32 ids (1,024 x 2 x 8 B = 16,384): 540,672 B in the MoE layer's peak (its MLP block,
    # 1,183,744 B, outweighs attention's 425,984 B both ways)
    dispatch = 2 * 4 * 256 * 128 * 2 + 4 * 256 * 2 * 8
    assert dispatch == 540_672
    layout = {"num_gpus": 4, "tensor_parallel": 1, "pipeline_parallel": 1}
    ep = calculate({"model": TINY_MIXTRAL, "sequence_length": 256, **layout, "expert_parallel": 4})
    dp = calculate({"model": TINY_MIXTRAL, "sequence_length": 256, **layout})
    assert ep["breakdown"]["activations"] - dp["breakdown"]["activations"] == dispatch
    assert any("allgather_reducescatter): 0.52 MiB per MoE layer" in n for n in ep["notes"])


def test_training_ep_under_fsdp_gathers_a_layer_with_its_share_of_the_experts():
    # FSDP FULL_SHARD, dp 4, ep 4, bf16: the shards are dense 2 x 227,968 / 4 = 113,984 B and
    # the GPU's expert 2 x 196,608 / (4 / 4) = 393,216 B; gathered whole: the root unit
    # (embeddings and LM head, 128,000) and two layer units, each a layer's attention and
    # routers (49,152 + 512) with one of its four experts (393,216 / 4):
    # (885,760 - 786,432 + 196,608) / 2 = 147,968 parameters
    shards = 2 * TINY_DENSE // 4 + 2 * TINY_ROUTED // 4
    unit = (2 * (49_152 + 512 + 393_216) - TINY_ROUTED + TINY_ROUTED // 4) // 2
    assert (shards, unit) == (507_200, 147_968)
    gathered = 2 * (128_000 + 2 * unit)
    result = train(
        TINY_MIXTRAL,
        sequence_length=64,
        num_gpus=4,
        tensor_parallel=1,
        pipeline_parallel=1,
        expert_parallel=4,
        zero_stage=3,
        sharding="fsdp",
    )
    assert result["breakdown"]["weights"] == shards + gathered == 1_355_072
