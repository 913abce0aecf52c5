"""Reference solutions for the chapter 8 exercises (pretraining)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def cross_entropy(logits: torch.Tensor,
                  targets: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of targets [...] under logits [..., V]."""
    scores = logits.reshape(-1, logits.shape[-1]).float()
    ids = targets.reshape(-1)
    top = scores.max(dim=-1, keepdim=True).values.detach()
    log_partition = (scores - top).exp().sum(-1).log() + top.squeeze(-1)
    picked = scores.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    return (log_partition - picked).mean()


def warmup_cosine(step: int, *, peak_lr: float, warmup_steps: int,
                  total_steps: int, min_lr: float = 0.0) -> float:
    """Linear warmup, then half a cosine to min_lr at the last step."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    span = max(total_steps - 1 - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1 + math.cos(math.pi
                                                             * progress))


@torch.no_grad()
def clip_grad_norm(parameters: Iterable[torch.Tensor],
                   max_norm: float) -> torch.Tensor:
    """Scale all gradients so their global norm is at most max_norm."""
    grads = [p.grad for p in parameters if p.grad is not None]
    total = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for grad in grads:
        grad.mul_(scale)
    return total


def training_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                  tokens: torch.Tensor) -> float:
    """One step on windows tokens [B, T + 1]; return the loss."""
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    logits = model(inputs)
    loss = cross_entropy(logits, targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()
