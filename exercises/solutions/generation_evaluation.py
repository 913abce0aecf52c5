"""Reference solutions for the chapter 10 exercises."""

from __future__ import annotations

import math

import torch


def apply_repetition_penalty(
    logits: torch.Tensor, seen: torch.Tensor, penalty: float
) -> torch.Tensor:
    """Logits with those of seen tokens moved down by the penalty."""
    lowered = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, lowered, logits)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the nucleus of probability mass >= p; the rest is -inf."""
    ordered, order = torch.sort(logits, dim=-1, descending=True)
    probs = ordered.softmax(dim=-1)
    drop_ordered = probs.cumsum(dim=-1) - probs >= p
    drop = drop_ordered.scatter(-1, order, drop_ordered)
    return logits.masked_fill(drop, -math.inf)


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct word n-grams over all n-grams of the texts."""
    grams = []
    for text in texts:
        words = text.lower().split()
        grams += [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def wilson_interval(
    successes: int, trials: int, z: float = 1.96
) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials > 0, got "
                         f"{successes}/{trials}")
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    spread = z * math.sqrt(p * (1 - p) / trials
                           + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - spread), min(1.0, centre + spread)
