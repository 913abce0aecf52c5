"""The chapter 12 exercise checks also pass the package's own functions
(tests/test_exercises.py runs the stubs, solutions and wrong solutions)."""

from __future__ import annotations

import sys
from pathlib import Path

EXERCISES = Path(__file__).resolve().parents[1] / "exercises"


def test_book_and_solutions_agree() -> None:
    """The package's functions pass the same checks as the solutions."""
    from scratchllm.align.dpo import dpo_loss
    from scratchllm.align.grpo import group_advantages
    from scratchllm.align.reward import bradley_terry_loss

    sys.path.insert(0, str(EXERCISES))
    try:
        from checks import alignment as checks
    finally:
        sys.path.remove(str(EXERCISES))
    checks.bradley_terry_loss(bradley_terry_loss)
    checks.dpo_loss(dpo_loss)
    checks.group_advantages(group_advantages)
