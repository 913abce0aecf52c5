"""Checks for the chapter 5 exercises (embeddings and RoPE)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def embed_by_matmul(solution: Callable) -> None:
    """Exercise 5.1: one-hot vectors times the table."""
    generator = torch.Generator().manual_seed(0)
    table = torch.randn(11, 5, generator=generator)
    tokens = torch.tensor([[3, 0, 8], [7, 7, 1]])
    out = _embed(solution, tokens, table)
    assert tuple(out.shape) == (2, 3, 5), (
        f"expected shape (2, 3, 5), got {tuple(out.shape)}")
    assert out.dtype == table.dtype, (
        f"expected the table's dtype {table.dtype}, got {out.dtype}")
    assert torch.allclose(out, table[tokens], atol=1e-6), (
        "the rows differ from table[tokens] (no scaling: one_hot(tokens, "
        "V) @ table picks the rows exactly)")
    single = _embed(solution, torch.tensor([4]), table)
    assert torch.allclose(single, table[[4]], atol=1e-6), (
        "a 1-D batch of one id should give its row")
    print("✓ embed_by_matmul is right")


def _embed(solution: Callable, tokens: torch.Tensor,
           table: torch.Tensor) -> torch.Tensor:
    """solution(tokens, table), a shape error reported as a failure."""
    try:
        return solution(tokens, table)
    except NotImplementedError:
        raise
    except (RuntimeError, IndexError) as error:
        raise AssertionError(
            f"ids {tokens.tolist()} with a table of {table.shape[0]} rows "
            f"raised {type(error).__name__} ({error}); the one-hot vectors "
            "need V = table.shape[0] entries, whatever ids the batch "
            "holds") from error


def _reference_rope(x: torch.Tensor, positions: torch.Tensor,
                    base: float) -> torch.Tensor:
    """Rotation pair by pair, written with explicit cos/sin."""
    half = x.shape[-1] // 2
    out = x.clone()
    for i in range(half):
        angle = positions.float() * base ** (-2 * i / x.shape[-1])
        a, b = x[:, i], x[:, i + half]
        out[:, i] = a * angle.cos() - b * angle.sin()
        out[:, i + half] = a * angle.sin() + b * angle.cos()
    return out


def rope(solution: Callable) -> None:
    """Exercise 5.2: rotate-half RoPE."""
    x = torch.zeros(1, 2)
    x[0, 0] = 1.0
    turned = solution(x, torch.tensor([1]), 10000.0)
    expected = torch.tensor([[math.cos(1.0), math.sin(1.0)]])
    assert torch.allclose(turned, expected, atol=1e-6), (
        f"D=2, position 1: (1, 0) should turn by 1 radian to {expected}, "
        f"got {turned} (counter-clockwise: (a, b) becomes (a cos - b sin, "
        "a sin + b cos))")
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(9, 16, generator=generator)
    positions = torch.arange(5, 14)
    out = solution(x, positions, 100.0)
    assert tuple(out.shape) == (9, 16), f"shape {tuple(out.shape)}"
    assert torch.allclose(out.norm(dim=-1), x.norm(dim=-1), atol=1e-5), (
        "a rotation must not change a vector's length")
    reference = _reference_rope(x, positions, 100.0)
    assert torch.allclose(out, reference, atol=1e-5), (
        "wrong rotation: pair i is (x[i], x[i + D/2]) and turns by "
        "position * base ** (-2 i / D)")
    zero = solution(x, torch.zeros(9, dtype=torch.long), 100.0)
    assert torch.allclose(zero, x), "position 0 must leave x unchanged"
    print("✓ rope is right")


def _interleaved_rope(x: torch.Tensor, base: float = 10000.0):
    """Paper-style RoPE on [T, D]: pairs (0, 1), (2, 3), ..."""
    length, dim = x.shape
    angles = torch.arange(length).float()[:, None] * base ** (
        -torch.arange(0, dim, 2).float() / dim)
    even, odd = x[:, 0::2], x[:, 1::2]
    return torch.stack([even * angles.cos() - odd * angles.sin(),
                        even * angles.sin() + odd * angles.cos()],
                       dim=-1).flatten(-2)


def _halves_rope(x: torch.Tensor, base: float = 10000.0):
    """Rotate-half RoPE on [T, D]."""
    return _reference_rope(x, torch.arange(x.shape[0]), base)


def interleaved_to_halves(solution: Callable) -> None:
    """Exercise 5.3: permute q/k rows from interleaved to rotate-half."""
    generator = torch.Generator().manual_seed(0)
    n_heads, head_dim, d_model = 3, 8, 12
    w_q = torch.randn(n_heads * head_dim, d_model, generator=generator)
    w_k = torch.randn(n_heads * head_dim, d_model, generator=generator)
    x = torch.randn(7, d_model, generator=generator)
    new_q = solution(w_q, n_heads)
    new_k = solution(w_k, n_heads)
    assert tuple(new_q.shape) == tuple(w_q.shape), (
        f"shape changed to {tuple(new_q.shape)}")
    assert sorted(new_q.sum(1).tolist()) == sorted(w_q.sum(1).tolist()), (
        "the result must be a permutation of the rows")
    for head in range(n_heads):
        rows = slice(head * head_dim, (head + 1) * head_dim)
        old = (_interleaved_rope(x @ w_q[rows].T)
               @ _interleaved_rope(x @ w_k[rows].T).T)
        new = (_halves_rope(x @ new_q[rows].T)
               @ _halves_rope(x @ new_k[rows].T).T)
        assert torch.allclose(old, new, atol=1e-4), (
            f"head {head}: attention scores differ; permute rows within "
            "each head, evens first, then odds")
    print("✓ interleaved_to_halves is right")
