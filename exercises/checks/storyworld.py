"""Checks for the chapter 2 exercises (menus, exclusion, entropy rate)."""

from __future__ import annotations

import math
from collections.abc import Callable


def menu_probabilities(solution: Callable) -> None:
    """Exercise 2.1: the probabilities of a Zipf-weighted menu."""
    for n in (1, 2, 5, 40):
        weights = [1 / (k + 2) for k in range(n)]
        expected = [w / sum(weights) for w in weights]
        got = [float(p) for p in solution(n)]
        assert len(got) == n, f"menu_probabilities({n}): {len(got)} values"
        assert math.isclose(sum(got), 1.0, abs_tol=1e-9), (
            f"menu_probabilities({n}) sums to {sum(got):.4f}, not 1: "
            "divide the weights by their sum")
        assert all(math.isclose(a, b, abs_tol=1e-12)
                   for a, b in zip(got, expected)), (
            f"menu_probabilities({n}) should start {expected[:3]}, got "
            f"{got[:3]} (rank k, from 0, has weight 1/(k+2))")
    print("✓ menu_probabilities is right")


def excluded_log2prob(solution: Callable) -> None:
    """Exercise 2.2: log2 p of a draw with one option excluded."""
    weights = {"Mia": 0.5, "Tom": 0.25, "Ann": 0.25}
    for option, exclude, p in (("Tom", None, 0.25), ("Tom", "Mia", 0.5),
                               ("Mia", "Ann", 0.5 / 0.75),
                               ("Ann", "Tom", 0.25 / 0.75)):
        got = float(solution(weights, option, exclude))
        assert math.isclose(got, math.log2(p), abs_tol=1e-9), (
            f"P({option!r}) excluding {exclude!r} is {p:.4f}, log2 "
            f"{math.log2(p):.4f}; got {got:.4f} (the redraws renormalise: "
            "divide by the total weight without the excluded option; "
            "answer in bits)")
    print("✓ excluded_log2prob is right")


def entropy_rate(solution: Callable) -> None:
    """Exercise 2.3: bits per byte as a ratio of sums."""
    bits, sizes = [2.0, 2.0, 9.0], [2, 6, 10]
    expected = sum(bits) / sum(sizes)
    got = float(solution(bits, sizes))
    assert math.isclose(got, expected, rel_tol=1e-9), (
        f"expected {expected:.4f} bits per byte, got {got:.4f}: a model's "
        "loss per byte is total bits over total bytes, a ratio of sums, "
        "not the mean of each story's ratio")
    assert math.isclose(float(solution([3.0], [4])), 0.75), (
        "one story of 4 bytes and 3 bits: 0.75 bits per byte")
    print("✓ entropy_rate is right")
