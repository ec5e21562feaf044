"""What an objective is: a loss term to minimise that declares what it needs from each source.

The trainer reads every objective's `needs`, runs each source once per batch computing only
what some objective asked for (clean logits, Grad-CAM maps, a mid-layer's features), and
hands each objective the same `SourcePass`. So a new objective is one file with one class,
plus its line in agscm.train.objectives.registry.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import torch


@dataclass(frozen=True)
class Needs:
    """What the trainer must compute for an objective. An objective that reads no logits (only
    features) lets the trainer truncate the source after the feature layer."""

    logits: bool = True  # the source's logits on the adversarial images
    clean_logits: bool = False  # the source's logits on the clean images (no gradient)
    gradcam: bool = False  # Grad-CAM maps of clean and adversarial images (differentiable)
    features: bool = False  # the feature layer's activations on clean and adversarial images
    channel_weights: bool = False  # the clean image's Grad-CAM weights at the feature layer

    def __or__(self, other: Needs) -> Needs:
        return Needs(**{f.name: getattr(self, f.name) or getattr(other, f.name)
                        for f in fields(self)})

    @classmethod
    def nothing(cls) -> Needs:
        """The needs of no objective at all (the start of a union)."""
        return cls(**{f.name: False for f in fields(cls)})


@dataclass(frozen=True)
class Settings:
    """The training settings objectives read (from TrainConfig, resolved)."""

    kappa: float = 0.0  # Carlini-Wagner margin
    cam_normalize: bool = True  # divide Grad-CAM maps by the clean map's peak
    noise_bound: float = 0.0  # c: the L2 norm of delta the hinge L_noise leaves free


@dataclass
class SourcePass:
    """One source's view of one batch: what every objective of the run needed, computed once.

    `goal` is the true label (untargeted) or the target class (targeted); fields no objective
    asked for are None (the logits too, when the source was truncated at the feature layer)."""

    logits: torch.Tensor | None
    goal: torch.Tensor
    targeted: bool
    clean_logits: torch.Tensor | None = None
    clean_maps: torch.Tensor | None = None
    adversarial_maps: torch.Tensor | None = None
    clean_features: torch.Tensor | None = None
    adversarial_features: torch.Tensor | None = None
    channel_weights: torch.Tensor | None = None  # (N, C), unit vectors


class Objective:
    """A loss term to minimise. Per-source objectives (the default) implement `term` and are
    summed over the sources with each source's weight; objectives of the perturbation alone
    (`per_source = False`) implement `perturbation_term`, computed once per batch."""

    name: ClassVar[str]
    log_key: ClassVar[str]  # the column of the training log it is added to
    needs: ClassVar[Needs] = Needs()
    per_source: ClassVar[bool] = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def term(self, view: SourcePass) -> torch.Tensor:
        raise NotImplementedError(f"objective {self.name!r} is not computed per source")

    def perturbation_term(self, delta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"objective {self.name!r} is computed per source")
