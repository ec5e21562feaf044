"""A reproduction's plan: a data set's spec under a budget, and every name, path and config
its stages use (agscm.eval.reproduce runs them; agscm.eval.reading reads the result by it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agscm.eval.datasets import DatasetSpec
from agscm.eval.methods import GENERATOR_METHOD
from agscm.eval.sweep import DEFAULT_LAMBDAS, SweepConfig
from agscm.eval.transfer import EvalConfig
from agscm.models.ensemble import ENSEMBLE_SEPARATOR, ensemble_members
from agscm.train.recipes import PAPER, recipe_settings
from agscm.train.trainer import SourceSpec, TrainConfig

FLOOR = "noise"  # random signs of the same eps: what an attack that learned nothing achieves
SWEEP_PAIR = ("adv", "secret")  # the paper's Figure 3: from the adversarially trained source


@dataclass
class Budget:
    """What a reproduction spends and where it writes; the defaults are the full run."""

    data: str | None = None  # None: the spec's path
    zoo_dir: str = "runs/zoo"
    work_dir: str | None = None  # generators and sweep; None: runs/reproduce/<name>
    cache_dir: str = "runs/cache"
    out_dir: str = "docs/reproduction"
    prefix: str | None = None  # zoo names <prefix>-<suffix>; None: the spec's
    zoo_changes: dict[str, Any] = field(default_factory=dict)  # applied to every zoo config
    zoo_test_limit: int | None = None
    epochs: int | None = None  # generator epochs of both recipes; None: each recipe's own
    generator_changes: dict[str, Any] = field(default_factory=dict)  # e.g. a smaller width
    train_limit: int | None = None  # None: all `fit` images
    batch_size: int = 128
    val_limit: int | None = 1000  # validation images per generator epoch
    lambda_gradcam: float | None = None  # None: the sweep's best lambda > 0
    sweep_lambdas: tuple[float, ...] = DEFAULT_LAMBDAS
    sweep_epochs: int = 2
    sweep_train_limit: int | None = 20_000
    sweep_limit: int | None = None  # `val` images scored per lambda; None: all
    limit: int | None = None  # test images in the table; None: all
    attack_steps: int | None = None  # override every baseline's steps (quick runs)
    eval_batch_size: int = 250
    device: str = "cpu"
    precision: str = "fp32"  # of every generator's training steps (sweep and table)
    seed: int = 0
    jobs: int = 1  # models trained at once (zoo, sweep, generators), one process each

    @classmethod
    def quick(cls, spec: DatasetSpec, work_dir: str | None = None, **changes: Any) -> Budget:
        """A tiny budget (a minute on 2 cores) that runs every stage; everything in `work_dir`."""
        work = work_dir or f"runs/reproduce/{spec.name}-quick"
        base = {"zoo_dir": f"{work}/zoo", "work_dir": work, "cache_dir": f"{work}/cache",
                "out_dir": work, "prefix": "quick",
                "zoo_changes": {"epochs": 1, "train_limit": 300, "adv_steps": 1, "width": 4,
                                "warmup_epochs": 0.0, "batch_size": 64},
                "zoo_test_limit": 100, "epochs": 1,
                "generator_changes": {"width": 4, "residual_blocks": 1},
                "train_limit": 128, "batch_size": 64, "val_limit": 64, "limit": 64,
                "attack_steps": 2, "eval_batch_size": 64, "sweep_lambdas": (0.0, 0.5),
                "sweep_epochs": 1, "sweep_train_limit": 128, "sweep_limit": 64}
        return cls(**{**base, **changes})


@dataclass
class Plan:
    """A spec under a budget: every name, path and config the stages use."""

    spec: DatasetSpec
    budget: Budget

    @property
    def data(self) -> str:
        return self.budget.data or self.spec.data

    @property
    def work(self) -> Path:
        return Path(self.budget.work_dir or f"runs/reproduce/{self.spec.name}")

    def name(self, suffix: str) -> str:
        return self.spec.name_of(suffix, self.budget.prefix)

    @property
    def ensemble(self) -> str:
        return ENSEMBLE_SEPARATOR.join(self.name(suffix) for suffix in self.spec.ensemble)

    @property
    def sources(self) -> list[str]:
        return [self.name(suffix) for suffix in self.spec.sources] + [self.ensemble]

    @property
    def targets(self) -> list[str]:
        return [self.name(entry.suffix) for entry in self.spec.zoo]

    def robust_targets(self) -> set[str]:
        return {self.name(e.suffix) for e in self.spec.zoo if self.spec.robust(e.suffix)}

    def zoo_configs(self) -> dict[str, Any]:
        return self.spec.zoo_configs(self.data, self.budget.prefix, **self.budget.zoo_changes)

    def sweep_config(self) -> SweepConfig:
        budget = self.budget
        source, target = (self.name(suffix) for suffix in SWEEP_PAIR)
        return SweepConfig(data=self.data, source=source, target=target,
                           out=str(self.work / "sweep"), lambdas=list(budget.sweep_lambdas),
                           zoo_dir=budget.zoo_dir, eps=self.spec.eps, epochs=budget.sweep_epochs,
                           train_limit=budget.sweep_train_limit, val_limit=budget.val_limit,
                           batch_size=budget.batch_size, seed=budget.seed,
                           width=budget.generator_changes.get("width", PAPER.settings["width"]),
                           residual_blocks=budget.generator_changes.get(
                               "residual_blocks", PAPER.settings["residual_blocks"]),
                           limit=budget.sweep_limit, eval_batch_size=budget.eval_batch_size,
                           device=budget.device, precision=budget.precision,
                           cache_dir=budget.cache_dir)

    def generator_configs(self, lambda_gradcam: float) -> dict[tuple[str, str], TrainConfig]:
        """(source label, recipe) -> config: the paper's recipe at `lambda_gradcam`, and the
        transfer recipe, for every source and the ensemble."""
        budget = self.budget
        configs = {}
        for label in self.sources:
            for recipe in ("paper", "transfer"):
                changes = {**budget.generator_changes,
                           **({"lambda_gradcam": lambda_gradcam} if recipe == "paper" else {}),
                           **({"epochs": budget.epochs} if budget.epochs else {})}
                settings = recipe_settings(recipe, self.spec.channels, **changes)
                tag = f"-lambda{lambda_gradcam:g}" if recipe == "paper" else ""
                out = self.work / "generators" / f"{label}-{recipe}{tag}.safetensors"
                configs[(label, recipe)] = TrainConfig(
                    data=self.data, out=str(out),
                    sources=[SourceSpec(member) for member in ensemble_members(label)],
                    zoo_dir=budget.zoo_dir, eps=self.spec.eps, batch_size=budget.batch_size,
                    seed=budget.seed, train_limit=budget.train_limit, val_limit=budget.val_limit,
                    device=budget.device, precision=budget.precision, **settings)
        return configs

    def methods(self) -> list[str]:
        steps = self.budget.attack_steps
        baselines = [_with_steps(method, steps) for method in self.spec.baselines]
        return [GENERATOR_METHOD, *dict.fromkeys(baselines), FLOOR]

    def eval_config(self, generators: dict[str, list[str]]) -> EvalConfig:
        budget = self.budget
        return EvalConfig(data=self.data, sources=self.sources, targets=self.targets,
                          methods=self.methods(), generators=generators, zoo_dir=budget.zoo_dir,
                          limit=budget.limit, eps=self.spec.eps, batch_size=budget.eval_batch_size,
                          seed=budget.seed, cache_dir=budget.cache_dir, device=budget.device)


def _with_steps(method: str, steps: int | None) -> str:
    """`pgd:steps=20` with every step count replaced by `steps` (None: unchanged); the noise
    floor and FGSM take no steps."""
    name = method.partition(":")[0]
    if steps is None or name in ("fgsm", "noise"):
        return method
    return f"{name}:steps={steps}"
