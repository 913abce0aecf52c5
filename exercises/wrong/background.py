"""Wrong solutions to the chapter 1 exercises (see ``__init__``)."""

from __future__ import annotations

import torch

from wrong import says


@says("wraps around")
def count_bigrams__wraps_around(ids: torch.Tensor,
                                vocab_size: int) -> torch.Tensor:
    """Pairs each id with the next one cyclically: the last with the
    first."""
    pairs = ids * vocab_size + ids.roll(-1)
    counts = torch.bincount(pairs, minlength=vocab_size * vocab_size)
    return counts.view(vocab_size, vocab_size)


@says("transposed")
def count_bigrams__transposed(ids: torch.Tensor,
                              vocab_size: int) -> torch.Tensor:
    """Indexes counts[next, previous]."""
    pairs = ids[1:] * vocab_size + ids[:-1]
    counts = torch.bincount(pairs, minlength=vocab_size * vocab_size)
    return counts.view(vocab_size, vocab_size)


@says("minlength")
def count_bigrams__no_minlength(ids: torch.Tensor,
                               vocab_size: int) -> torch.Tensor:
    """bincount without minlength: the table is too short when the last
    ids never occur."""
    counts = torch.bincount(ids[:-1] * vocab_size + ids[1:])
    return counts.view(vocab_size, vocab_size)


@says("dim=1")
def smoothed_probabilities__normalises_columns(
    counts: torch.Tensor, alpha: float
) -> torch.Tensor:
    """Divides by the column sums (softmax-style wrong axis)."""
    smoothed = counts.double() + alpha
    totals = smoothed.sum(dim=0, keepdim=True)
    if (totals == 0).any():
        raise ValueError("a column with no counts")
    return smoothed / totals


@says("every one of the V cells")
def smoothed_probabilities__alpha_once_in_total(
    counts: torch.Tensor, alpha: float
) -> torch.Tensor:
    """Adds alpha once to the row total instead of V times."""
    totals = counts.double().sum(dim=1, keepdim=True) + alpha
    if (totals == 0).any():
        raise ValueError("a row with no counts and alpha=0")
    return (counts.double() + alpha) / totals


@says("log base 2")
def bits_per_symbol__natural_log(probabilities: torch.Tensor,
                                 ids: torch.Tensor) -> float:
    """Nats, not bits."""
    return -probabilities[ids[:-1], ids[1:]].log().mean().item()


@says("len(ids) - 1")
def bits_per_symbol__divides_by_len_ids(probabilities: torch.Tensor,
                                        ids: torch.Tensor) -> float:
    """Sums the pairs' costs but divides by the number of ids."""
    total = -probabilities[ids[:-1], ids[1:]].log2().sum().item()
    return total / len(ids)


@says("probabilities[previous, next]")
def bits_per_symbol__transposed_lookup(probabilities: torch.Tensor,
                                       ids: torch.Tensor) -> float:
    """Reads q(previous | next): rows indexed by the next id."""
    return -probabilities[ids[1:], ids[:-1]].log2().mean().item()
