"""Wrong solutions to the chapter 11 exercises (see ``__init__``)."""

from __future__ import annotations

import math

import torch
from torch import nn

from wrong import says


@says("loss_mask[t + 1]")
def masked_targets__mask_of_the_input(ids, loss_mask):
    """Masks each target by the flag of its *input* token."""
    targets = [t if m else -100 for t, m in zip(ids[1:], loss_mask[:-1])]
    return list(ids[:-1]), targets


@says("the target at t is ids[t + 1]")
def masked_targets__not_shifted(ids, loss_mask):
    """Forgets that the target is the next token."""
    targets = [t if m else -100 for t, m in zip(ids[:-1], loss_mask[:-1])]
    return list(ids[:-1]), targets


@says("inputs must be every token but the last")
def masked_targets__masks_the_inputs(ids, loss_mask):
    """Hides the context from the model instead of from the loss."""
    inputs = [t if m else -100 for t, m in zip(ids[:-1], loss_mask[:-1])]
    return inputs, list(ids[1:])


class _LoRA(nn.Module):
    """The right layer, to be broken by the subclasses below."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base.requires_grad_(False)
        self.A = nn.Parameter(torch.empty(rank, base.in_features))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = nn.Parameter(torch.zeros(base.out_features, rank))
        self.scaling = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.A.T @ self.B.T) * self.scaling

    def merged_weight(self) -> torch.Tensor:
        return self.base.weight + self.scaling * self.B @ self.A


class _ScaledByAlpha(_LoRA):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.A.T @ self.B.T) * self.scaling * 2


class _MergeWithoutScale(_LoRA):
    def merged_weight(self) -> torch.Tensor:
        return self.base.weight + self.B @ self.A


@says("alpha / rank")
def LoRA__scaled_by_alpha(base: nn.Linear, rank: int,
                          alpha: float) -> nn.Module:
    """Scales the correction by alpha, not alpha / rank (here 2 alpha /
    rank, which differs from alpha / rank even when rank is 1)."""
    return _ScaledByAlpha(base, rank, alpha)


@says("freeze the base")
def LoRA__base_trains(base: nn.Linear, rank: int,
                      alpha: float) -> nn.Module:
    """Forgets to freeze the base layer."""
    layer = _LoRA(base, rank, alpha)
    layer.base.requires_grad_(True)
    return layer


@says("A must start random")
def LoRA__zero_A(base: nn.Linear, rank: int, alpha: float) -> nn.Module:
    """Starts A at zero as well: no gradient ever reaches B."""
    layer = _LoRA(base, rank, alpha)
    with torch.no_grad():
        layer.A.zero_()
    return layer


@says("same function as forward")
def LoRA__merge_forgets_the_scale(base: nn.Linear, rank: int,
                                  alpha: float) -> nn.Module:
    """Merges B A without the scale alpha / rank."""
    return _MergeWithoutScale(base, rank, alpha)


@says("add_generation_prompt=False")
def chat_template__no_newline():
    """Drops the newline after <|im_end|>."""
    return ("{% for message in messages %}{{ '<|im_start|>' + "
            "message['role'] + '\\n' + message['content'] + '<|im_end|>' }}"
            "{% endfor %}{% if add_generation_prompt %}"
            "{{ '<|im_start|>assistant\\n' }}{% endif %}")


@says("add_generation_prompt=True")
def chat_template__prompt_without_newline():
    """Ends the generation prompt without its newline."""
    return ("{% for message in messages %}{{ '<|im_start|>' + "
            "message['role'] + '\\n' + message['content'] + "
            "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}"
            "{{ '<|im_start|>assistant' }}{% endif %}")


@says("add_generation_prompt=False")
def chat_template__always_prompts():
    """Adds the generation prompt whether asked or not."""
    return ("{% for message in messages %}{{ '<|im_start|>' + "
            "message['role'] + '\\n' + message['content'] + "
            "'<|im_end|>\\n' }}{% endfor %}"
            "{{ '<|im_start|>assistant\\n' }}")
