"""Wrong solutions to the chapter 6 exercises (see ``__init__``)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from wrong import says


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
            scale: float, diagonal: int = 1, dim: int = -1,
            stable: bool = True) -> torch.Tensor:
    """One causal head with a knob for each mistake below."""
    length = q.shape[0]
    scores = q @ k.T * scale
    future = torch.ones(length, length, dtype=torch.bool).triu(diagonal)
    scores = scores.masked_fill(future, float("-inf"))
    if stable:
        scores = scores - scores.amax(dim=dim, keepdim=True)
    exps = torch.exp(scores)
    return exps / exps.sum(dim=dim, keepdim=True) @ v


@says("1/sqrt(D)")
def causal_attention__no_scale(q: torch.Tensor, k: torch.Tensor,
                               v: torch.Tensor) -> torch.Tensor:
    """Forgets to divide the scores by sqrt(D)."""
    return _attend(q, k, v, scale=1.0)


@says("a position sees itself")
def causal_attention__mask_hides_the_diagonal(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """triu(0) instead of triu(1): a position cannot see itself."""
    return _attend(q, k, v, scale=1 / math.sqrt(q.shape[-1]), diagonal=0)


@says("softmax over the keys")
def causal_attention__softmax_over_queries(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """Normalises each column (over queries) instead of each row."""
    return _attend(q, k, v, scale=1 / math.sqrt(q.shape[-1]), dim=0)


@says("subtract each row's maximum")
def causal_attention__unstable_softmax(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """exp of the raw scores: overflows when they are large."""
    return _attend(q, k, v, scale=1 / math.sqrt(q.shape[-1]),
                   stable=False)


@says("not tile the heads")
def grouped_query_attention__tiles_kv_heads(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """k.repeat: query head h uses kv head h % H_kv, not h // group."""
    group = q.shape[1] // k.shape[1]
    k = k.repeat(1, group, 1, 1)
    v = v.repeat(1, group, 1, 1)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


@says("must be causal")
def grouped_query_attention__not_causal(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """Shares the heads right but lets every query see every key."""
    group = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)
    return F.scaled_dot_product_attention(q, k, v)


@says("bottom-right")
def decoding_mask__top_left_aligned(new: int, total: int) -> torch.Tensor:
    """tril of a [new, total] matrix: the first query sees only key 0."""
    if new > total:
        raise ValueError(f"{new} new queries cannot follow {total} keys")
    return torch.ones(new, total, dtype=torch.bool).tril()


@says("its own key")
def decoding_mask__strictly_before(new: int, total: int) -> torch.Tensor:
    """< instead of <=: no query sees its own key."""
    if new > total:
        raise ValueError(f"{new} new queries cannot follow {total} keys")
    rows = torch.arange(new)[:, None] + (total - new)
    return torch.arange(total)[None, :] < rows
