"""Wrong solutions to the chapter 12 exercises (see ``__init__``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wrong import says


@says("is the sign the right way round")
def bradley_terry_loss__sign_flipped(chosen, rejected):
    """Rewards the rejected answer: the sign of the margin is flipped."""
    return -F.logsigmoid(rejected - chosen).mean()


@says("use F.logsigmoid")
def bradley_terry_loss__log_of_sigmoid(chosen, rejected):
    """Takes log(sigmoid(x)), which underflows for large margins."""
    return -torch.log(torch.sigmoid(chosen - rejected)).mean()


@says("mean, not sum")
def bradley_terry_loss__sum_not_mean(chosen, rejected):
    """Sums the loss over pairs instead of averaging it."""
    return -F.logsigmoid(chosen - rejected).sum()


@says("not a hinge")
def bradley_terry_loss__hinge_not_logistic(chosen, rejected):
    """Uses a hinge on the margin instead of the logistic loss."""
    return torch.relu(1 - (chosen - rejected)).mean()


@says("only log-ratios to the reference")
def dpo_loss__no_reference_model(policy_chosen, policy_rejected,
                                 reference_chosen, reference_rejected,
                                 beta):
    """Ignores the reference model's log-probabilities."""
    return -F.logsigmoid(beta * (policy_chosen - policy_rejected)).mean()


@says("inside the sigmoid, not the loss")
def dpo_loss__beta_outside_the_sigmoid(policy_chosen, policy_rejected,
                                       reference_chosen,
                                       reference_rejected, beta):
    """Scales the loss by beta instead of the margin."""
    margin = ((policy_chosen - reference_chosen)
              - (policy_rejected - reference_rejected))
    return -beta * F.logsigmoid(margin).mean()


@says("subtract the reference")
def dpo_loss__reference_added(policy_chosen, policy_rejected,
                              reference_chosen, reference_rejected, beta):
    """Adds the reference log-probabilities instead of subtracting."""
    margin = ((policy_chosen + reference_chosen)
              - (policy_rejected + reference_rejected))
    return -F.logsigmoid(beta * margin).mean()


@says("are chosen and rejected the right way round")
def dpo_loss__chosen_and_rejected_swapped(policy_chosen, policy_rejected,
                                          reference_chosen,
                                          reference_rejected, beta):
    """Prefers the rejected answer: the margin's terms are swapped."""
    margin = ((policy_rejected - reference_rejected)
              - (policy_chosen - reference_chosen))
    return -F.logsigmoid(beta * margin).mean()


@says("not over the batch")
def group_advantages__normalised_over_the_batch(rewards, eps=1e-4):
    """Standardises over the whole batch, not within each group."""
    return (rewards - rewards.mean()) / (rewards.std() + eps)


@says("add eps")
def group_advantages__no_eps(rewards, eps=1e-4):
    """Divides by the bare standard deviation: NaN on equal rewards."""
    return ((rewards - rewards.mean(-1, keepdim=True))
            / rewards.std(-1, keepdim=True))


@says("divide by the group's standard deviation")
def group_advantages__mean_only(rewards, eps=1e-4):
    """Subtracts the group mean but does not divide by the deviation."""
    return rewards - rewards.mean(-1, keepdim=True)


@says("divide by n - 1")
def group_advantages__population_deviation(rewards, eps=1e-4):
    """Uses the population standard deviation (divides by n, not n-1)."""
    return ((rewards - rewards.mean(-1, keepdim=True))
            / (rewards.std(-1, keepdim=True, correction=0) + eps))
