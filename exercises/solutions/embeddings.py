"""Reference solutions for the chapter 5 exercises."""

from __future__ import annotations

import torch


def embed_by_matmul(tokens: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """table[tokens], computed as one_hot(tokens) @ table."""
    one_hot = torch.nn.functional.one_hot(tokens, table.shape[0])
    return one_hot.to(table.dtype) @ table


def rope(x: torch.Tensor, positions: torch.Tensor,
         base: float = 10000.0) -> torch.Tensor:
    """Rotate-half RoPE of x [T, D] at the given positions."""
    dim = x.shape[-1]
    frequencies = base ** (-torch.arange(0, dim, 2).float() / dim)
    angles = positions.float()[:, None] * frequencies
    cos = torch.cat([angles.cos(), angles.cos()], dim=-1)
    sin = torch.cat([angles.sin(), angles.sin()], dim=-1)
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-second, first], dim=-1) * sin


def interleaved_to_halves(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Rows of a q/k projection reordered for rotate-half RoPE."""
    head_dim = weight.shape[0] // n_heads
    order = torch.cat([torch.arange(0, head_dim, 2),
                       torch.arange(1, head_dim, 2)])
    heads = weight.view(n_heads, head_dim, -1)
    return heads[:, order].reshape_as(weight)
