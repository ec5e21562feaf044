"""Each data set the reproduction knows, as a small spec: where it lives, its budget, its zoo.

The zoo of a spec has the paper's trio (`natural`, `adv`, `secret`: one architecture, as in the
MadryLab challenges) and targets of other architectures, natural and adversarially trained, so
that transfer is also measured to models unlike the sources. The recipes are the ones whose
numbers docs/RESULTS.md reports; `agscm zoo train` with the same flags trains the same model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from agscm.train.zoo import ZooConfig


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model of a spec: its name suffix (`<prefix>-<suffix>`) and how it is trained."""

    suffix: str
    config: ZooConfig


@dataclass(frozen=True)
class DatasetSpec:
    """A data set as the reproduction sees it."""

    name: str  # `agscm reproduce <name>`
    data: str  # default path, relative to the repository root
    prefix: str  # zoo names are <prefix>-<suffix>
    eps: float
    check_steps: int  # the zoo's robustness check: PGD with a random start at eps ...
    check_alpha: float  # ... of this many steps of this size (the challenge's own attack)
    zoo: tuple[ZooEntry, ...] = field(default_factory=tuple)

    def zoo_configs(self, data: str | None = None, prefix: str | None = None,
                    **changes: object) -> dict[str, ZooConfig]:
        """name -> config, for data at `data` (default: the spec's) with `changes` applied."""
        return {f"{prefix or self.prefix}-{entry.suffix}": replace(
            entry.config, data=data or self.data, **changes) for entry in self.zoo}


def _mnist_zoo() -> tuple[ZooEntry, ...]:
    data = "../shared/data/mnist"
    robust = {"kind": "adv", "adv_method": "pgd", "adv_steps": 7, "eps_warmup_epochs": 1,
              "epochs": 5}
    return (
        ZooEntry("natural", ZooConfig(data, kind="natural", epochs=4)),
        ZooEntry("adv", ZooConfig(data, **robust)),
        ZooEntry("secret", ZooConfig(data, **{**robust, "kind": "secret"})),
        ZooEntry("mlp-natural", ZooConfig(data, kind="natural", arch="mlp", epochs=4)),
        # without batch norm: with it, random noise of the budget alone fools natural MNIST nets
        ZooEntry("resnet-natural", ZooConfig(data, kind="natural", arch="resnet-small", width=32,
                                             batch_norm=False, epochs=4)),
        ZooEntry("vgg-natural", ZooConfig(data, kind="natural", arch="vgg-small",
                                          batch_norm=False, epochs=4)),
        ZooEntry("resnet-adv", ZooConfig(data, arch="resnet-small", width=32, seed=3, **robust)),
    )


def _cifar10_zoo() -> tuple[ZooEntry, ...]:
    data = "../shared/data/cifar10-jpeg.tar.gz"
    sgd = {"optimizer": "sgd", "batch_size": 256, "lr": 0.2, "warmup_epochs": 2.0,
           "weight_decay": 5e-4, "augment": "shift-flip"}
    natural = {**sgd, "kind": "natural", "epochs": 24}
    robust = {**sgd, "kind": "adv", "epochs": 15, "adv_method": "pgd", "adv_steps": 7,
              "eps_warmup_epochs": 1}
    return (
        ZooEntry("natural", ZooConfig(data, arch="resnet9", width=40, **natural)),
        ZooEntry("adv", ZooConfig(data, arch="resnet9", width=40, **robust)),
        ZooEntry("secret", ZooConfig(data, arch="resnet9", width=40, **{**robust, "kind": "secret"})),
        ZooEntry("vgg-natural", ZooConfig(data, arch="vgg-small", width=48, **natural)),
        ZooEntry("mobilenet-natural", ZooConfig(data, arch="mobilenet-small", width=32, **natural)),
        ZooEntry("vgg-adv", ZooConfig(data, arch="vgg-small", width=48, seed=3, **robust)),
    )


MNIST = DatasetSpec("mnist", "../shared/data/mnist", "mnist", 0.3, 40, 0.01, _mnist_zoo())
CIFAR10 = DatasetSpec("cifar10", "../shared/data/cifar10-jpeg.tar.gz", "cifar10", 8 / 255, 20,
                      2 / 255, _cifar10_zoo())
SPECS = {spec.name: spec for spec in (MNIST, CIFAR10)}
