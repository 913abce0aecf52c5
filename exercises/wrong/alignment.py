"""Plausible wrong solutions to the chapter 11 exercises; the checks must
reject each (tests/test_align_exercises.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

WRONG = {
    "bradley_terry_loss": {
        "sign flipped": lambda c, r: -F.logsigmoid(r - c).mean(),
        "log of sigmoid (underflows)":
            lambda c, r: -torch.log(torch.sigmoid(c - r)).mean(),
        "sum instead of mean": lambda c, r: -F.logsigmoid(c - r).sum(),
        "hinge instead of logistic":
            lambda c, r: torch.relu(1 - (c - r)).mean(),
    },
    "dpo_loss": {
        "no reference model":
            lambda pc, pr, rc, rr, b: -F.logsigmoid(b * (pc - pr)).mean(),
        "beta outside the sigmoid":
            lambda pc, pr, rc, rr, b:
                -b * F.logsigmoid((pc - rc) - (pr - rr)).mean(),
        "reference added, not subtracted":
            lambda pc, pr, rc, rr, b:
                -F.logsigmoid(b * ((pc + rc) - (pr + rr))).mean(),
        "chosen and rejected swapped":
            lambda pc, pr, rc, rr, b:
                -F.logsigmoid(b * ((pr - rr) - (pc - rc))).mean(),
    },
    "group_advantages": {
        "normalised over the whole batch":
            lambda r, eps=1e-4: (r - r.mean()) / (r.std() + eps),
        "no eps (NaN on equal rewards)":
            lambda r, eps=1e-4: (r - r.mean(-1, keepdim=True))
            / r.std(-1, keepdim=True),
        "mean only, no scaling":
            lambda r, eps=1e-4: r - r.mean(-1, keepdim=True),
        "population standard deviation":
            lambda r, eps=1e-4: (r - r.mean(-1, keepdim=True))
            / (r.std(-1, keepdim=True, correction=0) + eps),
    },
}
