"""Wrong solutions to the chapter 7 exercises (see ``__init__``)."""

from __future__ import annotations

import math

import torch

from wrong import says


@says("eps goes inside the square root")
def rms_norm__eps_outside_the_root(x: torch.Tensor, weight: torch.Tensor,
                                   eps: float = 1e-5) -> torch.Tensor:
    """x / (sqrt(mean(x**2)) + eps)."""
    x32 = x.float()
    root = x32.pow(2).mean(dim=-1, keepdim=True).sqrt()
    return (weight * (x32 / (root + eps)).to(x.dtype)).to(x.dtype)


@says("LayerNorm")
def rms_norm__subtracts_the_mean(x: torch.Tensor, weight: torch.Tensor,
                                 eps: float = 1e-5) -> torch.Tensor:
    """Centres x first, as LayerNorm does."""
    x32 = x.float()
    x32 = x32 - x32.mean(dim=-1, keepdim=True)
    scale = torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps)
    return (weight * (x32 * scale).to(x.dtype)).to(x.dtype)


@says("cast back")
def rms_norm__returns_float32(x: torch.Tensor, weight: torch.Tensor,
                              eps: float = 1e-5) -> torch.Tensor:
    """Computes in float32 and never casts back to the input's dtype."""
    x32 = x.float()
    scale = torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps)
    return weight.float() * x32 * scale


def _count(vocab_size: int, d_model: int, n_layers: int, kv_width: int,
           ffn_hidden: int, tables: int, final_norm: int) -> int:
    attention = 2 * d_model * d_model + 2 * d_model * kv_width
    block = attention + 3 * d_model * ffn_hidden + 2 * d_model
    return n_layers * block + final_norm + tables * vocab_size * d_model


@says("n_kv_heads * head_dim outputs")
def parameter_count__kv_as_wide_as_q(
    vocab_size: int, d_model: int, n_layers: int, n_heads: int,
    n_kv_heads: int, ffn_hidden: int, tie_embeddings: bool
) -> int:
    """Gives k and v d_model outputs, ignoring grouped-query attention."""
    return _count(vocab_size, d_model, n_layers, d_model, ffn_hidden,
                  1 if tie_embeddings else 2, d_model)


@says("the final norm")
def parameter_count__no_final_norm(
    vocab_size: int, d_model: int, n_layers: int, n_heads: int,
    n_kv_heads: int, ffn_hidden: int, tie_embeddings: bool
) -> int:
    """Forgets the RMSNorm after the last block."""
    return _count(vocab_size, d_model, n_layers,
                  n_kv_heads * (d_model // n_heads), ffn_hidden,
                  1 if tie_embeddings else 2, 0)


@says("nearest")
def swiglu_width__always_rounds_up(gelu_hidden: int,
                                   multiple: int = 32) -> int:
    """The next multiple at or above 2h/3, even when one below is
    nearer."""
    return math.ceil(2 * gelu_hidden / 3 / multiple) * multiple


@says("ties go to the larger")
def swiglu_width__bankers_rounding(gelu_hidden: int,
                                   multiple: int = 32) -> int:
    """Python's round(): a tie goes to the even multiple, not the
    larger."""
    return round(2 * gelu_hidden / 3 / multiple) * multiple
