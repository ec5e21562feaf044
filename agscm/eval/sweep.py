"""The lambda sweep (the paper's Figure 3): one generator per lambda, scored source -> target.

Scored on the validation split by default (the training images held out from every generator),
so the lambda it picks never saw the test set.

Each lambda trains its own checkpoint `<out>/lambda-<value>.safetensors` with
`train_generator(resume=True)`, so a killed sweep continues where it stopped; with a cache
folder its crafted sets and predictions are kept too, so a rerun only reads them back. The score
is the attack success rate on the target's clean-correct images; the source's (white-box) rate
is reported beside it.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from agscm.data import load_split
from agscm.errors import AgscmError
from agscm.eval.cache import CraftCache, HashedImages, Scorer, set_key
from agscm.eval.methods import GeneratorMethod, check_fits
from agscm.eval.scoring import score
from agscm.models.registry import load_classifier
from agscm.progress import print_warning
from agscm.train.trainer import SourceSpec, TrainConfig, train_generator

DEFAULT_LAMBDAS = (0.0, 0.2, 0.4, 0.6, 0.8)


@dataclass
class SweepConfig:
    """What `agscm sweep` takes: the pair, the lambdas and the (per-lambda) training budget."""

    data: str
    source: str
    target: str
    out: str
    lambdas: list[float] = field(default_factory=lambda: list(DEFAULT_LAMBDAS))
    zoo_dir: str | None = None
    eps: float | None = None
    epochs: int = 2
    train_limit: int | None = None
    val_limit: int | None = 1000
    batch_size: int = 128
    width: int = 8
    residual_blocks: int = 4
    seed: int = 0
    split: str = "val"  # scored on the held-out training images, never the test set
    limit: int | None = None  # images scored
    eval_batch_size: int = 250
    device: str = "cpu"
    precision: str = "fp32"  # of the generators' training steps (agscm.train.precision)
    cache_dir: str | None = None  # crafted sets and predictions; None: craft and score every time

    def validate(self) -> None:
        if not self.lambdas:
            raise AgscmError("give at least one lambda")
        if any(value < 0 for value in self.lambdas):
            raise AgscmError(f"lambdas must be >= 0, got {self.lambdas}")
        if len(set(self.lambdas)) != len(self.lambdas):
            raise AgscmError(f"lambdas repeat: {self.lambdas}")
        if self.eps is not None and not 0 < self.eps <= 1:
            raise AgscmError(f"eps must be in (0, 1] for [0,1] pixels, got {self.eps}")
        if self.limit is not None and self.limit < 1:
            raise AgscmError(f"limit must be >= 1, got {self.limit}")

    def checkpoint(self, lambda_gradcam: float) -> Path:
        return Path(self.out) / f"lambda-{lambda_gradcam:g}.safetensors"

    def train_config(self, lambda_gradcam: float) -> TrainConfig:
        return TrainConfig(data=self.data, out=str(self.checkpoint(lambda_gradcam)),
                           sources=[SourceSpec(self.source)], zoo_dir=self.zoo_dir, eps=self.eps,
                           lambda_gradcam=lambda_gradcam, epochs=self.epochs,
                           batch_size=self.batch_size, seed=self.seed, width=self.width,
                           residual_blocks=self.residual_blocks, train_limit=self.train_limit,
                           val_limit=self.val_limit, device=self.device,
                           precision=self.precision)

    def command(self) -> str:
        """An `agscm sweep` line that reruns this config."""
        parts = ["agscm", "sweep", "--data", self.data, "--source", self.source, "--target",
                 self.target, "--out", self.out, "--lambdas",
                 ",".join(f"{value:g}" for value in self.lambdas)]
        defaults = SweepConfig(self.data, self.source, self.target, self.out)
        for name in ("zoo_dir", "eps", "epochs", "train_limit", "val_limit", "batch_size",
                     "width", "residual_blocks", "seed", "split", "limit", "eval_batch_size",
                     "device", "precision", "cache_dir"):
            value = getattr(self, name)
            if value != getattr(defaults, name):
                flag = {"zoo_dir": "--zoo", "cache_dir": "--cache"}.get(
                    name, "--" + name.replace("_", "-"))
                parts += [flag, str(value)]
        return " ".join(shlex.quote(part) for part in parts)


@dataclass
class SweepRow:
    lambda_gradcam: float
    checkpoint: str
    epochs: int
    success_rate: float  # on the target's clean-correct images
    target_accuracy: float
    source_success_rate: float
    source_accuracy: float
    mean_linf: float
    mean_l2: float


@dataclass
class SweepResult:
    config: SweepConfig
    source: str
    target: str
    images: int
    source_clean_accuracy: float
    target_clean_accuracy: float
    rows: list[SweepRow] = field(default_factory=list)

    def best(self, positive: bool = False) -> SweepRow | None:
        """The row with the highest target success (the smaller lambda on ties); `positive`
        considers only lambda > 0 (the Grad-CAM term switched on)."""
        rows = [r for r in self.rows if r.lambda_gradcam > 0 or not positive]
        return max(rows, key=lambda r: (r.success_rate, -r.lambda_gradcam), default=None)

    def to_json(self) -> dict[str, Any]:
        payload = asdict(self)
        return {"command": self.config.command(), **payload}


def run_sweep(config: SweepConfig, progress: bool = True,
              console: Console | None = None) -> SweepResult:
    """Train (or resume) one generator per lambda and score each on the target."""
    config.validate()
    console = console or Console(stderr=True, quiet=not progress)
    data = load_split(config.data, config.split).subset(config.limit)
    clean = data.as_float()
    hashed_clean = HashedImages.of(clean)
    zoo = Path(config.zoo_dir) if config.zoo_dir else None
    cache = CraftCache(Path(config.cache_dir) if config.cache_dir else None,
                       lambda text: print_warning(console, text))
    models = []
    for name in (config.source, config.target):
        model, meta = load_classifier(name, zoo, device=config.device)
        check_fits(data, meta)
        files = [Path(meta["path"])]
        correct = cache.predict(f"clean-on-{meta['name']}", model, files, hashed_clean,
                                config.eval_batch_size, config.device) == data.labels
        models.append((model, meta["name"], files, correct))
    (_, source_name, _, source_correct), (_, target_name, _, target_correct) = models
    result = SweepResult(config, source_name, target_name, len(data),
                         float(source_correct.mean()), float(target_correct.mean()))
    for value in config.lambdas:
        console.print(f"sweep {source_name} -> {target_name}: lambda {value:g}")
        checkpoint = train_generator(config.train_config(value), resume=True)
        method = GeneratorMethod(checkpoint.path, config.device)
        scored = cache.scored_set(
            f"sweep-{source_name}-lambda{value:g}",
            set_key(method.settings(), method.files(), hashed_clean, config.device),
            data.labels, clean, lambda store, method=method: method.craft(
                data, config.eval_batch_size, progress, store),
            [Scorer(model_name, model, files) for model, model_name, files, _ in models],
            config.eval_batch_size, config.device)
        on_source, on_target = (score(scored.predictions[model_name], data.labels, correct)
                                for _, model_name, _, correct in models)
        size = scored.record.size
        result.rows.append(SweepRow(value, str(checkpoint.path), checkpoint.meta["epoch"],
                                    on_target.success_rate, on_target.accuracy,
                                    on_source.success_rate, on_source.accuracy, size.mean_linf,
                                    size.mean_l2))
    return result
