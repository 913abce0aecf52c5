"""Reference solutions for the chapter 11 exercises."""

from __future__ import annotations

import math

import torch
from torch import nn


def masked_targets(ids: list[int], loss_mask: list[bool]
                   ) -> tuple[list[int], list[int]]:
    """Inputs and next-token targets, -100 where the target is not
    learnt."""
    targets = [t if m else -100 for t, m in zip(ids[1:], loss_mask[1:])]
    return list(ids[:-1]), targets


class LoRA(nn.Module):
    """A frozen linear layer plus a trained low-rank correction."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base.requires_grad_(False)
        self.A = nn.Parameter(torch.empty(rank, base.in_features))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = nn.Parameter(torch.zeros(base.out_features, rank))
        self.scaling = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """base(x) plus the scaled correction."""
        return self.base(x) + (x @ self.A.T @ self.B.T) * self.scaling

    def merged_weight(self) -> torch.Tensor:
        """W + (alpha / rank) B A."""
        return self.base.weight + self.scaling * self.B @ self.A


def chat_template() -> str:
    """A Jinja ChatML template."""
    return (
        "{% for message in messages %}"
        "{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
        " + '<|im_end|>\\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}"
        "{{ '<|im_start|>assistant\\n' }}"
        "{% endif %}"
    )
