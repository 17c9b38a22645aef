"""docs/limits.md shows the limits the engine, the forms and the API enforce: its tables are
generated from the engine's constants, and this test fails when they drift apart.

Regenerate the tables after changing a limit: `.venv/bin/python -m tests.security.test_limits_docs`.
"""

from __future__ import annotations

import re
from pathlib import Path

from calculator.engine.architecture import LIMITS as ARCHITECTURE_LIMITS
from calculator.engine.contract import OPEN_LOW, contract_limits, limits_table
from calculator.engine.hardware import GPU_SPEC_LIMITS

DOC = Path(__file__).resolve().parents[2] / "docs" / "limits.md"
BEGIN, END = "<!-- limits:begin (generated) -->", "<!-- limits:end -->"


def render_tables() -> str:
    """The tables, from the contract's rows (calculator/engine/contract.py) and the model's and
    GPU figures' own limits."""
    lines = [
        *limits_table(
            "Estimate inputs", contract_limits(("workload", "training", "view", "parallel"))
        ),
        *limits_table(
            "Architecture (`model.architecture`, and the same keys of a config.json)",
            ARCHITECTURE_LIMITS,
        ),
        *limits_table("GPUs, throughput and cost", contract_limits(("hardware",)), OPEN_LOW),
        *limits_table("A GPU given by its figures (`gpu`)", GPU_SPEC_LIMITS),
        *limits_table("Serving plans (mode `serving`)", contract_limits(("serving",)), OPEN_LOW),
    ]
    return "\n".join(lines)


def _generated_block(text: str) -> str:
    match = re.search(re.escape(BEGIN) + r"\n(.*?)" + re.escape(END), text, re.DOTALL)
    assert match, f"{DOC} lost its {BEGIN} ... {END} block"
    return match.group(1)


def test_the_tables_in_docs_limits_are_the_engines_limits():
    assert _generated_block(DOC.read_text()) == render_tables()


def test_the_request_limits_in_the_docs_are_the_settings(settings):
    from calculator.api.parsers import MAX_JSON_DEPTH  # needs Django's settings

    text = DOC.read_text()
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 1_048_576
    assert settings.FILE_UPLOAD_MAX_MEMORY_SIZE == 1_048_576
    from calculator.domain.services import MAX_CONFIG_JSON_BYTES  # pasted or uploaded config.json

    assert MAX_CONFIG_JSON_BYTES == 1_048_576
    assert "1 MB (1,048,576 bytes)" in text
    assert f"nest at most {MAX_JSON_DEPTH} levels" in text
    assert f"{settings.AXES_FAILURE_LIMIT} failed logins for one account from one address" in text
    assert f"{settings.AXES_ADDRESS_FAILURE_LIMIT} failed logins\n  from one address" in text
    minutes = settings.AXES_COOLOFF_TIME.total_seconds() / 60
    assert f"locked out for {minutes:g} minutes" in text


if __name__ == "__main__":
    old = DOC.read_text()
    block = f"{BEGIN}\n{_generated_block(old)}{END}"
    DOC.write_text(old.replace(block, f"{BEGIN}\n{render_tables()}{END}"))
    print(f"{DOC}: tables regenerated")
