"""Per-family config.json readers, keyed by transformers' `model_type`.

A reader takes a `_Reader` over one config.json and returns the `_Layout` whose count equals
what transformers instantiates. Families that differ from another only in key names or
defaults are rows of `decoders.DECODER_ROWS`; the others have a reader function.
"""

from __future__ import annotations

from collections.abc import Callable

from calculator.engine.families.common import _Parsed, _Reader
from calculator.engine.families.decoders import DECODER_READERS
from calculator.engine.families.hybrids import HYBRID_READERS
from calculator.engine.families.ssm import SSM_READERS
from calculator.engine.vision import VISION_MODELS

READERS: dict[str, Callable[[_Reader], _Parsed]] = {
    **DECODER_READERS,
    **HYBRID_READERS,
    **SSM_READERS,
}

# Families counted exactly, plus the multimodal ones (their text_config and vision tower read)
KNOWN_MODEL_TYPES: tuple[str, ...] = (*READERS, *VISION_MODELS)
