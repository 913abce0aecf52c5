"""Reference solutions for the chapter 12 exercises."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(chosen: torch.Tensor,
                       rejected: torch.Tensor) -> torch.Tensor:
    """Mean -log sigma(chosen - rejected)."""
    return -F.logsigmoid(chosen - rejected).mean()


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
             reference_chosen: torch.Tensor,
             reference_rejected: torch.Tensor,
             beta: float) -> torch.Tensor:
    """The mean DPO loss of a batch of pairs."""
    margin = ((policy_chosen - reference_chosen)
              - (policy_rejected - reference_rejected))
    return -F.logsigmoid(beta * margin).mean()


def group_advantages(rewards: torch.Tensor,
                     eps: float = 1e-4) -> torch.Tensor:
    """Rewards standardised within each group (row)."""
    mean = rewards.mean(dim=-1, keepdim=True)
    return (rewards - mean) / (rewards.std(dim=-1, keepdim=True) + eps)
