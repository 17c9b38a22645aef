"""The family table: a Llama-like family is one row of DECODER_ROWS, read by one reader."""

from __future__ import annotations

from calculator.engine.families import KNOWN_MODEL_TYPES, READERS
from calculator.engine.families.common import HF_PREFIX, _count, _Reader
from calculator.engine.families.decoders import DECODER_ROWS, _Decoder, _read_row
from calculator.engine.vision import VISION_MODELS


def _read(row: _Decoder, config: dict[str, object]) -> tuple[int, list[str]]:
    notes: list[str] = []
    parsed = _read_row(row, _Reader(config, HF_PREFIX, notes, "example"))
    return _count(parsed.layout).total, notes


def test_every_row_is_a_known_model_type() -> None:
    assert set(DECODER_ROWS) <= set(READERS)
    assert set(READERS) | set(VISION_MODELS) == set(KNOWN_MODEL_TYPES)


def test_a_new_row_is_counted_from_its_defaults_and_choices() -> None:
    # A made-up family: kv heads default 2, head_dim default 16, tied, q/k RMSNorm(head_dim),
    # attention_bias flag on; hidden 64, 2 layers, 4 heads, MLP 128 (gated), vocab 100.
    row = _Decoder(16, 2, True, 512, bias_key="attention_bias", qk_norm="head")
    config = {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "vocab_size": 100,
        "attention_bias": True,
    }
    total, notes = _read(row, config)
    # per layer: q 64*64+64, k and v 64*32+32 each, o 64*64+64 = 12480;
    # MLP 3*64*128 = 24576; norms 2*64 = 128; q_norm/k_norm 2*16 = 32
    # embeddings 100*64 = 6400 (LM head tied), final norm 64
    assert total == 2 * (12480 + 24576 + 128 + 32) + 6400 + 64
    assert any("num_key_value_heads" in note for note in notes)
    assert any("head_dim" in note for note in notes)
