"""Checks for the chapter 7 exercises (the transformer)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def rms_norm(solution: Callable) -> None:
    """Exercise 7.1: RMSNorm against torch.nn.functional.rms_norm."""
    generator = torch.Generator().manual_seed(0)
    x = 3 * torch.randn(4, 5, 16, generator=generator) + 1
    weight = torch.randn(16, generator=generator)
    out = solution(x, weight, 1e-5)
    expected = torch.nn.functional.rms_norm(x, (16,), weight, eps=1e-5)
    assert tuple(out.shape) == tuple(x.shape), f"shape {tuple(out.shape)}"
    assert torch.allclose(out, expected, atol=1e-5), (
        "differs from torch.nn.functional.rms_norm: divide by "
        "sqrt(mean(x**2) + eps) over the last dimension, then scale by "
        "weight (do not subtract the mean: that is LayerNorm)")
    small = 1e-3 * torch.randn(3, 16, generator=generator)
    out = solution(small, weight, 1e-5)
    expected = torch.nn.functional.rms_norm(small, (16,), weight, eps=1e-5)
    assert torch.allclose(out, expected, atol=1e-4), (
        "wrong for inputs of size 1e-3, where eps matters: eps goes inside "
        "the square root, sqrt(mean(x**2) + eps)")
    tiny = solution(torch.zeros(2, 16), weight, 1e-5)
    assert torch.isfinite(tiny).all(), "a zero vector must not give NaN"
    half = solution(x.bfloat16(), weight.bfloat16(), 1e-5)
    assert half.dtype == torch.bfloat16, (
        f"bfloat16 input gave {half.dtype}; cast back to the input dtype")
    print("✓ rms_norm is right")


def parameter_count(solution: Callable) -> None:
    """Exercise 7.2: against the model's own count."""
    from scratchllm.model.config import ModelConfig
    from scratchllm.model.gpt import GPT

    cases = [
        dict(vocab_size=100, d_model=32, n_layers=2, n_heads=4,
             n_kv_heads=4, ffn_hidden=64, tie_embeddings=True),
        dict(vocab_size=100, d_model=32, n_layers=3, n_heads=4,
             n_kv_heads=1, ffn_hidden=96, tie_embeddings=True),
        dict(vocab_size=257, d_model=48, n_layers=1, n_heads=6,
             n_kv_heads=2, ffn_hidden=128, tie_embeddings=False),
    ]
    for case in cases:
        expected = GPT(ModelConfig(**case)).num_parameters()
        got = solution(**case)
        assert got == expected, (
            f"{case}: expected {expected:,}, got {got}. Remember the two "
            "RMSNorms per block, the final norm, that k/v projections "
            "have n_kv_heads * head_dim outputs, and that an untied output "
            "head is a second vocab_size * d_model table")
    print("✓ parameter_count is right")


def swiglu_width(solution: Callable) -> None:
    """Exercise 7.3: matched-parameter SwiGLU width."""
    cases = {(3072, 32): 2048, (512, 32): 352, (192, 1): 128,
             (768, 64): 512, (100, 8): 64, (15, 4): 12, (21, 4): 16}
    for (hidden, multiple), expected in cases.items():
        got = solution(hidden, multiple)
        assert got == expected, (
            f"gelu_hidden={hidden}, multiple={multiple}: expected "
            f"{expected}, got {got} (the multiple nearest to 2 * "
            "gelu_hidden / 3; ties go to the larger)")
    print("✓ swiglu_width is right")
