"""Checks for the chapter 12 exercises (Bradley–Terry loss, DPO loss,
group-relative advantages)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def _close(actual: torch.Tensor, expected: torch.Tensor) -> bool:
    """Same shape and values to float tolerance."""
    actual = torch.as_tensor(actual, dtype=torch.float64)
    return actual.shape == expected.shape and torch.allclose(
        actual, expected.to(torch.float64), atol=1e-5, rtol=1e-5)


def bradley_terry_loss(solution: Callable) -> None:
    """Exercise 12.1: mean -log sigma(chosen - rejected)."""
    assert _close(solution(torch.tensor([5.0]), torch.tensor([5.0])),
                  torch.tensor(0.6931472)), (
        "equal scores mean a coin flip: the loss must be log 2 (the "
        "logistic loss -log sigma(margin), not a hinge)")
    assert solution(torch.tensor([3.0]), torch.tensor([0.0])) < solution(
        torch.tensor([0.0]), torch.tensor([3.0])), (
        "the loss must fall when the chosen answer scores higher "
        "(is the sign the right way round?)")
    far = solution(torch.tensor([-200.0]), torch.tensor([0.0]))
    assert torch.isfinite(far) and abs(far.item() - 200) < 1e-3, (
        f"a margin of -200 must give a loss of 200, got {far}: use "
        "F.logsigmoid, log(sigmoid(x)) underflows")
    one = solution(torch.tensor([1.0]), torch.tensor([0.0]))
    two = solution(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0]))
    assert _close(two, one), (
        "two copies of a pair must give the loss of one: average over "
        "the pairs (mean, not sum)")
    chosen = torch.tensor([2.0, 0.0, -1.0])
    rejected = torch.tensor([1.0, 0.0, 1.0])
    expected = -torch.nn.functional.logsigmoid(chosen - rejected).mean()
    out = solution(chosen, rejected)
    assert _close(out, expected), (
        f"for chosen {chosen.tolist()} and rejected {rejected.tolist()} "
        f"expected {expected.item():.5f}, got {out}")
    print("✓ bradley_terry_loss is right")


def dpo_loss(solution: Callable) -> None:
    """Exercise 12.2: the DPO loss with its reference and beta."""
    up = solution(torch.tensor([-1.0]), torch.tensor([-5.0]),
                  torch.tensor([-3.0]), torch.tensor([-3.0]), 1.0)
    assert up < 0.6931472, (
        f"a policy that raises the chosen answer relative to the "
        f"reference must have a loss below log 2, got {up} (are chosen "
        "and rejected the right way round?)")
    level = torch.tensor([-3.0, -4.0])
    assert _close(solution(level, level, level, level, 0.3),
                  torch.tensor(0.6931472)), (
        "with a zero margin the loss is log 2 whatever beta is: beta "
        "multiplies the margin inside the sigmoid, not the loss")
    same = torch.tensor([-3.0, -7.0])
    assert _close(solution(same, same - 1, same - 5, same - 6, 0.3),
                  torch.tensor(0.6931472)), (
        "a policy equal to the reference up to a constant per answer has "
        "loss log 2: only log-ratios to the reference may matter "
        "(subtract the reference's log-probabilities)")
    policy_chosen = torch.tensor([-10.0, -20.0, -5.0])
    policy_rejected = torch.tensor([-12.0, -18.0, -9.0])
    reference_chosen = torch.tensor([-11.0, -19.0, -8.0])
    reference_rejected = torch.tensor([-11.5, -19.0, -6.0])
    margin = ((policy_chosen - reference_chosen)
              - (policy_rejected - reference_rejected))
    for beta in (0.1, 0.5):
        expected = -torch.nn.functional.logsigmoid(beta * margin).mean()
        out = solution(policy_chosen, policy_rejected, reference_chosen,
                       reference_rejected, beta)
        assert _close(out, expected), (
            f"with beta {beta} expected {expected.item():.5f}, got {out} "
            "(mean over pairs of -logsigmoid(beta * (chosen log-ratio - "
            "rejected log-ratio)))")
    print("✓ dpo_loss is right")


def group_advantages(solution: Callable) -> None:
    """Exercise 12.3: standardise rewards within each group."""
    rewards = torch.tensor([[1.0, 2.0, 3.0, 6.0], [10.0, 10.0, 12.0, 8.0]])
    out = solution(rewards)
    shifted = solution(rewards + torch.tensor([[100.0], [-50.0]]))
    assert _close(shifted, torch.as_tensor(out)), (
        "adding a constant to one group's rewards must not change its "
        "advantages (normalise per group, not over the batch)")
    flat = solution(torch.tensor([[2.0, 2.0, 2.0], [0.0, 1.0, 2.0]]))
    assert torch.isfinite(torch.as_tensor(flat)).all() and \
        _close(flat[0], torch.zeros(3)), (
            "a group whose rewards are all equal must get zero "
            "advantages (add eps to the standard deviation)")
    scaled = solution(rewards * torch.tensor([[10.0], [1.0]]))
    assert torch.allclose(torch.as_tensor(scaled)[0],
                          torch.as_tensor(out)[0], atol=1e-3), (
        "multiplying one group's rewards by 10 must not change its "
        "advantages: divide by the group's standard deviation")
    mean = rewards.mean(dim=1, keepdim=True)
    expected = (rewards - mean) / (rewards.std(dim=1, keepdim=True) + 1e-4)
    assert _close(out, expected), (
        f"for rewards {rewards.tolist()} expected "
        f"{expected.round(decimals=4).tolist()}, got {out}: standardise "
        "each row with its own mean and sample standard deviation "
        "(divide by n - 1)")
    print("✓ group_advantages is right")
