"""Plausible wrong solutions to the chapter 10 exercises; every check
must reject each of them (tests/test_finetune_exercises.py)."""

from __future__ import annotations

import math

import torch
from torch import nn


def targets_unshifted_mask(ids, loss_mask):
    """Masks each target by the flag of its *input* token."""
    targets = [t if m else -100 for t, m in zip(ids[1:], loss_mask[:-1])]
    return list(ids[:-1]), targets


def targets_not_shifted(ids, loss_mask):
    """Forgets that the target is the next token."""
    targets = [t if m else -100 for t, m in zip(ids[:-1], loss_mask[:-1])]
    return list(ids[:-1]), targets


def targets_masked_inputs(ids, loss_mask):
    """Hides the context from the model instead of from the loss."""
    inputs = [t if m else -100 for t, m in zip(ids[:-1], loss_mask[:-1])]
    return inputs, list(ids[1:])


class LoRABase(nn.Module):
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


class LoRAScaledByAlpha(LoRABase):
    """Scales by alpha, not alpha / rank."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.A.T @ self.B.T) * self.scaling * 2


class LoRABaseTrains(LoRABase):
    """Forgets to freeze the base layer."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__(base, rank, alpha)
        self.base.requires_grad_(True)


class LoRAZeroA(LoRABase):
    """Starts A at zero (and B random): no gradient ever reaches B."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__(base, rank, alpha)
        with torch.no_grad():
            self.A.zero_()


class LoRAMergeForgetsScale(LoRABase):
    """Merges B A without the scale."""

    def merged_weight(self) -> torch.Tensor:
        return self.base.weight + self.B @ self.A


def template_no_newline():
    """Drops the newline after <|im_end|>."""
    return ("{% for message in messages %}{{ '<|im_start|>' + "
            "message['role'] + '\\n' + message['content'] + '<|im_end|>' }}"
            "{% endfor %}{% if add_generation_prompt %}"
            "{{ '<|im_start|>assistant\\n' }}{% endif %}")


def template_prompt_without_newline():
    """Ends the generation prompt without its newline."""
    return ("{% for message in messages %}{{ '<|im_start|>' + "
            "message['role'] + '\\n' + message['content'] + "
            "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}"
            "{{ '<|im_start|>assistant' }}{% endif %}")


def template_always_prompts():
    """Adds the generation prompt whether asked or not."""
    return ("{% for message in messages %}{{ '<|im_start|>' + "
            "message['role'] + '\\n' + message['content'] + "
            "'<|im_end|>\\n' }}{% endfor %}"
            "{{ '<|im_start|>assistant\\n' }}")


WRONG = {
    "masked_targets": [targets_unshifted_mask, targets_not_shifted,
                       targets_masked_inputs],
    "LoRA": [LoRAScaledByAlpha, LoRABaseTrains, LoRAZeroA,
             LoRAMergeForgetsScale],
    "chat_template": [template_no_newline, template_prompt_without_newline,
                      template_always_prompts],
}
