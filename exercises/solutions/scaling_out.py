"""Reference solutions for the chapter 9 exercises (scaling out)."""

from __future__ import annotations

import math

import torch


def zero_bytes(params: int, devices: int, stage: int) -> float:
    """Bytes per device of weights, gradients and AdamW state."""
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"ZeRO stage must be 0, 1, 2 or 3, got {stage}")
    if devices < 1:
        raise ValueError(f"need at least one device, got {devices}")
    weights, gradients, optimizer = 2 * params, 2 * params, 12 * params
    if stage >= 1:
        optimizer /= devices
    if stage >= 2:
        gradients /= devices
    if stage >= 3:
        weights /= devices
    return weights + gradients + optimizer


def micro_batches_for(stages: int, max_bubble: float) -> int:
    """Fewest micro-batches with a bubble fraction <= max_bubble."""
    if not 0 < max_bubble < 1:
        raise ValueError(f"max_bubble must be in (0, 1), got {max_bubble}")
    if stages < 1:
        raise ValueError(f"need at least one stage, got {stages}")
    # (p - 1) / (m + p - 1) <= b  <=>  m >= (p - 1)(1 - b) / b
    bound = (stages - 1) * (1 - max_bubble) / max_bubble
    smallest = max(1, math.ceil(bound - 1e-9))
    while (stages - 1) / (smallest + stages - 1) > max_bubble:
        smallest += 1
    return smallest


def shard_linear(
    weight: torch.Tensor, rank: int, world: int, kind: str
) -> torch.Tensor:
    """This rank's shard of a Linear weight [out, in]."""
    if kind not in ("column", "row"):
        raise ValueError(f"kind must be 'column' or 'row', got {kind!r}")
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in 0..{world - 1}")
    dim = 0 if kind == "column" else 1
    size = weight.shape[dim]
    if size % world:
        raise ValueError(f"dimension {dim} ({size}) does not split over "
                         f"{world} processes")
    part = size // world
    return weight.narrow(dim, rank * part, part).clone()
