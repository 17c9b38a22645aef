"""The published checkpoint's format (config.json quantization_config) as the default weights.

Sources:
- gpt-oss model card (OpenAI, arXiv:2508.10925, table 1): gpt-oss-120b 116.83B parameters,
  checkpoint 60.8 GiB; gpt-oss-20b 20.91B, 12.8 GiB; MoE weights in MXFP4, the rest BF16.
- OCP Microscaling Formats (MX) v1.0: MXFP4 = 32 FP4 (E2M1, 4-bit) elements sharing one 8-bit
  E8M0 scale.
- DeepSeek-V3 README_WEIGHTS.md: FP8 E4M3 weights, 128x128 block scaling, one float32
  `weight_scale_inv` per block; 671B parameters in the main model (plus 14B of MTP module).
- NVIDIA NVFP4: 16 FP4 (E2M1) values per block with an FP8 E4M3 scale, plus a float32 scale
  per tensor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from calculator.engine import calculate
from calculator.engine.checkpoint import checkpoint_format
from calculator.engine.dtypes import linear_weight_bytes

MODELS = {
    entry["slug"]: entry
    for entry in json.loads(
        (Path(__file__).parents[2] / "calculator" / "data" / "models.json").read_text()
    )
}
GiB = 1024**3


def _run(slug: str, **fields: Any) -> dict[str, Any]:
    payload = {"model": {"hf_config": MODELS[slug]["config"]}, "mode": "inference"}
    payload |= {"batch_size": 1, "sequence_length": 2048, **fields}
    return calculate(payload)


# --- exact bytes of one matrix in each new format, by hand -------------------------------------


def test_mxfp4_is_half_a_byte_per_weight_plus_one_scale_byte_per_32():
    # gpt-oss-20b's experts gate_up: 2880 in, 5760 out. 2880 / 32 = 90 blocks a row,
    # each 16 bytes of FP4 pairs + 1 scale byte: 5760 x 90 x 17 = 8,812,800 bytes.
    assert linear_weight_bytes("mxfp4", 2880, 5760) == 5760 * 90 * 17 == 8_812_800
    # 4.25 bits per weight
    assert linear_weight_bytes("mxfp4", 2880, 5760) * 8 / (2880 * 5760) == 4.25


def test_fp8_block_is_a_byte_per_weight_plus_a_float32_per_128x128_tile():
    # 7168 in, 2048 out: 14,680,064 bytes + (2048/128 = 16) x (7168/128 = 56) = 896 tiles x 4
    assert linear_weight_bytes("fp8_block", 7168, 2048) == 7168 * 2048 + 896 * 4 == 14_683_648
    # a partial tile counts whole: 200 x 130 -> 2 x 2 tiles
    assert linear_weight_bytes("fp8_block", 200, 130) == 200 * 130 + 4 * 4


def test_nvfp4_is_4_5_bits_per_weight_plus_one_global_scale():
    # 4096 x 4096: 4096 rows x 256 blocks x (8 bytes + 1 scale byte) + 4 bytes
    assert linear_weight_bytes("nvfp4", 4096, 4096) == 4096 * 256 * 9 + 4 == 9_437_188


# --- the catalog's famous models, by default --------------------------------------------------


@pytest.mark.parametrize(
    ("slug", "checkpoint_gib"), [("openai/gpt-oss-120b", 60.8), ("openai/gpt-oss-20b", 12.8)]
)
def test_gpt_oss_defaults_to_its_mxfp4_checkpoint(slug, checkpoint_gib):
    result = _run(slug)
    assert result["inputs"]["weight_dtype"] == "mxfp4"
    assert result["checkpoint"]["weight_dtype"] == "mxfp4"
    assert result["checkpoint"]["description"] == "MXFP4 (experts), bfloat16 elsewhere"
    # the model card's checkpoint size, to its precision (0.1 GiB)
    assert abs(result["breakdown"]["weights"] / GiB - checkpoint_gib) <= 0.05
    assert any("Published checkpoint: MXFP4" in note for note in result["notes"])


def test_gpt_oss_120b_fits_one_80gb_gpu_by_default():
    # OpenAI: "gpt-oss-120b ... runs on a single 80 GB GPU"; 60.8 GiB of weights leave room
    h100 = {"memory_bytes": 80 * GiB, "memory_bandwidth_bytes_per_s": 3.35e12}
    result = _run("openai/gpt-oss-120b", gpu={**h100, "bf16_dense_tflops": 989.4})
    assert result["answer"]["fits"] is True
    assert result["answer"]["gpu_count"] == 1


def test_gpt_oss_asked_in_bfloat16_is_sized_so_with_a_note():
    result = _run("openai/gpt-oss-20b", weight_dtype="bfloat16")
    # 20,914,757,184 parameters x 2 bytes, routers included (16-bit in a bfloat16 model)
    assert result["breakdown"]["weights"] == 20_914_757_184 * 2
    assert any("sized as bfloat16, as asked" in note for note in result["notes"])


def test_training_gpt_oss_dequantises_the_mxfp4_checkpoint():
    result = _run("openai/gpt-oss-20b", mode="training", finetuning="full")
    assert result["inputs"]["weight_dtype"] == "bfloat16"
    assert any("needs it dequantised" in note for note in result["notes"])


def test_deepseek_v3_defaults_to_fp8_with_block_scales():
    result = _run("deepseek-ai/DeepSeek-V3")
    assert result["inputs"]["weight_dtype"] == "fp8_block"
    # 671,026,404,352 parameters (what transformers builds; MTP not built) at 1 byte; the
    # embedding and head (129,280 x 7,168 = 926,679,040 each) stay BF16: a byte more each.
    embedding = 129_280 * 7_168
    at_least = 671_026_404_352 + 2 * embedding
    # on top: a float32 per 128x128 tile (4 / 16,384 of the FP8 bytes), BF16 routers and norms
    # (58 MoE layers x 256 x 7,168 router weights = 106,430,464 at one byte more): < 0.1 %
    weights = result["breakdown"]["weights"]
    assert at_least < weights < at_least * 1.001
    # the 16-bit default was 2 bytes a parameter: about twice as much
    assert weights < 671_026_404_352 * 2 * 0.51


def test_a_model_without_quantization_config_keeps_its_own_dtype():
    result = _run("meta-llama/Llama-3.1-8B")
    assert result["inputs"]["weight_dtype"] == "bfloat16"
    assert result["checkpoint"] is None


def test_active_parameters_without_embeddings_follow_the_model_card():
    # gpt-oss model card: 5.13B active for gpt-oss-120b, without the input embedding table
    parameters = _run("openai/gpt-oss-120b")["parameters"]
    assert round(parameters["active_without_embeddings"] / 1e9, 2) == 5.13
    embedding = 201_088 * 2_880
    assert parameters["active"] - parameters["active_without_embeddings"] == embedding


def test_a_tied_model_keeps_its_shared_table_in_the_active_count():
    # Llama 3.2 1B ties its head to the embeddings: the one table is also the unembedding
    parameters = _run("meta-llama/Llama-3.2-1B")["parameters"]
    assert parameters["active_without_embeddings"] == parameters["active"]


# --- reading quantization_config --------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "dtype"),
    [
        ({"quant_method": "mxfp4"}, "mxfp4"),
        ({"quant_method": "fp8", "weight_block_size": [128, 128]}, "fp8_block"),
        ({"quant_method": "fp8"}, "float8"),
        ({"quant_method": "bitsandbytes", "load_in_8bit": True}, "int8"),
        (
            {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"},
            "nf4_no_dq",
        ),
        (
            {
                "quant_method": "bitsandbytes",
                "load_in_4bit": True,
                "bnb_4bit_use_double_quant": True,
            },
            "nf4",
        ),
        ({"quant_method": "gptq", "bits": 4, "group_size": 128}, "gptq_int4"),
        ({"quant_method": "awq", "bits": 4, "group_size": 128}, "awq_int4"),
        ({"quant_method": "modelopt", "quant_algo": "NVFP4"}, "nvfp4"),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {
                    "group_0": {"weights": {"num_bits": 4, "type": "float", "group_size": 16}}
                },
            },
            "nvfp4",
        ),
    ],
)
def test_quantization_config_names_the_engine_format(config, dtype):
    assert checkpoint_format(config).weight_dtype == dtype


def test_an_unknown_or_unsized_format_is_said_so():
    gptq_8 = checkpoint_format({"quant_method": "gptq", "bits": 8})
    assert gptq_8.weight_dtype is None
    assert "8-bit has no engine format" in gptq_8.notes[0]
    hqq = checkpoint_format({"quant_method": "hqq"})
    assert hqq.weight_dtype is None
    assert "does not size" in hqq.notes[0]
    assert checkpoint_format({"quant_method": ""}) is None
    assert checkpoint_format("fp8") is None


def test_exclusions_match_as_transformers_matches_them():
    checkpoint = checkpoint_format(
        {
            "quant_method": "fp8",
            "weight_block_size": [128, 128],
            "modules_to_not_convert": ["model.layers.*.self_attn", "lm_head", "re:.*mlp\\.gate$"],
        }
    )
    assert checkpoint.keeps_16_bit("model.layers.*.self_attn.q_proj")  # regex prefix, "*"
    assert checkpoint.keeps_16_bit("lm_head")
    assert checkpoint.keeps_16_bit("model.layers.*.mlp.gate")  # compressed-tensors "re:"
    assert not checkpoint.keeps_16_bit("model.layers.*.mlp.gate_proj")
    assert not checkpoint_format(
        {"quant_method": "fp8", "modules_to_not_convert": ["re:("]}
    ).keeps_16_bit("lm_head")  # a broken regex names nothing
