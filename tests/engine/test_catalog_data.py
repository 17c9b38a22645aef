"""The built-in catalogs (calculator/data/*.json): shape, sources, and exact parameter counts.

Every model's `transformers_parameters` was counted by transformers 5.24.0 on the meta
device (see calculator/data/README.md); the engine must reproduce it from the config alone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import calculator
from calculator.engine.architecture import architecture_from_hf_config

DATA_DIR = Path(calculator.__file__).parent / "data"
GiB = 1024**3


def load(name: str) -> list[dict[str, Any]]:
    with open(DATA_DIR / name, encoding="utf-8") as f:
        return json.load(f)


MODELS = load("models.json")
GPUS = load("gpus.json")
MODELS_BY_SLUG = {entry["slug"]: entry for entry in MODELS}
GPUS_BY_SLUG = {gpu["slug"]: gpu for gpu in GPUS}

# The presets of the original Streamlit app (reference/seed-formulas.md, "Its presets").
ORIGINAL_PRESETS = [
    "meta-llama/Meta-Llama-3-8B",
    "meta-llama/Meta-Llama-3-8B-Instruct",
    "meta-llama/Meta-Llama-3-70B-Instruct",
    "mistralai/Mistral-7B-Instruct-v0.3",
    "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "microsoft/Phi-3-mini-4k-instruct",
    "Qwen/Qwen2-72B-Instruct",
    "microsoft/phi-2",
]

REQUIRED_GPUS = [
    "h200", "h100-sxm", "h100-pcie", "a100-40gb", "a100-80gb", "l40s", "l4", "a10g", "t4",
    "v100-16gb", "v100-32gb", "rtx-3090", "rtx-4090", "rtx-5090", "rtx-6000-ada", "mi300x",
    "mi250x", "gaudi3", "b200", "apple-m2-ultra-192gb",
]  # fmt: skip


def test_models_file_parses_into_enough_unique_entries():
    assert isinstance(MODELS, list)
    assert len(MODELS) >= 30
    assert len(MODELS_BY_SLUG) == len(MODELS), "duplicate model slugs"


def test_gpus_file_parses_into_enough_unique_entries():
    assert isinstance(GPUS, list)
    assert len(GPUS) >= 20
    assert len(GPUS_BY_SLUG) == len(GPUS), "duplicate GPU slugs"


def test_every_original_preset_is_in_the_catalog():
    missing = [slug for slug in ORIGINAL_PRESETS if slug not in MODELS_BY_SLUG]
    assert missing == []


@pytest.mark.parametrize("entry", MODELS, ids=lambda entry: entry["slug"])
def test_model_entry_has_required_keys_and_types(entry):
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", entry["slug"])
    assert isinstance(entry["name"], str) and entry["name"]
    assert isinstance(entry["published_parameters_display"], str)
    assert entry["published_parameters_display"]
    assert isinstance(entry["source"], str) and entry["source"]
    assert isinstance(entry["transformers_parameters"], int)
    assert entry["transformers_parameters"] > 0
    published = entry["published_parameters"]
    assert published is None or (isinstance(published, int) and published > 0)
    config = entry["config"]
    assert isinstance(config, dict)
    assert entry["family"] == config["model_type"]
    assert isinstance(config["architectures"], list) and config["architectures"]


@pytest.mark.parametrize(
    "entry",
    [entry for entry in MODELS if entry["published_parameters"] is not None],
    ids=lambda entry: entry["slug"],
)
def test_published_count_equals_what_transformers_instantiates(entry):
    # A difference would mean a wrong config value (README: fix the config, not the figure).
    assert entry["transformers_parameters"] == entry["published_parameters"]


def _leading_figure(display: str) -> tuple[float, int, float]:
    """ "30.5B total, 3.3B active" -> (30.5, 1 decimal, 1e9)."""
    match = re.match(r"(\d+(?:\.(\d+))?)([BM])", display)
    assert match, f"display figure {display!r} does not start with a number and B/M"
    decimals = len(match.group(2) or "")
    scale = 1e9 if match.group(3) == "B" else 1e6
    return float(match.group(1)), decimals, scale


@pytest.mark.parametrize("entry", MODELS, ids=lambda entry: entry["slug"])
def test_model_card_figure_agrees_with_the_count_at_its_precision(entry):
    # The model card's rounded figure is a second, independent check of the config.
    # Figures given as whole billions by their authors ("40B", "405B") are names,
    # not roundings: only figures with decimals are held to their precision.
    figure, decimals, scale = _leading_figure(entry["published_parameters_display"])
    if decimals == 0:
        assert abs(entry["transformers_parameters"] / scale - figure) < 0.05 * figure
    else:
        assert round(entry["transformers_parameters"] / scale, decimals) == figure


def test_llama_3_1_8b_count_by_hand():
    hidden, layers, vocab, intermediate = 4096, 32, 128256, 14336
    kv_width = 8 * 128  # 8 key/value heads of 128
    attention = 2 * hidden * hidden + 2 * hidden * kv_width  # q, o + k, v; no biases
    mlp = 3 * hidden * intermediate  # gate, up, down
    norms = 2 * hidden  # input and post-attention RMSNorm weights
    expected = 2 * vocab * hidden + layers * (attention + mlp + norms) + hidden  # untied head
    assert expected == 8_030_261_248  # HF Llama 3.1 release blog / safetensors total
    assert MODELS_BY_SLUG["meta-llama/Llama-3.1-8B"]["transformers_parameters"] == expected


def test_gpt2_count_by_hand():
    hidden, layers, vocab, positions = 768, 12, 50257, 1024
    attention = hidden * 3 * hidden + 3 * hidden + hidden * hidden + hidden  # c_attn, c_proj
    mlp = hidden * 4 * hidden + 4 * hidden + 4 * hidden * hidden + hidden  # c_fc, c_proj
    norms = 2 * 2 * hidden  # ln_1, ln_2 with biases
    expected = vocab * hidden + positions * hidden + layers * (attention + mlp + norms)
    expected += 2 * hidden  # ln_f; lm_head is tied to wte
    assert expected == 124_439_808  # openai-community/gpt2 safetensors total
    assert MODELS_BY_SLUG["openai-community/gpt2"]["transformers_parameters"] == expected


def test_nemotron_h_8b_count_by_hand():
    # nvidia/Nemotron-H-8B-Base-8K: 24 Mamba-2 blocks (M), 4 attention (*), 24 MLP-only (-),
    # each block one mixer behind one RMSNorm (transformers NemotronHBlock)
    hidden, vocab = 4096, 131072
    heads, head_dim, groups, state, kernel = 128, 64, 8, 128, 4
    inner = heads * head_dim  # 8,192 = expand 2 x hidden
    conv_dim = inner + 2 * groups * state  # x, B and C through the causal convolution
    mamba = hidden * (inner + conv_dim + heads)  # in_proj: gate, x/B/C, dt
    mamba += conv_dim * kernel + conv_dim  # conv1d weight and bias (use_conv_bias)
    mamba += 3 * heads + inner + inner * hidden  # dt_bias, A_log, D; gated norm; out_proj
    attention = 2 * hidden * hidden + 2 * hidden * 8 * 128  # q, o; k, v of 8 heads of 128
    mlp = 2 * hidden * 21504  # up and down, relu2 (no gate)
    layers = 24 * mamba + 4 * attention + 24 * mlp + 52 * hidden  # and the blocks' norms
    expected = 2 * vocab * hidden + layers + hidden  # untied head, final norm
    assert expected == 8_100_852_736
    assert MODELS_BY_SLUG["nvidia/Nemotron-H-8B-Base-8K"]["transformers_parameters"] == expected


def test_falcon_7b_counts_its_tied_head_once():
    # The Hub's 7.22B figure stores lm_head again: 65,024 x 4,544 more than the tied model.
    entry = MODELS_BY_SLUG["tiiuae/falcon-7b"]
    assert entry["config"]["vocab_size"] * entry["config"]["hidden_size"] == 295_469_056
    assert round((entry["transformers_parameters"] + 295_469_056) / 1e9, 2) == 7.22


@pytest.mark.parametrize("entry", MODELS, ids=lambda entry: entry["slug"])
def test_engine_counts_what_transformers_instantiates(entry):
    architecture, _notes = architecture_from_hf_config(entry["config"])
    assert architecture.num_parameters == entry["transformers_parameters"]
    if entry["published_parameters"] is not None:
        assert architecture.num_parameters == entry["published_parameters"]


def test_engine_active_count_matches_mixtral_release_figure():
    # Mistral AI, "Mixtral of experts" (2023): 46.7B total, 12.9B used per token.
    architecture, _notes = architecture_from_hf_config(
        MODELS_BY_SLUG["mistralai/Mixtral-8x7B-Instruct-v0.1"]["config"]
    )
    assert round(architecture.num_active_parameters / 1e9, 1) == 12.9


@pytest.mark.parametrize(
    ("slug", "active_billions"),
    [("openai/gpt-oss-20b", 3.61), ("openai/gpt-oss-120b", 5.13)],
)
def test_engine_active_count_matches_gpt_oss_model_card(slug, active_billions):
    # gpt-oss model card, parameter table: 3.61B / 5.13B active. OpenAI leaves the input
    # embedding table out of "active" (a lookup, not a matmul); the unembedding stays in.
    config = MODELS_BY_SLUG[slug]["config"]
    architecture, _notes = architecture_from_hf_config(config)
    embedding = config["vocab_size"] * config["hidden_size"]  # 201,088 x 2,880
    assert round((architecture.num_active_parameters - embedding) / 1e9, 2) == active_billions


GPU_KEYS = {
    "slug", "name", "vendor", "memory_bytes", "memory_bandwidth_bytes_per_s",
    "bf16_dense_tflops", "price_per_hour_usd", "sources", "notes",
}  # fmt: skip


def test_every_required_gpu_is_in_the_catalog():
    missing = [slug for slug in REQUIRED_GPUS if slug not in GPUS_BY_SLUG]
    assert missing == []


@pytest.mark.parametrize("gpu", GPUS, ids=lambda gpu: gpu["slug"])
def test_gpu_figures_are_positive_and_each_has_a_source(gpu):
    assert set(gpu) == GPU_KEYS
    assert re.fullmatch(r"[a-z0-9-]+", gpu["slug"])
    assert isinstance(gpu["memory_bytes"], int) and gpu["memory_bytes"] > 0
    assert isinstance(gpu["memory_bandwidth_bytes_per_s"], int)
    assert gpu["memory_bandwidth_bytes_per_s"] > 0
    assert isinstance(gpu["bf16_dense_tflops"], int | float) and gpu["bf16_dense_tflops"] > 0
    price = gpu["price_per_hour_usd"]
    assert price is None or (isinstance(price, int | float) and price > 0)
    assert set(gpu["sources"]) == {"memory", "bandwidth", "tflops", "price"}
    assert all(isinstance(text, str) and text for text in gpu["sources"].values())
    assert isinstance(gpu["notes"], str)


@pytest.mark.parametrize("gpu", GPUS, ids=lambda gpu: gpu["slug"])
def test_gpu_memory_is_a_whole_number_of_gib(gpu):
    # README rule: the marketed "N GB" is stored as N x 1024**3 bytes.
    assert gpu["memory_bytes"] % GiB == 0


def test_h100_sxm_figures_from_its_datasheet():
    h100 = GPUS_BY_SLUG["h100-sxm"]
    assert h100["memory_bytes"] == 80 * GiB  # "80GB" HBM3
    assert h100["memory_bandwidth_bytes_per_s"] == 3_350_000_000_000  # 3.35 TB/s
    # BF16 Tensor Core 1,979 TFLOPS with sparsity; dense is half.
    assert h100["bf16_dense_tflops"] == pytest.approx(1979 / 2, abs=0.2)


def test_gpus_without_bfloat16_say_so():
    for slug in ("t4", "v100-16gb", "v100-32gb"):
        assert "FP16" in GPUS_BY_SLUG[slug]["sources"]["tflops"]
        assert "bfloat16" in GPUS_BY_SLUG[slug]["notes"]


def test_unified_memory_notes_say_the_gpu_cannot_use_all_of_it():
    apple = [gpu for gpu in GPUS if gpu["vendor"] == "Apple"]
    assert apple
    for gpu in apple:
        assert "75%" in gpu["notes"]
