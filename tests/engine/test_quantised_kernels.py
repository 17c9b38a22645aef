"""Issue 15: the working memory of quantised-inference kernels (gptq_kernel), worked out by hand
from AutoGPTQ 0.5.0's code (auto_gptq/modeling/_utils.py autogptq_post_init,
nn_modules/qlinear/qlinear_exllamav2.py, qlinear_cuda_old.py) for Llama-2-7B: 32 layers of
q/k/v/o 4096 x 4096, gate/up 4096 -> 11008, down 11008 -> 4096."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calculator.engine import EstimateError, calculate

FIXTURES = Path(__file__).parent / "fixtures" / "configs"
LLAMA_2 = {"hf_config": json.loads((FIXTURES / "meta-llama--Llama-2-7b-hf.json").read_text())}


def activations(**payload):
    result = calculate(
        {"model": LLAMA_2, "weight_dtype": "gptq_int4", "runtime_overhead_bytes": 0, **payload}
    )
    return result["breakdown"]["activations"]


def test_exllama_holds_a_float16_copy_of_the_largest_matrix():
    # decode (one token): cuda-old runs its own kernel and holds nothing more; exllama's
    # temp_dq is (1, largest qweight.numel() * 8) float16 = 4096 x 11008 x 2 bytes, and without
    # act-order its temp_state is (1, 1) float16, 2 bytes
    decode = {"sequence_length": 1}
    extra = activations(**decode, gptq_kernel="exllama") - activations(
        **decode, gptq_kernel="cuda_old"
    )
    assert extra == 4096 * 11008 * 2 + 2 == 90_177_538


def test_exllama_is_the_default_kernel():
    # transformers' GPTQConfig.post_init: exllama_config {"version": 1}, use_exllama True
    assert activations() == activations(gptq_kernel="exllama")


def test_exllamav2_scratch_is_sized_for_2048_tokens_times_8_sequences():
    # scratch_space_fixed(max_input_len=2048, max_batch_size=8) per layer: temp_dq in x out x 2
    # + 128, temp_fwd out x 2048 x 8 x 4 + 128; the largest is gate_proj / up_proj (out 11008):
    # 90,177,536 + 128 + 721,420,288 + 128 (down_proj: 90,177,792 + 268,435,584 = 358,613,376;
    # q_proj: 33,554,560 + 268,435,584 = 301,990,144)
    gate = 4096 * 11008 * 2 + 128 + 11008 * 2048 * 8 * 4 + 128
    assert gate == 811_598_080
    decode = {"sequence_length": 1}
    extra = activations(**decode, gptq_kernel="exllamav2") - activations(
        **decode, gptq_kernel="cuda_old"
    )
    assert extra == gate
    # allocated at post_init: the same whatever the batch
    long = {"sequence_length": 512, "batch_size": 4}
    extra = activations(**long, gptq_kernel="exllamav2") - activations(
        **long, gptq_kernel="exllama"
    )
    assert extra == gate - (4096 * 11008 * 2 + 2)


def test_cuda_old_dequantises_from_128_rows():
    # qlinear_cuda_old.forward: x.shape[0] (batch x tokens) >= kernel_switch_threshold (128)
    # dequantises with torch ops; bitwise_right_shift's int32 result (4 B per weight) and its
    # int8 cast (1 B) live together: 4096 x 11008 x 5 bytes for the largest matrix
    below = activations(sequence_length=127, gptq_kernel="cuda_old")
    at = activations(sequence_length=128, gptq_kernel="cuda_old")
    exllama_below = activations(sequence_length=127)
    exllama_at = activations(sequence_length=128)
    # the same prefill working set otherwise: exllama's buffer is constant
    assert (at - below) - (exllama_at - exllama_below) == 4096 * 11008 * 5 == 225_443_840
    # two sequences of 64 tokens are 128 rows too
    assert activations(sequence_length=64, batch_size=2, gptq_kernel="cuda_old") - activations(
        sequence_length=64, batch_size=2
    ) == 4096 * 11008 * 5 - (4096 * 11008 * 2 + 2)


def test_other_formats_ignore_the_gptq_kernel():
    for dtype in ("awq_int4", "nf4", "bfloat16"):
        payload = {"weight_dtype": dtype, "sequence_length": 512}
        assert activations(**payload, gptq_kernel="exllamav2") == activations(
            **payload, gptq_kernel="cuda_old"
        )


def test_gptq_kernels_compute_in_float16():
    # eager attention: softmax(scores, dtype=float32) takes ATen's fused half_to_float kernel
    # for a float16 input (2 + 4 + 2 B per score element, as float16 weights); bfloat16 is
    # converted first (2 + 4 + 4): 2 B more per score element, 32 heads x 512 x 512 of them
    eager = {"sequence_length": 512, "attention_implementation": "eager", "inference_logits": "all"}
    gptq = activations(**eager)
    float16 = activations(**eager, weight_dtype="float16")
    bfloat16 = activations(**eager, weight_dtype="bfloat16")
    # exllama's temp_dq (4096 x 11008 float16) and temp_state (2 B) on top of float16's
    assert gptq - (4096 * 11008 * 2 + 2) == float16
    assert bfloat16 - float16 == 32 * 512 * 512 * 2


def test_a_matmuls_transient_copy_is_in_the_mlp_not_on_top_of_the_attention_scores():
    # at 4,096 eager tokens the scores (32 x 4096 x 4096 x 8 B, 4.3 GB) set the layer's peak;
    # cuda-old's dequantised copy (225 MB) exists during the MLP's matmuls, whose intermediates
    # (4096 x 11008 x 3 x 2 B, 270 MB) stay below it even with the copy: the peak is the same
    # as exllama's without its persistent temp_dq
    eager = {"sequence_length": 4096, "attention_implementation": "eager"}
    cuda_old = activations(**eager, gptq_kernel="cuda_old")
    exllama = activations(**eager, gptq_kernel="exllama")
    assert cuda_old == exllama - (4096 * 11008 * 2 + 2)


def test_an_unknown_gptq_kernel_is_refused():
    with pytest.raises(EstimateError):
        activations(gptq_kernel="marlin")


def int8_extra(**payload):
    def total(dtype):
        return activations(weight_dtype=dtype, **payload)

    return total("int8") - total("float16")


def test_llm_int8_row_major_holds_the_int8_input_and_the_int32_product():
    # bitsandbytes 0.45 MatMul8bitLt.forward (no_grad): int8_vectorwise_quant's CA (in x 1 B per
    # token) and int8_linear_matmul's int32 out32 (out x 4 B) beside the float16 output; the
    # largest per token is gate_proj / up_proj: 4096 + 11008 x 4 = 48,128 B (down_proj 11008 +
    # 4096 x 4 = 27,392; q_proj 4096 + 4096 x 4 = 20,480)
    assert int8_extra(sequence_length=512) == 512 * (4096 + 11008 * 4) == 24_641_536
    assert int8_extra(sequence_length=512, bnb_int8_matmul="row_major") == 24_641_536
    # one decode token: 48,128 B
    assert int8_extra(sequence_length=1) == 48_128


def test_llm_int8_col32_adds_two_int8_copies_and_the_first_forwards_weight_transform():
    # bitsandbytes 0.41: double_quant's CA and CAt, transform(CA, "col32"): 3 x 4096 + 11008 x 4
    # = 56,320 B per token for gate_proj (down_proj: 3 x 11008 + 4096 x 4 = 49,408), and
    # state.CxB = F.transform(state.CB, "col_ampere") beside CB until Linear8bitLt.forward
    # drops CB: one more 4096 x 11008 int8 matrix
    extra = int8_extra(sequence_length=512, batch_size=2, bnb_int8_matmul="col32")
    assert extra == 1024 * (3 * 4096 + 11008 * 4) + 4096 * 11008 == 102_760_448


def test_awq_gemm_dequantises_the_largest_matrix_from_1024_tokens():
    # AutoAWQ WQLinearMMFunction.forward: x.shape[0] * x.shape[1] >= 1024 dequantises the weight
    # to float16 (awq_ext.dequantize_weights_cuda) for torch.matmul: 4096 x 11008 x 2 bytes
    def awq(**payload):
        return activations(weight_dtype="awq_int4", **payload)

    def float16(**payload):
        return activations(weight_dtype="float16", **payload)

    assert awq(sequence_length=1024) - float16(sequence_length=1024) == 4096 * 11008 * 2
    assert awq(sequence_length=512, batch_size=2) - float16(sequence_length=512, batch_size=2) == (
        90_177_536
    )
    # below: the fused GEMM kernel (gemm_forward_cuda), no copy
    assert awq(sequence_length=1023) == float16(sequence_length=1023)
