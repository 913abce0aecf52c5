"""Checks for the chapter 8 exercises (pretraining)."""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F


def cross_entropy(solution: Callable) -> None:
    """Exercise 8.1: cross-entropy from logits, stable, with shifts done
    by the caller."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 11, generator=generator, requires_grad=True)
    targets = torch.randint(0, 11, (2, 5), generator=generator)
    loss = solution(logits, targets)
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0, (
        "return a 0-dimensional tensor (the mean over all positions)")
    expected = F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1))
    assert torch.allclose(loss, expected, atol=1e-5), (
        f"loss {loss.item():.5f}, expected {expected.item():.5f}: the mean "
        "(not the sum) over every position of logsumexp(z) - z[target], "
        "the logsumexp over the vocabulary (the last dimension)")
    (grad,) = torch.autograd.grad(loss, logits)
    (expected_grad,) = torch.autograd.grad(
        F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1)),
        logits)
    assert torch.allclose(grad, expected_grad, atol=1e-6), (
        "the gradient differs: keep everything in torch operations")
    huge = torch.tensor([[[1000.0, 0.0, -1000.0]]])
    value = solution(huge, torch.tensor([[1]]))
    assert torch.isfinite(value) and abs(value.item() - 1000.0) < 1e-3, (
        "logits of +-1000 overflowed: subtract the row maximum before exp")
    print("✓ cross_entropy is right")


def warmup_cosine(solution: Callable) -> None:
    """Exercise 8.2: linear warmup, then a cosine down to min_lr."""
    shape = dict(peak_lr=1.0, warmup_steps=10, total_steps=110, min_lr=0.1)
    rates = [solution(step, **shape) for step in range(110)]
    assert rates[0] == _near(0.1), (
        f"step 0 gives {rates[0]}: warmup is peak * (step + 1) / warmup")
    assert rates[9] == _near(1.0), (
        f"the last warmup step gives {rates[9]}, expected the peak")
    assert rates[10] == _near(1.0), (
        f"the first cosine step gives {rates[10]}, expected the peak")
    assert rates[-1] == _near(0.1), (
        f"the last step gives {rates[-1]}, expected min_lr (the cosine "
        "reaches min_lr at step total_steps - 1)")
    quarter = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 25 / 99))
    assert rates[35] == _near(quarter, 0.01), (
        f"a quarter of the way through the decay gives {rates[35]:.3f}, "
        f"expected {quarter:.3f}: the cosine is still near the peak there "
        "(a half cosine, not a straight line)")
    assert rates[60] == _near(0.55, 0.01), (
        f"half-way through the cosine gives {rates[60]}, expected the "
        "midpoint of peak and min_lr")
    assert all(a >= b - 1e-12 for a, b in zip(rates[10:], rates[11:])), (
        "the learning rate must not rise after warmup")
    print("✓ warmup_cosine is right")


def clip_grad_norm(solution: Callable) -> None:
    """Exercise 8.3: scale all gradients together to a maximum norm."""
    for max_norm in (0.05, 1e6):
        nets = [_network(), _network()]
        for net in nets:
            net(torch.ones(4, 6)).pow(2).sum().backward()
        norm = solution(list(nets[0].parameters()), max_norm)
        expected = torch.nn.utils.clip_grad_norm_(nets[1].parameters(),
                                                  max_norm)
        assert torch.is_tensor(norm) and torch.allclose(
            norm, expected, rtol=1e-5), (
            "return the global norm before clipping, as a tensor: "
            "sqrt of the sum of every gradient element squared")
        for a, b in zip(nets[0].parameters(), nets[1].parameters()):
            assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-8), (
                f"max_norm={max_norm}: gradients differ from "
                "clip_grad_norm_; scale every gradient by "
                "min(1, max_norm / (norm + 1e-6)), in place: one scale for "
                "all, from the global norm")
    print("✓ clip_grad_norm is right")


def training_step(solution: Callable, steps: int = 150) -> None:
    """Exercise 8.4: one correct training step, judged by where training
    ends: a correct loop gets within a narrow band of the corpus's
    entropy, the floor no model can beat."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # a tiny model: one thread is fastest
    try:
        final, entropy = _train_markov(solution, steps)
    finally:
        torch.set_num_threads(threads)
    band = (entropy - 0.05, entropy + 0.12)
    assert band[0] <= final <= band[1], (
        f"held-out next-token loss {final:.3f} nats; a correct step ends "
        f"in [{band[0]:.2f}, {band[1]:.2f}] (the entropy is "
        f"{entropy:.3f}). Check: inputs tokens[:, :-1] and targets "
        "tokens[:, 1:]; optimizer.zero_grad() before backward; "
        "optimizer.step() after it")
    print(f"✓ training_step is right: loss {final:.3f} nats, "
          f"{final - entropy:.3f} above the entropy floor {entropy:.3f}")


def _train_markov(solution: Callable, steps: int) -> tuple[float, float]:
    """Train a bigram model with `solution`; (held-out loss, entropy)."""
    torch.manual_seed(0)
    corpus, entropy = _markov_corpus()
    model = torch.nn.Embedding(VOCAB, VOCAB)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(1)
    train = corpus[: len(corpus) * 9 // 10]
    for _ in range(steps):
        starts = torch.randint(0, len(train) - 33, (16,),
                               generator=generator)
        tokens = torch.stack([train[s : s + 33] for s in starts.tolist()])
        loss = solution(model, optimizer, tokens)
        assert isinstance(loss, float) and math.isfinite(loss), (
            "return the loss of the step as a Python float (loss.item())")
    held_out = corpus[len(corpus) * 9 // 10 :]
    with torch.no_grad():
        logits = model(held_out[:-1])
        final = F.cross_entropy(logits, held_out[1:]).item()
    return final, entropy


VOCAB = 12


@functools.lru_cache(maxsize=1)
def _markov_corpus(length: int = 20000) -> tuple[torch.Tensor, float]:
    """A sequence from a random first-order Markov chain, and the chain's
    entropy rate in nats per token."""
    generator = torch.Generator().manual_seed(7)
    weights = torch.rand(VOCAB, VOCAB, generator=generator) ** 4
    transitions = weights / weights.sum(1, keepdim=True)
    stationary = torch.full((VOCAB,), 1.0 / VOCAB)
    for _ in range(500):
        stationary = stationary @ transitions
    entropy = -(stationary[:, None] * transitions
                * transitions.log()).sum().item()
    cumulative = transitions.double().cumsum(1).tolist()
    uniform = torch.rand(length, generator=generator, dtype=torch.float64)
    tokens = [0]
    for u in uniform[1:].tolist():
        row = cumulative[tokens[-1]]
        tokens.append(min(bisect.bisect_right(row, u), VOCAB - 1))
    return torch.tensor(tokens), entropy


def _network() -> torch.nn.Module:
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(),
                               torch.nn.Linear(16, 3))


def _near(value: float, tolerance: float = 1e-9) -> "_Near":
    return _Near(value, tolerance)


class _Near:
    """`x == _Near(v, tol)` when |x - v| <= tol (no pytest needed)."""

    def __init__(self, value: float, tolerance: float) -> None:
        self.value, self.tolerance = value, tolerance

    def __eq__(self, other: object) -> bool:
        return abs(float(other) - self.value) <= self.tolerance
