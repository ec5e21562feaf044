"""The loss terms a generator can be trained with, one file each, chosen by name
(agscm.train.objectives.registry); what each needs from the sources is declared, so the
trainer computes it once per batch (agscm.train.objectives.base)."""

from agscm.train.objectives.base import Needs, Objective, Settings, SourcePass
from agscm.train.objectives.registry import (
    ADVERSARIAL_LOSSES,
    OBJECTIVES,
    create_objective,
    parse_weighted,
)

__all__ = ["ADVERSARIAL_LOSSES", "OBJECTIVES", "Needs", "Objective", "Settings", "SourcePass",
           "create_objective", "parse_weighted"]
