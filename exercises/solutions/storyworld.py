"""Reference solutions for the chapter 2 exercises."""

from __future__ import annotations

import math


def menu_probabilities(n: int) -> list[float]:
    """Probabilities of a menu of ``n`` options, weight 1/(k+2) each."""
    weights = [1 / (k + 2) for k in range(n)]
    total = sum(weights)
    return [w / total for w in weights]


def excluded_log2prob(weights: dict[str, float], option: str,
                      exclude: str | None) -> float:
    """log2 P(option) when ``exclude`` is drawn again until it is not."""
    total = sum(w for name, w in weights.items() if name != exclude)
    return math.log2(weights[option] / total)


def entropy_rate(bits: list[float], sizes: list[int]) -> float:
    """Bits per byte of a corpus, from per-story bits and byte counts."""
    return sum(bits) / sum(sizes)
