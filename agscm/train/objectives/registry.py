"""Every training objective by name. Adding one: a file with its Objective class, and its
line below."""

from __future__ import annotations

from agscm.train.named_values import lookup, parse_named_value
from agscm.train.objectives.base import Objective, Settings
from agscm.train.objectives.carlini_wagner import CarliniWagner
from agscm.train.objectives.cross_entropy import CrossEntropy
from agscm.train.objectives.feature_distortion import FeatureDistortion
from agscm.train.objectives.gradcam import GradcamDistance
from agscm.train.objectives.gradcam_features import GradcamWeightedFeatures
from agscm.train.objectives.noise import NoiseHinge
from agscm.train.objectives.relativistic import RelativisticCrossEntropy
from agscm.train.objectives.softmax_mse import SoftmaxSquaredError

OBJECTIVES: dict[str, type[Objective]] = {objective.name: objective for objective in (
    NoiseHinge,
    CrossEntropy,
    CarliniWagner,
    SoftmaxSquaredError,
    RelativisticCrossEntropy,
    GradcamDistance,
    FeatureDistortion,
    GradcamWeightedFeatures,
)}

# the choices of `--loss`: the objectives on the source's logits (the paper's loss_f and rce)
ADVERSARIAL_LOSSES = tuple(name for name, objective in OBJECTIVES.items()
                           if objective.log_key == "adv")


def create_objective(name: str, settings: Settings | None = None) -> Objective:
    """The objective called `name`; an unknown name is one line that lists the known ones."""
    return lookup(OBJECTIVES, name, "objective")(settings or Settings())


def parse_weighted(text: str) -> tuple[str, float]:
    """`NAME[@WEIGHT]` -> (name, weight), e.g. `feature@0.5`; the name must be registered."""
    return parse_named_value(text, OBJECTIVES, "objective", "weight", lambda weight: weight > 0,
                             "an objective's weight must be > 0")
