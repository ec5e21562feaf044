"""The adversarial objectives a generator can be trained with, by name.

`ce`, `cw` and `mse` are the paper's choices for loss_f (agscm.train.losses); `rce` is the
relativistic cross-entropy of CDA (agscm.train.relativistic), which also needs the clean logits.
"""

from __future__ import annotations

import torch

from agscm.errors import AgscmError
from agscm.train.losses import adversarial_loss
from agscm.train.relativistic import relativistic_loss

ADV_OBJECTIVES = ("ce", "cw", "mse", "rce")
NEEDS_CLEAN_LOGITS = frozenset({"rce"})


def adversarial_objective(kind: str, adversarial_logits: torch.Tensor, labels: torch.Tensor,
                          clean_logits: torch.Tensor | None = None, kappa: float = 0.0,
                          targeted: bool = False) -> torch.Tensor:
    """L_adv (to minimise) for the objective `kind`; `clean_logits` are needed by `rce`."""
    if kind == "rce":
        if clean_logits is None:
            raise AgscmError("the rce objective needs the clean logits")
        return relativistic_loss(adversarial_logits, clean_logits, labels, targeted)
    if kind not in ADV_OBJECTIVES:
        raise AgscmError(f"unknown adversarial loss {kind!r}; choose one of "
                         f"{', '.join(ADV_OBJECTIVES)}")
    return adversarial_loss(adversarial_logits, labels, kind, kappa, targeted)
