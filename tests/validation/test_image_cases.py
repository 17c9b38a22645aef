"""The harness's vision-language cases: what the engine is asked, and what the run feeds.

The engine half is pure Python; the run half (validation/measure.py's processor-free image
inputs) needs torch and transformers (the `validate` extra) and is skipped without them.
"""

from __future__ import annotations

import importlib.util

import pytest

from calculator.engine import calculate
from validation.cases import CASES_BY_NAME, engine_payload

INFERENCE = CASES_BY_NAME["llava-infer-b2-s256-img2-bf16-sdpa"]
TRAINING = CASES_BY_NAME["llava-train-b2-s128-img1-adamw-bf16-sdpa"]

# validation/cases.py "llava", by hand. Text (a Llama): embeddings and LM head 2 * 32,064 * 512
# = 32,833,536; per layer q and o 2 * 512 * 512, k and v 2 * 512 * 128, gate/up/down
# 3 * 512 * 1,536, two norms 1,024: 3,015,680, 4 layers 12,062,720; final norm 512.
TEXT = 32_833_536 + 12_062_720 + 512
# CLIP tower (hidden 768, MLP 3,072, 3 layers, 16 px patches of 224 px images: 196 patches and
# [CLS]): patch conv 3 * 16 * 16 * 768 = 589,824 (no bias), class embedding 768, positions
# 197 * 768 = 151,296, pre and post LayerNorms 2 * 1,536; per layer q/k/v/o with biases
# 4 * (768 * 768 + 768) = 2,362,368, fc1 768 * 3,072 + 3,072 = 2,362,368, fc2 3,072 * 768 + 768
# = 2,360,064, two LayerNorms 3,072: 7,087,872, 3 layers 21,263,616.
TOWER = 589_824 + 768 + 151_296 + 2 * 1_536 + 21_263_616
# projector: linear_1 768 * 512 + 512, linear_2 512 * 512 + 512
PROJECTOR = 393_728 + 262_656
# 196 patches per image, the [CLS] feature dropped ("default" strategy): 196 tokens per image
TOKENS_PER_IMAGE = (224 // 16) ** 2


def test_the_payload_carries_the_images():
    payload = engine_payload(INFERENCE, "detailed")
    assert payload["images_per_request"] == 2
    # CLIP resizes every image to its 224 px: no size given, the engine takes the tower's
    assert payload["image_height"] is None and payload["image_width"] is None
    text_only = engine_payload(CASES_BY_NAME["llama-quick-infer"], "detailed")
    assert "images_per_request" not in text_only


def test_the_engine_counts_tower_projector_and_image_tokens():
    result = calculate(engine_payload(INFERENCE, "detailed"))
    assert result["parameters"]["total"] == TEXT + TOWER + PROJECTOR  # 67,561,728
    # K and V of 4 layers, 2 KV heads of 64, bfloat16, 2 sequences of 256 text tokens and
    # 2 images of 196 tokens each
    tokens = 256 + 2 * TOKENS_PER_IMAGE
    assert result["breakdown"]["kv_cache"] == 2 * 4 * 2 * 64 * 2 * 2 * tokens  # 2,654,208


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None,
    reason="needs the validate extra (torch, transformers)",
)
def test_the_run_feeds_image_tokens_and_pixels():
    from validation.measure import input_ids, pixel_values, training_labels

    ids = input_ids(INFERENCE, 2, 256)
    assert tuple(ids.shape) == (2, 256 + 2 * TOKENS_PER_IMAGE)
    # LLaVA-1.5's image token (image_token_index 32000), once per image feature
    assert int((ids == 32_000).sum()) == 2 * 2 * TOKENS_PER_IMAGE
    assert int(ids[:, 2 * TOKENS_PER_IMAGE :].max()) < 32_000  # text below the added tokens
    pixels = pixel_values(INFERENCE, 2, "cpu")["pixel_values"]
    assert tuple(pixels.shape) == (2 * 2, 3, 224, 224)
    labels = training_labels(TRAINING, input_ids(TRAINING, 2, 128))
    assert int((labels == -100).sum()) == 2 * TOKENS_PER_IMAGE
