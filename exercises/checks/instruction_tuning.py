"""Checks for the chapter 11 exercises (loss-mask targets, a LoRA layer,
the chat template)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn


def masked_targets(solution: Callable) -> None:
    """Exercise 11.1: shift by one, then mask by the target's flag."""
    ids = [10, 11, 12, 13, 14, 15]
    mask = [False, False, False, True, True, False]
    inputs, targets = solution(ids, mask)
    assert list(inputs) == [10, 11, 12, 13, 14], (
        f"inputs must be every token but the last, got {list(inputs)}")
    expected = [-100, -100, 13, 14, -100]
    assert list(targets) == expected, (
        f"for ids {ids} and mask {mask} expected targets {expected}, got "
        f"{list(targets)}: the target at t is ids[t + 1], kept only when "
        "loss_mask[t + 1] is True")
    inputs, targets = solution([1, 2], [True, True])
    assert (list(inputs), list(targets)) == ([1], [2]), (
        "a two-token conversation gives one input and one target")
    print("✓ masked_targets is right")


def LoRA(solution: Callable) -> None:
    """Exercise 11.2: frozen base, zero B, alpha / rank, merging."""
    torch.manual_seed(0)
    base = nn.Linear(6, 4, bias=False)
    original = base.weight.detach().clone()
    layer = solution(copy.deepcopy(base), 2, 8.0)
    trainable = {tuple(p.shape) for p in layer.parameters()
                 if p.requires_grad}
    assert trainable == {(2, 6), (4, 2)}, (
        "only A [rank, in] and B [out, rank] may train (freeze the base); "
        f"trainable shapes: {sorted(trainable)}")
    x = torch.randn(3, 6)
    assert torch.allclose(layer(x), base(x), atol=1e-6), (
        "B starts at zero, so at first the layer must equal its base")
    layer(x).sum().backward()
    grads = {tuple(p.shape): p.grad for p in layer.parameters()
             if p.requires_grad}
    assert grads[(4, 2)] is not None and grads[(4, 2)].abs().sum() > 0, (
        "B's gradient is zero at the start: A must start random, not zero")
    with torch.no_grad():
        for p in layer.parameters():
            if p.requires_grad and tuple(p.shape) == (4, 2):
                p.copy_(torch.randn(4, 2))
    a = next(p for p in layer.parameters() if tuple(p.shape) == (2, 6))
    b = next(p for p in layer.parameters() if tuple(p.shape) == (4, 2))
    expected = base(x) + 4.0 * (x @ a.T @ b.T)
    assert torch.allclose(layer(x), expected, atol=1e-5), (
        "forward must add (alpha / rank) * x A^T B^T; with alpha 8 and "
        "rank 2 the scale is 4")
    merged = layer.merged_weight()
    assert torch.allclose(x @ merged.T, layer(x), atol=1e-5), (
        "merged_weight() must compute the same function as forward")
    assert torch.equal(layer.base.weight if hasattr(layer, "base")
                       else original, original), (
        "merged_weight() must not change the base weight")
    print("✓ LoRA is right")


CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."},
     {"role": "user", "content": "Who?\nTell me."},
     {"role": "assistant", "content": "Mia."}],
]


def chat_template(solution: Callable) -> None:
    """Exercise 11.3: renders exactly what the book's template does."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from scratchllm.finetune.chat import render_chat

    template = solution()
    assert isinstance(template, str), "return the template as a string"
    environment = ImmutableSandboxedEnvironment(trim_blocks=True,
                                                lstrip_blocks=True)
    compiled = environment.from_string(template)
    for messages in CONVERSATIONS:
        for prompt in (False, True):
            got = compiled.render(messages=messages,
                                  add_generation_prompt=prompt)
            want = render_chat(messages, add_generation_prompt=prompt)
            assert got == want, (
                f"with add_generation_prompt={prompt} expected\n{want!r}\n"
                f"got\n{got!r}")
    print("✓ chat_template is right")
