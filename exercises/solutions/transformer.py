"""Reference solutions for the chapter 7 exercises."""

from __future__ import annotations

import math

import torch


def rms_norm(x: torch.Tensor, weight: torch.Tensor,
             eps: float = 1e-5) -> torch.Tensor:
    """Root-mean-square normalisation over the last dimension."""
    x32 = x.float()
    scale = torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps)
    return (weight * (x32 * scale).to(x.dtype)).to(x.dtype)


def parameter_count(vocab_size: int, d_model: int, n_layers: int,
                    n_heads: int, n_kv_heads: int, ffn_hidden: int,
                    tie_embeddings: bool) -> int:
    """Parameters of a Llama-style GPT, from its configuration."""
    kv_width = n_kv_heads * (d_model // n_heads)
    attention = 2 * d_model * d_model + 2 * d_model * kv_width
    feed_forward = 3 * d_model * ffn_hidden
    block = attention + feed_forward + 2 * d_model
    tables = 1 if tie_embeddings else 2
    return n_layers * block + d_model + tables * vocab_size * d_model


def swiglu_width(gelu_hidden: int, multiple: int = 32) -> int:
    """SwiGLU hidden width with about the parameters of a GELU MLP."""
    target = 2 * gelu_hidden / 3
    below = math.floor(target / multiple) * multiple
    above = below + multiple
    return above if above - target <= target - below else below
