"""The chapter 11 exercise checks reject plausible wrong solutions."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

EXERCISES = Path(__file__).resolve().parents[1] / "exercises"
sys.path.insert(0, str(EXERCISES))

from checks import alignment as checks
from solutions import alignment as solutions
from wrong.alignment import WRONG

CASES = [(exercise, name) for exercise, versions in WRONG.items()
         for name in versions]


@pytest.mark.parametrize("exercise", sorted(WRONG))
def test_check_accepts_the_solution(exercise: str) -> None:
    getattr(checks, exercise)(getattr(solutions, exercise))


@pytest.mark.parametrize(("exercise", "name"), CASES,
                         ids=[f"{e}-{n}" for e, n in CASES])
def test_check_rejects_a_wrong_solution(exercise: str, name: str) -> None:
    with pytest.raises(AssertionError):
        getattr(checks, exercise)(WRONG[exercise][name])


def test_book_and_solutions_agree() -> None:
    """The package's functions pass the same checks."""
    from scratchllm.align.dpo import dpo_loss
    from scratchllm.align.grpo import group_advantages
    from scratchllm.align.reward import bradley_terry_loss

    checks.bradley_terry_loss(bradley_terry_loss)
    checks.dpo_loss(dpo_loss)
    checks.group_advantages(group_advantages)
