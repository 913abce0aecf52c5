"""Wrong solutions to the chapter 8 exercises (see ``__init__``)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from wrong import says


@says("not the sum")
def cross_entropy__sum_not_mean(logits: torch.Tensor,
                                targets: torch.Tensor) -> torch.Tensor:
    """Sums the per-position losses."""
    scores = logits.reshape(-1, logits.shape[-1]).float()
    picked = scores.gather(-1, targets.reshape(-1, 1)).squeeze(-1)
    return (scores.logsumexp(-1) - picked).sum()


@says("the last dimension")
def cross_entropy__normalises_over_positions(
    logits: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """log_softmax over the batch and time positions, not the
    vocabulary."""
    scores = logits.reshape(-1, logits.shape[-1]).float()
    log_probs = scores.log_softmax(dim=0)
    return -log_probs.gather(-1, targets.reshape(-1, 1)).mean()


@says("subtract the row maximum")
def cross_entropy__unstable(logits: torch.Tensor,
                            targets: torch.Tensor) -> torch.Tensor:
    """log(sum(exp(z))) without subtracting the maximum first."""
    scores = logits.reshape(-1, logits.shape[-1]).float()
    picked = scores.gather(-1, targets.reshape(-1, 1)).squeeze(-1)
    return (scores.exp().sum(-1).log() - picked).mean()


def _cosine(step: int, peak_lr: float, min_lr: float, start: int,
            span: int) -> float:
    progress = min((step - start) / span, 1.0)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1 + math.cos(math.pi
                                                             * progress))


@says("(step + 1)")
def warmup_cosine__warmup_starts_at_zero(
    step: int, *, peak_lr: float, warmup_steps: int, total_steps: int,
    min_lr: float = 0.0
) -> float:
    """peak * step / warmup: step 0 has learning rate 0, a wasted step."""
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    return _cosine(step, peak_lr, min_lr, warmup_steps,
                   max(total_steps - 1 - warmup_steps, 1))


@says("total_steps - 1")
def warmup_cosine__cosine_one_step_too_long(
    step: int, *, peak_lr: float, warmup_steps: int, total_steps: int,
    min_lr: float = 0.0
) -> float:
    """The cosine spans total - warmup steps, so the last step stays
    above min_lr."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    return _cosine(step, peak_lr, min_lr, warmup_steps,
                   total_steps - warmup_steps)


@says("not a straight line")
def warmup_cosine__linear_decay(
    step: int, *, peak_lr: float, warmup_steps: int, total_steps: int,
    min_lr: float = 0.0
) -> float:
    """Decays linearly from the peak to min_lr, with the right end
    points and midpoint."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    span = max(total_steps - 1 - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    return peak_lr - (peak_lr - min_lr) * progress


@says("one scale for all")
def clip_grad_norm__per_parameter(parameters: Iterable[torch.Tensor],
                                  max_norm: float) -> torch.Tensor:
    """Clips each gradient to max_norm on its own."""
    grads = [p.grad for p in parameters if p.grad is not None]
    total = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    with torch.no_grad():
        for grad in grads:
            norm = torch.linalg.vector_norm(grad)
            grad.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))
    return total


@says("min(1,")
def clip_grad_norm__always_rescales(parameters: Iterable[torch.Tensor],
                                    max_norm: float) -> torch.Tensor:
    """Scales to exactly max_norm, blowing small gradients up."""
    grads = [p.grad for p in parameters if p.grad is not None]
    total = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    with torch.no_grad():
        for grad in grads:
            grad.mul_(max_norm / (total + 1e-6))
    return total


@says("targets tokens[:, 1:]")
def training_step__targets_not_shifted(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer,
    tokens: torch.Tensor
) -> float:
    """Uses the inputs as targets: the model learns to copy."""
    inputs = tokens[:, :-1]
    logits = model(inputs)
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), inputs.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


@says("zero_grad()")
def training_step__no_zero_grad(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer,
    tokens: torch.Tensor
) -> float:
    """Never clears the gradients, so each step adds up all past ones."""
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    logits = model(inputs)
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss.backward()
    optimizer.step()
    return loss.item()
