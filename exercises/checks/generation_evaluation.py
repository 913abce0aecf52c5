"""Checks for the chapter 10 exercises (penalty, nucleus, distinct-n,
Wilson interval)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ._expect import raises_value_error


def apply_repetition_penalty(solution: Callable) -> None:
    """Exercise 10.1: seen logits move down whatever their sign."""
    logits = torch.tensor([[2.0, -2.0, 2.0, -2.0, 0.0]])
    seen = torch.tensor([[True, True, False, False, True]])
    original = logits.clone()
    out = solution(logits, seen, 2.0)
    assert torch.equal(logits, original), "do not modify logits in place"
    expected = torch.tensor([[1.0, -4.0, 2.0, -2.0, 0.0]])
    assert torch.allclose(out, expected), (
        f"for logits {logits.tolist()} and seen {seen.tolist()} with "
        f"penalty 2 expected {expected.tolist()}, got {out.tolist()} "
        "(divide positive logits, multiply negative ones)")
    batch = torch.randn(3, 10, generator=torch.Generator().manual_seed(0))
    none_seen = torch.zeros(3, 10, dtype=torch.bool)
    assert torch.equal(solution(batch, none_seen, 1.5), batch), (
        "tokens that were not seen must keep their logits")
    all_seen = torch.ones(3, 10, dtype=torch.bool)
    assert (solution(batch, all_seen, 1.5) <= batch).all(), (
        "a penalty above 1 must never raise a logit")
    print("✓ apply_repetition_penalty is right")


def top_p_filter(solution: Callable) -> None:
    """Exercise 10.2: the smallest nucleus of mass >= p survives."""
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    for p, kept in [(0.5, [True, False, False, False]),
                    (0.6, [True, True, False, False]),
                    (0.81, [True, True, True, False]),
                    (0.01, [True, False, False, False])]:
        out = solution(logits, p)
        got = (out > -math.inf)[0].tolist()
        assert got == kept, (
            f"probabilities [0.5, 0.3, 0.15, 0.05] with p={p}: expected "
            f"to keep {kept}, kept {got} (keep the smallest set of top "
            "tokens whose mass reaches p: the token that crosses p stays)")
        assert torch.allclose(out[0][out[0] > -math.inf],
                              logits[0][torch.tensor(kept)]), (
            "kept tokens must keep their logits unchanged")
    shuffled = logits[:, [2, 0, 3, 1]]
    got = (solution(shuffled, 0.6) > -math.inf)[0].tolist()
    assert got == [False, True, False, True], (
        "the decision must be scattered back to the original token order; "
        f"for probabilities [0.15, 0.5, 0.05, 0.3] and p=0.6 kept {got}")
    rows = torch.randn(4, 30, generator=torch.Generator().manual_seed(1))
    out = solution(rows, 0.9)
    assert out.shape == rows.shape, "keep the shape [B, V]"
    mass = torch.where(out > -math.inf, rows.softmax(-1), 0).sum(-1)
    assert (mass >= 0.9 - 1e-6).all(), "the kept mass must reach p"
    print("✓ top_p_filter is right")


def distinct_n(solution: Callable) -> None:
    """Exercise 10.3: distinct n-grams over all n-grams."""
    cases = [((["a b a b", "A B"], 1), 2 / 6),
             ((["a b c", "a b d"], 2), 3 / 4),
             ((["a b", "b c"], 2), 1.0),
             ((["x y z"], 3), 1.0),
             ((["one", ""], 2), 0.0)]
    for (texts, n), expected in cases:
        got = solution(texts, n)
        assert isinstance(got, float), f"return a float, got {type(got)}"
        assert math.isclose(got, expected), (
            f"distinct_n({texts}, {n}) should be {expected:.3f}, got {got}"
            " (lower-case, and n-grams never cross two texts)")
    print("✓ distinct_n is right")


def wilson_interval(solution: Callable) -> None:
    """Exercise 10.4: the Wilson score interval."""
    for (k, n), (low, high) in [((5, 10), (0.2366, 0.7634)),
                                ((81, 100), (0.7222, 0.8749)),
                                ((0, 10), (0.0, 0.2775)),
                                ((10, 10), (0.7225, 1.0))]:
        got = solution(k, n)
        assert (round(got[0], 4), round(got[1], 4)) == (low, high), (
            f"wilson_interval({k}, {n}) should be ({low}, {high}), got "
            f"{got} (the Wilson score interval, centre (p + z^2/(2n)) / "
            "(1 + z^2/n), not the Wald interval p +- z sqrt(p(1-p)/n))")
    for bad in [(1, 0), (5, 3), (-1, 4)]:
        raises_value_error(f"wilson_interval{bad} has no interval",
                           solution, *bad)
    low, _ = solution(29, 100)
    assert low > 0.2 and low < 0.25, "29/100: the interval includes 25%"
    print("✓ wilson_interval is right")
