"""Named training recipes for `agscm train --recipe NAME`; explicit flags override a recipe.

`paper` is AEG-GC as published: CE loss, the L2 hinge, the Grad-CAM term at lambda 0.5, a
small generator. `transfer` is the strongest setting we measured for black-box transfer,
chosen on the validation split (docs/RESULTS.md says how, with every candidate's numbers):
on MNIST for grey images, with changes for colour images chosen on CIFAR-10's, where the
grey recipe's blur stops the generator learning at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agscm.errors import AgscmError


@dataclass(frozen=True)
class Recipe:
    """A name, why it exists, the TrainConfig fields it sets, and its changes for colour images."""

    name: str
    reason: str
    settings: dict[str, Any]
    colour: dict[str, Any] = field(default_factory=dict)


PAPER = Recipe("paper", "AEG-GC as published (L_noise + L_adv + lambda L_gradcam, CE loss)", {
    "loss": "ce", "noise_weight": 1.0, "c": None, "lambda_gradcam": 0.5, "feature_weight": 0.0,
    "diversity": 0.0, "epochs": 5, "lr": 1e-3, "schedule": "constant", "width": 8,
    "residual_blocks": 4, "downsamplings": 2, "output_scale": 1.0, "smooth_sigma": 0.0})

TRANSFER = Recipe("transfer", "the best black-box transfer measured on the validation split: "
                  "relativistic CE inside the L-inf box, delta blurred (sigma 1 pixel); on "
                  "colour images no blur, the L2 hinge and a full-resolution generator", {
    "loss": "rce", "noise_weight": 0.0, "c": None, "lambda_gradcam": 0.0, "feature_weight": 0.0,
    "diversity": 0.0, "epochs": 2, "lr": 1e-3, "schedule": "constant", "width": 8,
    "residual_blocks": 4, "downsamplings": 2, "output_scale": 1.0, "smooth_sigma": 1.0},
    # CIFAR-10's validation split: no blur, the L2 hinge at weight 3 (at 1 the raw output grows
    # until export's parity check fails), every block at full resolution
    colour={"noise_weight": 3.0, "smooth_sigma": 0.0, "downsamplings": 0, "width": 32})

RECIPES = {recipe.name: recipe for recipe in (PAPER, TRANSFER)}


def recipe_settings(name: str, channels: int = 1, **overrides: Any) -> dict[str, Any]:
    """The recipe's settings for images of `channels` channels, with every override that is
    not None put over them, plus `recipe`."""
    if name not in RECIPES:
        raise AgscmError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    explicit = {key: value for key, value in overrides.items() if value is not None}
    colour = recipe.colour if channels > 1 else {}
    return {**recipe.settings, **colour, **explicit, "recipe": name}
