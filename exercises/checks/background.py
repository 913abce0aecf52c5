"""Checks for the chapter 1 exercises (counting, smoothing, bits)."""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise

import torch

from ._expect import raises_value_error


def count_bigrams(solution: Callable) -> None:
    """Exercise 1.1: counts of each pair of consecutive ids."""
    ids = torch.tensor([0, 1, 1, 2, 0, 1])
    counts = _count_bigrams(solution, ids, 3)
    assert tuple(counts.shape) == (3, 3), (
        f"expected shape (3, 3), got {tuple(counts.shape)}")
    assert int(counts.sum()) == 5, (
        f"6 ids have 5 consecutive pairs; your counts add up to "
        f"{int(counts.sum())} (no pair wraps around from the end)")
    expected = torch.tensor([[0, 2, 0], [0, 1, 1], [1, 0, 0]])
    assert not torch.equal(counts.long(), expected.T), (
        "your counts are transposed: counts[a, b] is how often b follows "
        "a (rows: the earlier id)")
    assert torch.equal(counts.long(), expected), (
        f"for ids {ids.tolist()} expected\n{expected}\ngot\n{counts}")
    counts = _count_bigrams(solution, torch.tensor([1, 0, 1]), 4)
    assert tuple(counts.shape) == (4, 4), (
        f"vocab_size 4 needs a (4, 4) table even when ids 2 and 3 never "
        f"occur; got shape {tuple(counts.shape)}")
    ids = torch.randint(0, 7, (1000,), generator=torch.Generator()
                        .manual_seed(0))
    counts = solution(ids, 7)
    assert int(counts.sum()) == 999, (
        "a sequence of 1000 ids has 999 pairs; your counts add up to "
        f"{int(counts.sum())}")
    expected = torch.zeros(7, 7, dtype=torch.long)
    for a, b in pairwise(ids.tolist()):
        expected[a, b] += 1
    assert torch.equal(counts.long(), expected), (
        "wrong counts for 1000 random ids over 7 symbols")
    print("✓ count_bigrams is right")


def _count_bigrams(solution: Callable, ids: torch.Tensor,
                   vocab_size: int) -> torch.Tensor:
    """solution(ids, vocab_size), a shape error reported as a failure."""
    try:
        return solution(ids, vocab_size)
    except NotImplementedError:
        raise
    except RuntimeError as error:
        raise AssertionError(
            f"ids {ids.tolist()} with vocab_size {vocab_size} raised "
            f"RuntimeError ({error}): the table is vocab_size x vocab_size"
            " even when the largest ids never occur (bincount's "
            "minlength)") from error


def smoothed_probabilities(solution: Callable) -> None:
    """Exercise 1.2: add-alpha smoothing, rows normalised."""
    counts = torch.tensor([[3, 1, 0], [0, 0, 0], [1, 1, 2]])
    probabilities = solution(counts, 1.0)
    assert probabilities.dtype == torch.float64, (
        f"expected float64, got {probabilities.dtype}")
    expected = torch.tensor([[4 / 7, 2 / 7, 1 / 7], [1 / 3] * 3,
                             [2 / 7, 2 / 7, 3 / 7]], dtype=torch.float64)
    sums = probabilities.sum(dim=1)
    assert torch.allclose(sums, torch.ones(3, dtype=torch.float64)), (
        f"each row must sum to 1; yours sum to {sums.tolist()} (add alpha "
        "to every one of the V cells, then divide each row by its own sum"
        ", over dim=1)")
    assert torch.allclose(probabilities, expected), (
        f"with alpha=1 expected\n{expected}\ngot\n{probabilities}\n"
        "(add alpha to every cell, then divide each row by its sum)")
    assert torch.allclose(solution(counts[[0]], 0.0),
                          torch.tensor([[0.75, 0.25, 0.0]],
                                       dtype=torch.float64)), (
        "with alpha=0 the rows are plain relative frequencies")
    raises_value_error(
        "a row of zeros with alpha=0 has no distribution (do not return "
        "NaN)", solution, counts, 0.0)
    print("✓ smoothed_probabilities is right")


def bits_per_symbol(solution: Callable) -> None:
    """Exercise 1.3: mean negative log2-likelihood of the next ids."""
    uniform = torch.full((4, 4), 0.25, dtype=torch.float64)
    ids = torch.tensor([0, 3, 2, 2, 1])
    value = solution(uniform, ids)
    assert isinstance(value, float), f"return a float, not {type(value)}"
    assert math.isclose(value, 2.0), (
        f"a uniform model over 4 symbols costs exactly 2 bits; got {value}"
        " (log base 2, not e? the mean over the len(ids) - 1 pairs?)")
    table = torch.tensor([[0.5, 0.5], [0.9, 0.1]], dtype=torch.float64)
    ids = torch.tensor([0, 1, 0, 0])
    expected = -(math.log2(0.5) + math.log2(0.9) + math.log2(0.5)) / 3
    value = solution(table, ids)
    assert math.isclose(value, expected, rel_tol=1e-9), (
        f"expected {expected:.6f} bits for pairs (0,1), (1,0), (0,0); got "
        f"{value:.6f} (log base 2? mean over len(ids) - 1 pairs?)")
    ids = torch.tensor([0, 1, 1])
    expected = -(math.log2(0.5) + math.log2(0.1)) / 2
    value = solution(table, ids)
    assert math.isclose(value, expected, rel_tol=1e-9), (
        f"expected {expected:.6f} bits for pairs (0,1), (1,1); got "
        f"{value:.6f}: q(next | previous) is probabilities[previous, next]"
        " (rows: the previous id)")
    print("✓ bits_per_symbol is right")
