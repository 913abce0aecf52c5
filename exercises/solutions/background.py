"""Reference solutions for the chapter 1 exercises."""

from __future__ import annotations

import torch


def count_bigrams(ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """counts[a, b]: how often id b follows id a in ids."""
    pairs = ids[:-1] * vocab_size + ids[1:]
    counts = torch.bincount(pairs, minlength=vocab_size * vocab_size)
    return counts.view(vocab_size, vocab_size)


def smoothed_probabilities(
    counts: torch.Tensor, alpha: float
) -> torch.Tensor:
    """Rows of next-symbol probabilities with additive smoothing."""
    smoothed = counts.double() + alpha
    totals = smoothed.sum(dim=1, keepdim=True)
    if (totals == 0).any():
        raise ValueError("a row with no counts and alpha=0 cannot be "
                         "normalised")
    return smoothed / totals


def bits_per_symbol(probabilities: torch.Tensor, ids: torch.Tensor) -> float:
    """Mean -log2 q(next | previous) over the pairs of ids."""
    return -probabilities[ids[:-1], ids[1:]].log2().mean().item()
