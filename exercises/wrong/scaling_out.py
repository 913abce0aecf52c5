"""Wrong solutions to the chapter 9 exercises (see ``__init__``)."""

from __future__ import annotations

import math

import torch

from wrong import says


def _bytes(params: int, devices: int, stage: int, optimizer_bytes: int,
           order: tuple[str, str, str]) -> float:
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"ZeRO stage must be 0, 1, 2 or 3, got {stage}")
    if devices < 1:
        raise ValueError(f"need at least one device, got {devices}")
    held = {"weights": 2 * params, "gradients": 2 * params,
            "optimizer": optimizer_bytes * params}
    for part in order[:stage]:
        held[part] /= devices
    return sum(held.values())


@says("stage 1 shards the optimizer state")
def zero_bytes__shards_weights_first(params: int, devices: int,
                                     stage: int) -> float:
    """Stage 1 shards the weights, stage 2 the gradients, stage 3 the
    optimizer state: the stages in reverse."""
    return _bytes(params, devices, stage, 12,
                  ("weights", "gradients", "optimizer"))


@says("12 of fp32 master weights")
def zero_bytes__adam_without_master_copy(params: int, devices: int,
                                         stage: int) -> float:
    """Counts 8 bytes of Adam moments, forgetting the fp32 master
    weights."""
    return _bytes(params, devices, stage, 8,
                  ("optimizer", "gradients", "weights"))


@says("round up")
def micro_batches_for__rounds_down(stages: int, max_bubble: float) -> int:
    """Truncates the bound (p - 1)(1 - b) / b instead of rounding up."""
    if not 0 < max_bubble < 1:
        raise ValueError(f"max_bubble must be in (0, 1), got {max_bubble}")
    return max(1, int((stages - 1) * (1 - max_bubble) / max_bubble))


@says("(p - 1) / (m + p - 1)")
def micro_batches_for__bubble_over_m(stages: int,
                                     max_bubble: float) -> int:
    """Takes the bubble fraction as (p - 1) / m, idle over busy time,
    instead of over the whole schedule."""
    if not 0 < max_bubble < 1:
        raise ValueError(f"max_bubble must be in (0, 1), got {max_bubble}")
    return max(1, math.ceil((stages - 1) / max_bubble - 1e-9))


def _shard(weight: torch.Tensor, rank: int, world: int, kind: str,
           dims: dict[str, int]) -> torch.Tensor:
    if kind not in dims:
        raise ValueError(f"kind must be 'column' or 'row', got {kind!r}")
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in 0..{world - 1}")
    dim = dims[kind]
    if weight.shape[dim] % world:
        raise ValueError(f"dimension {dim} does not split over {world}")
    part = weight.shape[dim] // world
    return weight.narrow(dim, rank * part, part)


@says("output features")
def shard_linear__kinds_swapped(weight: torch.Tensor, rank: int,
                                world: int, kind: str) -> torch.Tensor:
    """Column-parallel splits the columns of W [out, in] (the inputs)."""
    return _shard(weight, rank, world, kind,
                  {"column": 1, "row": 0}).clone()


@says("return a copy")
def shard_linear__returns_a_view(weight: torch.Tensor, rank: int,
                                 world: int, kind: str) -> torch.Tensor:
    """narrow() without clone(): the shard shares the full weight's
    memory."""
    return _shard(weight, rank, world, kind, {"column": 0, "row": 1})
