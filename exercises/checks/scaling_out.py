"""Checks for the chapter 9 exercises (ZeRO memory, pipeline bubble,
tensor-parallel shards)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._expect import raises_value_error


def zero_bytes(solution: Callable) -> None:
    """Exercise 9.1: per-device bytes of DDP and ZeRO 1/2/3."""
    params, devices = 1_000_000, 8
    expected = {0: 16e6, 1: 4e6 + 12e6 / 8, 2: 2e6 + 14e6 / 8,
                3: 16e6 / 8}
    for stage, value in expected.items():
        got = solution(params, devices, stage)
        assert abs(got - value) < 1e-6 * value, (
            f"stage {stage}, {params:,} parameters on {devices} devices: "
            f"expected {value:,.0f} bytes, got {got:,.0f} (per parameter: "
            "2 bytes of bf16 weights, 2 of gradients, 12 of fp32 master "
            "weights and Adam moments; stage 1 shards the optimizer state, "
            "stage 2 also the gradients, stage 3 also the weights)")
    for stage in range(4):
        assert abs(solution(params, 1, stage) - 16e6) < 1e-3, (
            "on one device every stage holds all 16 bytes per parameter")
    for bad in [(params, 8, 4), (params, 0, 1), (params, 8, -1)]:
        raises_value_error(f"zero_bytes{bad} is not a valid setting",
                           solution, *bad)
    print("✓ zero_bytes is right")


def micro_batches_for(solution: Callable) -> None:
    """Exercise 9.2: the smallest m with (p-1)/(m+p-1) <= b."""
    cases = {(2, 0.2): 4, (2, 0.5): 1, (4, 0.1): 27, (8, 0.25): 21,
             (1, 0.01): 1, (4, 3 / 7): 4, (3, 0.05): 38, (2, 0.3): 3,
             (3, 0.3): 5}
    for (stages, bubble), expected in cases.items():
        got = solution(stages, bubble)
        assert got == expected, (
            f"{stages} stages, bubble <= {bubble}: expected {expected} "
            f"micro-batches, got {got} (the smallest m with (p - 1) / "
            "(m + p - 1) <= bound: round up)")
    for bad in [(4, 0.0), (4, 1.0), (4, -0.1)]:
        raises_value_error(f"micro_batches_for{bad}: the bubble bound "
                           "must lie strictly between 0 and 1",
                           solution, *bad)
    print("✓ micro_batches_for is right")


def shard_linear(solution: Callable) -> None:
    """Exercise 9.3: column- and row-parallel shards of a Linear."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 4, generator=generator)
    x = torch.randn(3, 4, generator=generator)
    full = x @ weight.T
    for world in (1, 2):
        columns = [solution(weight, r, world, "column") for r in range(world)]
        assert all(c.shape == (6 // world, 4) for c in columns), (
            f"column shards over {world} should be [{6 // world}, 4], got "
            f"{[tuple(c.shape) for c in columns]} (column-parallel splits "
            "the output features, the rows of W [out, in]; row-parallel "
            "the input features)")
        joined = torch.cat([x @ c.T for c in columns], dim=-1)
        assert torch.allclose(joined, full, atol=1e-6), (
            "concatenating the column-parallel outputs must give x @ W.T")
        rows = [solution(weight, r, world, "row") for r in range(world)]
        assert all(r.shape == (6, 4 // world) for r in rows), (
            f"row shards over {world} should be [6, {4 // world}], got "
            f"{[tuple(r.shape) for r in rows]}")
        part = 4 // world
        summed = sum(x[:, r * part:(r + 1) * part] @ rows[r].T
                     for r in range(world))
        assert torch.allclose(summed, full, atol=1e-6), (
            "summing the row-parallel partial outputs must give x @ W.T")
    shard = solution(weight, 0, 2, "column")
    shard += 1
    assert not torch.equal(weight[:3], shard), (
        "return a copy: changing the shard changed the original weight")
    for bad in [(weight, 0, 4, "column"), (weight, 0, 3, "row"),
                (weight, 2, 2, "row"), (weight, 0, 2, "diagonal")]:
        raises_value_error(
            f"shard_linear(weight {tuple(weight.shape)}, {bad[1]}, "
            f"{bad[2]}, {bad[3]!r}) has no valid shard (the dimension must "
            "split evenly, 0 <= rank < world, kind 'column' or 'row')",
            solution, *bad)
    print("✓ shard_linear is right")
