"""Checks for the chapter 6 exercises (attention)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ._expect import raises_value_error


def causal_attention(solution: Callable) -> None:
    """Exercise 6.1: one causal head, stable softmax."""
    generator = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(3, 9, 8, generator=generator).unbind(0)
    out = solution(q, k, v)
    assert tuple(out.shape) == (9, 8), f"shape {tuple(out.shape)}"
    expected = F.scaled_dot_product_attention(
        q[None], k[None], v[None], is_causal=True)[0]
    assert torch.allclose(out, expected, atol=1e-5), (
        "output differs from causal SDPA: scale the scores by 1/sqrt(D); "
        "mask key s for query t only when s > t (a position sees itself);"
        " softmax over the keys (the last dimension)")
    changed = v.clone()
    changed[5:] += 10.0
    assert torch.allclose(solution(q, k, changed)[:5], out[:5],
                          atol=1e-5), (
        "positions 0..4 changed when only later values did: the mask "
        "leaks the future")
    big = solution(q * 300, k * 300, v)
    assert torch.isfinite(big).all(), (
        "huge scores gave inf/nan: subtract each row's maximum first")
    expected = F.scaled_dot_product_attention(
        300 * q[None], 300 * k[None], v[None], is_causal=True)[0]
    assert torch.allclose(big, expected, atol=1e-4), (
        "wrong result for large scores")
    print("✓ causal_attention is right")


def grouped_query_attention(solution: Callable) -> None:
    """Exercise 6.2: GQA by sharing k/v heads in contiguous groups."""
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(2, 6, 10, 4, generator=generator)
    for kv_heads in (6, 3, 2, 1):
        k = torch.randn(2, kv_heads, 10, 4, generator=generator)
        v = torch.randn(2, kv_heads, 10, 4, generator=generator)
        out = solution(q, k, v)
        assert tuple(out.shape) == (2, 6, 10, 4), (
            f"H_kv={kv_heads}: shape {tuple(out.shape)}")
        expected = F.scaled_dot_product_attention(
            q, k.repeat_interleave(6 // kv_heads, 1),
            v.repeat_interleave(6 // kv_heads, 1), is_causal=True)
        assert torch.allclose(out, expected, atol=1e-5), (
            f"H_kv={kv_heads}: wrong output; query heads 0..g-1 share kv "
            "head 0 (repeat each kv head in place, not tile the heads), "
            "and attention must be causal")
    print("✓ grouped_query_attention is right")


def decoding_mask(solution: Callable) -> None:
    """Exercise 6.3: the bottom-right aligned causal mask."""
    square = solution(3, 3)
    assert square.dtype == torch.bool, f"dtype {square.dtype}, want bool"
    assert square.tolist() == torch.ones(3, 3).tril().bool().tolist(), (
        "new == total must give the ordinary lower-triangular mask, "
        "diagonal included (a query sees its own key)")
    assert solution(1, 5).tolist() == [[True] * 5], (
        "one new token sees every cached key and itself (align the mask "
        "bottom-right: the last query is the last key)")
    assert solution(2, 4).tolist() == [[True, True, True, False],
                                       [True, True, True, True]], (
        "2 new queries after 2 cached keys: the first new query sees keys "
        "0..2, the second keys 0..3")
    raises_value_error("4 new queries cannot follow 2 keys (new > total)",
                       solution, 4, 2)
    print("✓ decoding_mask is right")
