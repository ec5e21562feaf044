"""The baselines by name, with step schedules that follow eps and the data set.

`ATTACKS[name](model, eps, channels=..., **options)` builds an attack; options left out (or
None) get defaults: one-channel data (MNIST) uses Madry's MNIST schedule, 40 steps of 0.01 at
eps 0.3; colour data (CIFAR-10) uses PGD-10 with alpha = 2.5 * eps / steps (2/255 at 8/255).
MI-FGSM keeps its paper's 10 steps of eps / 10 everywhere.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from torch import nn

from agscm.attacks.ata import ATA
from agscm.attacks.base import Attack
from agscm.attacks.fgsm import FGSM
from agscm.attacks.mifgsm import MIFGSM
from agscm.attacks.noise import RandomNoise
from agscm.attacks.pgd import PGD
from agscm.data.budget import default_eps
from agscm.errors import AgscmError


@dataclass(frozen=True)
class Schedule:
    """Default steps, and the step size as `alpha = alpha_scale * eps / steps`."""

    steps: int
    alpha_scale: float


MADRY_MNIST = Schedule(steps=40, alpha_scale=40 * 0.01 / 0.3)
PGD_10 = Schedule(steps=10, alpha_scale=2.5)
MOMENTUM_PAPER = Schedule(steps=10, alpha_scale=1.0)


@dataclass(frozen=True)
class AttackFactory:
    """Builds one attack class with defaults for the data set (`channels`: 1 grey, else colour)."""

    cls: type[Attack]
    grey: Schedule | None = None
    colour: Schedule | None = None

    @property
    def options(self) -> list[str]:
        """The keywords this attack takes besides model and eps."""
        return [name for name in inspect.signature(self.cls).parameters
                if name not in ("model", "eps")]

    def __call__(self, model: nn.Module, eps: float | None = None, *, channels: int = 1,
                 **options: Any) -> Attack:
        options = {key: value for key, value in options.items() if value is not None}
        if eps is None and options.get("norm") == "l2":
            raise AgscmError("the default budgets are L-inf; give eps for an L2 attack")
        eps = default_eps(channels) if eps is None else eps
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise AgscmError(f"{self.cls.name} takes no {', '.join(unknown)}; its options are "
                             f"{', '.join(self.options)}")
        schedule = self.grey if channels == 1 else self.colour
        if schedule is not None:
            options.setdefault("steps", schedule.steps)
            if options["steps"] < 1:
                raise AgscmError(f"steps must be >= 1, got {options['steps']}")
            options.setdefault("alpha", schedule.alpha_scale * eps / options["steps"])
            if not options["alpha"] > 0:
                raise AgscmError(f"alpha must be > 0, got {options['alpha']}")
        return self.cls(model, eps=eps, **options)


ATTACKS: dict[str, AttackFactory] = {
    "fgsm": AttackFactory(FGSM),
    "pgd": AttackFactory(PGD, grey=MADRY_MNIST, colour=PGD_10),
    "mifgsm": AttackFactory(MIFGSM, grey=MOMENTUM_PAPER, colour=MOMENTUM_PAPER),
    "ata": AttackFactory(ATA, grey=MADRY_MNIST, colour=PGD_10),
    "noise": AttackFactory(RandomNoise),  # the floor: random signs, no gradient
}


def make_attack(name: str, model: nn.Module, eps: float | None = None, *, channels: int = 1,
                **options: Any) -> Attack:
    """`ATTACKS[name](...)`, with a one-line error naming the valid methods."""
    if name not in ATTACKS:
        raise AgscmError(f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}")
    return ATTACKS[name](model, eps, channels=channels, **options)


def attack_settings(attack: Attack) -> dict[str, Any]:
    """The hyper-parameters an attack runs with (eps and every constructor option), for reports."""
    names = [name for name in inspect.signature(type(attack)).parameters if name != "model"]
    return {name: getattr(attack, name) for name in names}
