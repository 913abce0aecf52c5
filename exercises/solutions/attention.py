"""Reference solutions for the chapter 6 exercises."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def causal_attention(q: torch.Tensor, k: torch.Tensor,
                     v: torch.Tensor) -> torch.Tensor:
    """Causal scaled dot-product attention for one head."""
    length = q.shape[0]
    scores = q @ k.T / math.sqrt(q.shape[-1])
    future = torch.ones(length, length, dtype=torch.bool).triu(1)
    scores = scores.masked_fill(future, float("-inf"))
    exps = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
    return exps / exps.sum(dim=-1, keepdim=True) @ v


def grouped_query_attention(q: torch.Tensor, k: torch.Tensor,
                            v: torch.Tensor) -> torch.Tensor:
    """Causal attention where groups of query heads share k/v heads."""
    group = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def decoding_mask(new: int, total: int) -> torch.Tensor:
    """Causal mask for new queries that follow total - new cached keys."""
    if new > total:
        raise ValueError(f"{new} new queries cannot follow {total} keys")
    rows = torch.arange(new)[:, None] + (total - new)
    return torch.arange(total)[None, :] <= rows
