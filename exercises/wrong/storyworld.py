"""Wrong solutions to the chapter 2 exercises (see ``__init__``)."""

from __future__ import annotations

import math

from wrong import says


@says("rank k, from 0, has weight 1/(k+2)")
def menu_probabilities__weights_one_over_k_plus_one(n: int) -> list[float]:
    """Weights 1/(k+1): the rank is off by one."""
    weights = [1 / (k + 1) for k in range(n)]
    return [w / sum(weights) for w in weights]


@says("divide the weights by their sum")
def menu_probabilities__not_normalised(n: int) -> list[float]:
    """Returns the weights themselves."""
    return [1 / (k + 2) for k in range(n)]


@says("the redraws renormalise")
def excluded_log2prob__ignores_the_exclusion(
        weights: dict[str, float], option: str,
        exclude: str | None) -> float:
    """The probability of a plain draw, as if nothing were excluded."""
    return math.log2(weights[option] / sum(weights.values()))


@says("answer in bits")
def excluded_log2prob__natural_log(weights: dict[str, float], option: str,
                                   exclude: str | None) -> float:
    """Natural log instead of log2."""
    total = sum(w for name, w in weights.items() if name != exclude)
    return math.log(weights[option] / total)


@says("not the mean of each story's ratio")
def entropy_rate__mean_of_ratios(bits: list[float],
                                 sizes: list[int]) -> float:
    """The mean of per-story bits per byte."""
    return sum(b / n for b, n in zip(bits, sizes)) / len(bits)
