from __future__ import annotations


class EstimateError(ValueError):
    """Bad input to the engine. `field` names the offending contract field (dotted for nested
    ones, e.g. "model.architecture.hidden_size"); `message` says what is wrong in plain words."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
