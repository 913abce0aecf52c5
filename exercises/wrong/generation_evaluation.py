"""Wrong solutions to the chapter 10 exercises (see ``__init__``)."""

from __future__ import annotations

import math

import torch

from wrong import says


@says("multiply negative ones")
def apply_repetition_penalty__divides_every_logit(
    logits: torch.Tensor, seen: torch.Tensor, penalty: float
) -> torch.Tensor:
    """Divides seen logits by the penalty whatever their sign, which
    raises a negative one toward 0."""
    return torch.where(seen, logits / penalty, logits)


@says("in place")
def apply_repetition_penalty__in_place(
    logits: torch.Tensor, seen: torch.Tensor, penalty: float
) -> torch.Tensor:
    """Writes the penalised logits into the caller's tensor."""
    lowered = torch.where(logits > 0, logits / penalty, logits * penalty)
    logits[seen] = lowered[seen]
    return logits


@says("the token that crosses p stays")
def top_p_filter__drops_the_crossing_token(logits: torch.Tensor,
                                           p: float) -> torch.Tensor:
    """Keeps tokens while the running mass is <= p, so the nucleus can
    fall short of p."""
    ordered, order = torch.sort(logits, dim=-1, descending=True)
    drop_ordered = ordered.softmax(dim=-1).cumsum(dim=-1) > p
    drop_ordered[..., 0] = False
    drop = drop_ordered.scatter(-1, order, drop_ordered)
    return logits.masked_fill(drop, -math.inf)


@says("scattered back")
def top_p_filter__mask_in_sorted_order(logits: torch.Tensor,
                                       p: float) -> torch.Tensor:
    """Applies the mask computed on sorted logits to the unsorted ones."""
    ordered = torch.sort(logits, dim=-1, descending=True).values
    probs = ordered.softmax(dim=-1)
    drop = probs.cumsum(dim=-1) - probs >= p
    return logits.masked_fill(drop, -math.inf)


@says("never cross two texts")
def distinct_n__joins_the_texts(texts: list[str], n: int) -> float:
    """Joins the texts, so n-grams span the end of one and the start of
    the next."""
    words = " ".join(texts).lower().split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


@says("lower-case")
def distinct_n__case_sensitive(texts: list[str], n: int) -> float:
    """Counts "A" and "a" as different words."""
    grams = []
    for text in texts:
        words = text.split()
        grams += [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def _checked(successes: int, trials: int) -> float:
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials > 0, got "
                         f"{successes}/{trials}")
    return successes / trials


@says("not the Wald interval")
def wilson_interval__wald(successes: int, trials: int,
                          z: float = 1.96) -> tuple[float, float]:
    """The normal approximation p +- z sqrt(p (1 - p) / n), clipped."""
    p = _checked(successes, trials)
    spread = z * math.sqrt(p * (1 - p) / trials)
    return max(0.0, p - spread), min(1.0, p + spread)


@says("z^2/(2n)")
def wilson_interval__centre_z2_over_n(
    successes: int, trials: int, z: float = 1.96
) -> tuple[float, float]:
    """Adds z^2/n to p in the centre instead of z^2/(2n)."""
    p = _checked(successes, trials)
    denominator = 1 + z * z / trials
    centre = (p + z * z / trials) / denominator
    spread = z * math.sqrt(p * (1 - p) / trials
                           + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - spread), min(1.0, centre + spread)
