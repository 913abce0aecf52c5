"""Chapter 10 exercises: each check rejects every plausible wrong
solution in exercises/wrong/instruction_tuning.py."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

EXERCISES = Path(__file__).resolve().parents[1] / "exercises"


@pytest.fixture(scope="module")
def modules():
    sys.path.insert(0, str(EXERCISES))
    yield (importlib.import_module("checks.instruction_tuning"),
           importlib.import_module("wrong.instruction_tuning"))
    sys.path.remove(str(EXERCISES))


def cases():
    sys.path.insert(0, str(EXERCISES))
    try:
        wrong = importlib.import_module("wrong.instruction_tuning")
        return [(name, w.__name__) for name, ws in wrong.WRONG.items()
                for w in ws]
    finally:
        sys.path.remove(str(EXERCISES))


@pytest.mark.parametrize("exercise, wrong_name", cases())
def test_check_rejects_the_wrong_solution(modules, exercise, wrong_name):
    checks, wrong = modules
    with pytest.raises(AssertionError):
        getattr(checks, exercise)(getattr(wrong, wrong_name))
