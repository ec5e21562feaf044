"""Named training recipes for `agscm train --recipe NAME`; explicit flags override a recipe.

`paper` is AEG-GC as published: CE loss, the L2 hinge, the Grad-CAM term at lambda 0.5, a
small generator. `transfer` is the strongest setting we measured for black-box transfer,
chosen on the validation split (docs/RESULTS.md says how, with every candidate's numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agscm.errors import AgscmError


@dataclass(frozen=True)
class Recipe:
    """A name, why it exists, and the TrainConfig fields it sets."""

    name: str
    reason: str
    settings: dict[str, Any]


PAPER = Recipe("paper", "AEG-GC as published (L_noise + L_adv + lambda L_gradcam, CE loss)", {
    "loss": "ce", "noise_weight": 1.0, "c": None, "lambda_gradcam": 0.5, "feature_weight": 0.0,
    "diversity": 0.0, "epochs": 5, "lr": 1e-3, "schedule": "constant", "width": 8,
    "residual_blocks": 4, "output_scale": 1.0, "smooth_sigma": 0.0})

TRANSFER = Recipe("transfer", "the best black-box transfer measured on the validation split: "
                  "relativistic CE inside the L-inf box, delta blurred (sigma 1 pixel)", {
    "loss": "rce", "noise_weight": 0.0, "c": None, "lambda_gradcam": 0.0, "feature_weight": 0.0,
    "diversity": 0.0, "epochs": 2, "lr": 1e-3, "schedule": "constant", "width": 8,
    "residual_blocks": 4, "output_scale": 1.0, "smooth_sigma": 1.0})

RECIPES = {recipe.name: recipe for recipe in (PAPER, TRANSFER)}


def recipe_settings(name: str, **overrides: Any) -> dict[str, Any]:
    """The recipe's settings with every override that is not None put over them, plus `recipe`."""
    if name not in RECIPES:
        raise AgscmError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    explicit = {key: value for key, value in overrides.items() if value is not None}
    return {**RECIPES[name].settings, **explicit, "recipe": name}
