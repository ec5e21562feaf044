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


# The paper's tables (on MadryLab's checkpoints): target accuracy on adversarial test
# images, per source kind -> method -> (natural, adv, secret). Shown in brackets beside ours.
Paper = dict[str, dict[str, tuple[float, float, float]]]
PAPER_COLUMNS = ("natural", "adv", "secret")


@dataclass(frozen=True)
class DatasetSpec:
    """A data set as the reproduction sees it."""

    name: str  # `agscm reproduce <name>`
    data: str  # default path, relative to the repository root
    prefix: str  # zoo names are <prefix>-<suffix>
    channels: int  # of its images: colour ones get the recipes' colour settings
    eps: float
    check_steps: int  # the zoo's robustness check: PGD with a random start at eps ...
    check_alpha: float  # ... of this many steps of this size (the challenge's own attack)
    zoo: tuple[ZooEntry, ...] = field(default_factory=tuple)
    sources: tuple[str, ...] = ("natural", "adv")  # zoo suffixes the table attacks from
    ensemble: tuple[str, ...] = ("natural", "adv")  # one more source: these together
    baselines: tuple[str, ...] = ("pgd", "mifgsm", "ata", "fgsm")  # methods, with options
    floor_margin: float = 0.03  # the transfer recipe should beat noise by this much ...
    floor_cells: str = "robust"  # ... in the black-box cells of robust targets, or "all"
    paper: Paper = field(default_factory=dict)

    def name_of(self, suffix: str, prefix: str | None = None) -> str:
        return f"{prefix or self.prefix}-{suffix}"

    def robust(self, suffix: str) -> bool:
        """Whether the zoo model `<prefix>-<suffix>` is adversarially trained."""
        return next(e.config.kind != "natural" for e in self.zoo if e.suffix == suffix)

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
        # with noise augmentation: without it, random noise of the budget alone fools these two
        # (global average pooling sums the noise of the black background; measured: 9.6%)
        ZooEntry("resnet-natural", ZooConfig(data, kind="natural", arch="resnet-small", width=32,
                                             augment="noise", epochs=4)),
        ZooEntry("vgg-natural", ZooConfig(data, kind="natural", arch="vgg-small", augment="noise",
                                          epochs=4)),
        ZooEntry("resnet-adv", ZooConfig(data, arch="resnet-small", width=32, seed=3, **robust)),
    )


def _cifar10_zoo() -> tuple[ZooEntry, ...]:
    data = "../shared/data/cifar10-jpeg.tar.gz"
    sgd = {"optimizer": "sgd", "batch_size": 256, "lr": 0.2, "warmup_epochs": 2.0,
           "weight_decay": 5e-4, "augment": "shift-flip"}
    natural = {**sgd, "kind": "natural", "epochs": 24}
    # PGD-2 (step 1.25*eps, random start), not Madry's PGD-7: a 15-epoch run then fits one
    # session on two CPU cores (339 against 795 s an epoch in bf16, docs/RESULTS.md §2)
    robust = {**sgd, "kind": "adv", "epochs": 15, "adv_method": "pgd", "adv_steps": 2,
              "eps_warmup_epochs": 1}
    return (
        ZooEntry("natural", ZooConfig(data, arch="resnet9", width=40, **natural)),
        ZooEntry("adv", ZooConfig(data, arch="resnet9", width=40, **robust)),
        ZooEntry("secret", ZooConfig(data, arch="resnet9", width=40, **{**robust, "kind": "secret"})),
        ZooEntry("vgg-natural", ZooConfig(data, arch="vgg-small", width=48, **natural)),
        ZooEntry("mobilenet-natural", ZooConfig(data, arch="mobilenet-small", width=32, **natural)),
        ZooEntry("vgg-adv", ZooConfig(data, arch="vgg-small", width=48, seed=3, **robust)),
    )


PAPER_MNIST: Paper = {
    "natural": {"AEG-GC": (0.15, 0.9430, 0.9399), "ATA": (0.07, 0.9587, 0.9560),
                "PGD": (0.0, 0.9671, 0.9695)},
    "adv": {"AEG-GC": (0.8226, 0.9045, 0.9306), "ATA": (0.8400, 0.9001, 0.9699),
            "PGD": (0.8542, 0.9380, 0.9781)},
    "secret": {"AEG-GC": (0.8265, 0.9312, 0.8912), "ATA": (0.8544, 0.9604, 0.9024),
               "PGD": (0.9318, 0.9569, 0.9432)},
}
PAPER_CIFAR10: Paper = {
    "natural": {"AEG-GC": (0.18, 0.6533, 0.6433), "ATA": (0.0, 0.6870, 0.6680),
                "PGD": (0.0, 0.8613, 0.8595)},
    "adv": {"AEG-GC": (0.5330, 0.4480, 0.6188), "ATA": (0.6100, 0.4573, 0.6320),
            "PGD": (0.7860, 0.4727, 0.6341)},
    "secret": {"AEG-GC": (0.5229, 0.5993, 0.4454), "ATA": (0.6031, 0.6211, 0.4608),
               "PGD": (0.7900, 0.6350, 0.4791)},
}

MNIST = DatasetSpec("mnist", "../shared/data/mnist", "mnist", 1, 0.3, 40, 0.01, _mnist_zoo(),
                    sources=("natural", "adv"), ensemble=("natural", "adv"),
                    baselines=("pgd", "mifgsm", "ata", "fgsm"), floor_margin=0.03,
                    paper=PAPER_MNIST)
CIFAR10 = DatasetSpec("cifar10", "../shared/data/cifar10-jpeg.tar.gz", "cifar10", 3, 8 / 255, 20,
                      2 / 255, _cifar10_zoo(), sources=("natural", "adv", "secret"),
                      ensemble=("natural", "adv"),
                      baselines=("pgd:steps=10", "pgd:steps=20", "mifgsm", "ata", "fgsm"),
                      floor_margin=0.05, floor_cells="all", paper=PAPER_CIFAR10)
SPECS = {spec.name: spec for spec in (MNIST, CIFAR10)}
