"""Wrong solutions to the chapter 5 exercises (see ``__init__``)."""

from __future__ import annotations

import math

import torch

from wrong import says


@says("V = table.shape[0]")
def embed_by_matmul__one_hot_width_from_ids(
    tokens: torch.Tensor, table: torch.Tensor
) -> torch.Tensor:
    """one_hot(tokens) guesses the width from the largest id present."""
    one_hot = torch.nn.functional.one_hot(tokens)
    return one_hot.to(table.dtype) @ table


@says("no scaling")
def embed_by_matmul__scaled_by_sqrt_d(tokens: torch.Tensor,
                                      table: torch.Tensor) -> torch.Tensor:
    """Multiplies by sqrt(d_model), as some papers do after the lookup,
    though the exercise asks for the lookup itself."""
    one_hot = torch.nn.functional.one_hot(tokens, table.shape[0])
    return one_hot.to(table.dtype) @ table * math.sqrt(table.shape[1])


@says("x[i + D/2]")
def rope__interleaved_pairs(x: torch.Tensor, positions: torch.Tensor,
                            base: float = 10000.0) -> torch.Tensor:
    """Rotates the pairs (x[2i], x[2i+1]) of the paper, not the halves."""
    dim = x.shape[-1]
    frequencies = base ** (-torch.arange(0, dim, 2).float() / dim)
    angles = positions.float()[:, None] * frequencies
    even, odd = x[:, 0::2], x[:, 1::2]
    return torch.stack([even * angles.cos() - odd * angles.sin(),
                        even * angles.sin() + odd * angles.cos()],
                       dim=-1).flatten(-2)


@says("base ** (-2 i / D)")
def rope__frequency_exponent_i_over_d(
    x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0
) -> torch.Tensor:
    """Frequencies base ** (-i / D): the exponent misses its factor 2."""
    dim = x.shape[-1]
    frequencies = base ** (-torch.arange(dim // 2).float() / dim)
    angles = positions.float()[:, None] * frequencies
    cos = torch.cat([angles.cos(), angles.cos()], dim=-1)
    sin = torch.cat([angles.sin(), angles.sin()], dim=-1)
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-second, first], dim=-1) * sin


@says("counter-clockwise")
def rope__rotates_clockwise(x: torch.Tensor, positions: torch.Tensor,
                            base: float = 10000.0) -> torch.Tensor:
    """The rotate-half term with the wrong sign: (second, -first)."""
    dim = x.shape[-1]
    frequencies = base ** (-torch.arange(0, dim, 2).float() / dim)
    angles = positions.float()[:, None] * frequencies
    cos = torch.cat([angles.cos(), angles.cos()], dim=-1)
    sin = torch.cat([angles.sin(), angles.sin()], dim=-1)
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat([second, -first], dim=-1) * sin


@says("within each head")
def interleaved_to_halves__across_heads(weight: torch.Tensor,
                                        n_heads: int) -> torch.Tensor:
    """Even rows of the whole matrix first, then odd ones, ignoring the
    heads."""
    rows = weight.shape[0]
    order = torch.cat([torch.arange(0, rows, 2), torch.arange(1, rows, 2)])
    return weight[order]


@says("evens first")
def interleaved_to_halves__odds_first(weight: torch.Tensor,
                                      n_heads: int) -> torch.Tensor:
    """Odd rows of each head first: a reflection that reverses the
    rotation."""
    head_dim = weight.shape[0] // n_heads
    order = torch.cat([torch.arange(1, head_dim, 2),
                       torch.arange(0, head_dim, 2)])
    heads = weight.view(n_heads, head_dim, -1)
    return heads[:, order].reshape_as(weight)
