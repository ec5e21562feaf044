"""`agscm demo`: the whole story on one data set in a few minutes, every stage resumable.

Stages: (1) a small zoo in <out>/zoo: the natural CNN the attacks craft against, a natural MLP
(another architecture, a transfer target) and an adversarially trained CNN; (2) an AEG-GC
generator against the natural CNN; (3) its ONNX export, verified against PyTorch; (4) held-out
test images as a PNG folder; (5) that folder perturbed by `agscm perturb` in a subprocess (the
torch-free runtime); (6) the transfer table, AEG-GC (run from the ONNX file) vs PGD and ATA,
with random noise of the same eps as the floor, each method's crafting speed, and the reading
of where the generator wins and loses; (7) demo.png, on a seeded random sample. Every accuracy
the demo reports is measured on one set: the first `test_images` test images.
`<out>/demo.json` records the settings: a rerun with the same ones reuses every finished stage
(checkpoints resume, crafted sets come from <out>/cache, outputs that exist are skipped); a run
with other settings first removes what the earlier demo wrote.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from agscm import __version__
from agscm.attacks.noise import RandomNoise
from agscm.data import load_split
from agscm.data.registry import data_identity, dataset_tag
from agscm.demo.figure import draw, explain, sample_title, success
from agscm.demo.folders import Sample, read_outputs, read_pixels, run_perturb, write_samples
from agscm.demo.reading import Column, demo_reading
from agscm.errors import AgscmError
from agscm.eval.methods import GENERATOR_METHOD
from agscm.eval.report import write_json, write_transfer
from agscm.eval.transfer import EvalConfig, TransferResult, evaluate
from agscm.export.pipeline import export_checkpoint
from agscm.formatting import percent
from agscm.models.registry import SUFFIX, list_models, load_classifier
from agscm.progress import Stages
from agscm.train.recipes import recipe_settings
from agscm.train.trainer import SourceSpec, TrainConfig, log_path, train_generator
from agscm.train.zoo import ZooConfig, train_classifier

RECIPE = "transfer"  # the generator the demo trains (agscm.train.recipes)
FLOOR = RandomNoise.name  # every pixel +-eps at random: what an attack that learned nothing does
METHODS = (GENERATOR_METHOD, "pgd", "ata", FLOOR)


@dataclass
class DemoBudget:
    """What the demo spends; the limits count images, so any data set costs about the same.

    On mnist-sample, on 2 CPU cores shared with a zoo training and other jobs (load average 4
    to 9), the default took 1,236 s wall and `quick()` 213 and 249 s (two runs); the MLP
    target trained in 0.7 to 1.5 s an epoch of that.
    """

    test_images: int = 1000  # the one evaluation set: zoo, generator and table accuracies
    zoo_train_limit: int | None = 4000
    zoo_batch_size: int = 64
    natural_epochs: int = 3
    mlp_epochs: int = 3  # the natural MLP, a target of another architecture (seconds an epoch)
    adv_epochs: int = 5
    adv_warmup_epochs: int = 2
    adv_steps: int = 3  # PGD steps of the adversarial training (7 in the zoo; 3 keeps it quick)
    generator_train_limit: int | None = 4000
    generator_epochs: int = 4  # the transfer recipe's generator, as the recipe sets it
    generator_batch_size: int = 64
    generator_lr: float = 1e-3
    samples: int = 100  # test images written as PNG and perturbed
    figure_rows: int = 6
    figure_seed: int = 0  # which random sample of the perturbed images demo.png shows

    @classmethod
    def quick(cls) -> DemoBudget:
        """About a fifth of the default's time (above); the natural model still tops 90% clean
        accuracy and the generator still fools it on most images."""
        return cls(test_images=200, zoo_train_limit=2000, zoo_batch_size=32, natural_epochs=2,
                   mlp_epochs=2, adv_epochs=2, adv_warmup_epochs=1, generator_train_limit=2000,
                   generator_epochs=3, generator_batch_size=32)


@dataclass(frozen=True)
class DemoPaths:
    """Where each stage writes, under one folder."""

    out: Path

    @property
    def zoo(self) -> Path:
        return self.out / "zoo"

    @property
    def checkpoint(self) -> Path:
        return self.out / "generator.safetensors"

    @property
    def onnx(self) -> Path:
        return self.out / "generator.onnx"

    @property
    def samples(self) -> Path:
        return self.out / "samples"

    @property
    def perturbed(self) -> Path:
        return self.out / "perturbed"

    @property
    def cache(self) -> Path:
        return self.out / "cache"

    @property
    def figure(self) -> Path:
        return self.out / "demo.png"

    @property
    def stamp(self) -> Path:
        return self.out / "demo.json"

    def table(self, suffix: str) -> Path:
        return self.out / f"table.{suffix}"

    def written(self) -> list[Path]:
        """Everything a demo writes (what a run with other settings removes first)."""
        return [self.zoo, self.checkpoint, log_path(self.checkpoint), self.onnx, self.samples,
                self.perturbed, self.cache, self.figure, *map(self.table, ("md", "csv", "json")),
                self.stamp]


@dataclass(frozen=True)
class ImageKind:
    """The images of a data set: name, channels and (height, width)."""

    dataset: str
    channels: int
    size: tuple[int, int]

    @property
    def colour(self) -> str:
        return "grey" if self.channels == 1 else "colour"

    def __str__(self) -> str:
        return f"{self.colour} {self.size[0]}x{self.size[1]} {self.dataset} images"


@dataclass(frozen=True)
class DemoZoo:
    """The demo's classifiers: the source every attack crafts against, and two targets."""

    natural: str
    mlp: str
    adv: str

    def columns(self) -> list[tuple[str, str]]:
        """(model, what it is to the attacks), in the table's column order."""
        return [(self.natural, "white-box"), (self.mlp, "another architecture"),
                (self.adv, "adversarially trained")]


@dataclass
class DemoResult:
    paths: DemoPaths
    zoo: DemoZoo
    transfer: TransferResult
    reading: list[str]  # where the generator wins and loses, generated from the numbers
    images: ImageKind  # what the generator learned on, so what `agscm perturb` should get
    perturbed: int
    max_linf: float
    seconds: dict[str, float] = field(default_factory=dict)


def settings(data: str, budget: DemoBudget) -> dict[str, Any]:
    """What the outputs depend on, as stored in demo.json (JSON round-tripped for comparison)."""
    return json.loads(json.dumps({"agscm_version": __version__, "data": data_identity(data),
                                  "budget": asdict(budget)}))


def prepare(paths: DemoPaths, wanted: dict[str, Any], console: Console) -> None:
    """Keep a demo folder made with `wanted`, clear one made otherwise, refuse a foreign one."""
    if paths.stamp.is_file():
        try:
            saved = json.loads(paths.stamp.read_text(encoding="utf-8")).get("settings")
        except (OSError, ValueError, AttributeError):
            saved = None
        if saved == wanted:
            console.print(f"{paths.out}: reusing the stages a demo with these settings finished")
            return
        console.print(f"{paths.out}: made with other settings; removing its outputs and "
                      "starting over")
        for path in paths.written():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    else:
        foreign = [p.name for p in paths.written() if p.exists()]
        if foreign:
            raise AgscmError(f"{paths.out} holds {', '.join(foreign)} but no demo.json, so agscm "
                             "demo did not write it; choose another --out")
    write_json(paths.stamp, {"settings": wanted})


def run_demo(data: str, out: Path, budget: DemoBudget, device: str = "cpu",
             console: Console | None = None) -> DemoResult:
    """Run (or resume) every stage on data set `data` into `out`; returns what the summary
    shows. The stages take the first N images of each split (every loader gives a
    class-mixed order, so these are fair samples)."""
    console = console or Console(stderr=True)
    paths = DemoPaths(out)
    test = load_split(data, "test")  # a bad --data fails here, before anything is written
    if paths.out.exists() and not paths.out.is_dir():
        raise AgscmError(f"{paths.out}: exists and is not a folder; choose another --out")
    paths.out.mkdir(parents=True, exist_ok=True)
    prepare(paths, settings(data, budget), console)
    stages = Stages(console, STAGE_TITLES)
    with stages.stage("zoo"):
        zoo = _train_zoo(data, paths, budget, device)
        accuracy = {row["name"]: row["test_acc"] for row in list_models(paths.zoo)}
        console.print(", ".join(f"{name}: clean accuracy {percent(accuracy[name])}"
                                for name, _ in zoo.columns())
                      + f" (the first {budget.test_images} test images)")
    with stages.stage("generator"):
        _train_generator(data, paths, budget, zoo.natural, device, console)
    with stages.stage("export"):
        _export(data, paths, console)
    with stages.stage("samples"):
        samples = write_samples(test, paths.samples, budget.samples)
        console.print(f"{len(samples)} held-out test images in {paths.samples}/<class>/")
    with stages.stage("perturb"):
        console.print(f"ran `{run_perturb(paths.samples, paths.perturbed, paths.onnx)}`")
        clean, adversarial = _read_pairs(samples, paths, test.channels)
        max_linf = float(np.abs(adversarial.astype(np.int16) - clean).max()) / 255
        console.print(f"{len(samples)} perturbed images in {paths.perturbed}; max L-inf of the "
                      f"saved 8-bit files {max_linf:.4f} ({max_linf * 255:.0f}/255)")
    with stages.stage("table"):
        transfer = evaluate(EvalConfig(
            data=data, sources=[zoo.natural], targets=[name for name, _ in zoo.columns()],
            methods=list(METHODS), generators={zoo.natural: [str(paths.onnx)]},
            zoo_dir=str(paths.zoo), limit=budget.test_images, cache_dir=str(paths.cache),
            device=device), console=console)
        write_transfer(transfer, paths.out, stem="table")
        speed = images_per_second(transfer)
        reading = demo_reading(generator_row(transfer), _columns(transfer, zoo),
                               {m: value for m, value in speed.items() if m != FLOOR})
    with stages.stage("figure"):
        figure = _figure(paths, zoo.natural, samples, clean, adversarial, test.classes,
                         transfer.eps, budget)
    write_json(paths.stamp, {"settings": settings(data, budget), "seconds": stages.seconds,
                             "reading": reading, "images_per_second": speed, "figure": figure})
    images = ImageKind(dataset_tag(data), test.channels, (test.size[0], test.size[1]))
    return DemoResult(paths, zoo, transfer, reading, images, len(samples), max_linf,
                      stages.seconds)


def generator_row(transfer: TransferResult) -> str:
    """The generator's row label as the table wrote it (it follows the recipe the file names)."""
    return next(m for m in transfer.methods if m.startswith(GENERATOR_METHOD))


def images_per_second(transfer: TransferResult) -> dict[str, float]:
    """Each row's crafting speed (images / wall seconds of crafting the evaluation set, on the
    demo's device), as the table measured it when the set was crafted (cached sets keep it)."""
    return {crafted.method: crafted.images_per_second for crafted in transfer.sets}


def _columns(transfer: TransferResult, zoo: DemoZoo) -> list[Column]:
    """Every target's accuracies under the attacks, with its noise floor apart."""
    columns = []
    for target, role in zoo.columns():
        cells = {m: transfer.cell(zoo.natural, m, target) for m in transfer.methods}
        accuracy = {m: cell.accuracy for m, cell in cells.items() if cell is not None}
        assert len(accuracy) == len(cells), "the demo's table has every cell"
        floor = accuracy.pop(FLOOR)
        columns.append(Column(target, role, accuracy, floor))
    return columns


STAGE_TITLES = {"zoo": "zoo: a natural CNN, a natural MLP and an adversarially trained CNN",
                "generator": "AEG-GC generator against the natural model",
                "export": "ONNX export, verified against PyTorch",
                "samples": "held-out test images as PNG files",
                "perturb": "perturb the folder with the torch-free runtime (agscm perturb)",
                "table": "transfer table: AEG-GC vs PGD vs ATA, the noise floor, crafting speed",
                "figure": "figure: clean / adversarial / perturbation / Grad-CAM, random sample"}


def _train_zoo(data: str, paths: DemoPaths, budget: DemoBudget, device: str) -> DemoZoo:
    tag = dataset_tag(data)
    zoo = DemoZoo(f"{tag}-natural", f"{tag}-mlp", f"{tag}-adv")
    for name, kind, arch, epochs in ((zoo.natural, "natural", None, budget.natural_epochs),
                                     (zoo.mlp, "natural", "mlp", budget.mlp_epochs),
                                     (zoo.adv, "adv", None, budget.adv_epochs)):
        config = ZooConfig(data=data, kind=kind, arch=arch, epochs=epochs,
                           batch_size=budget.zoo_batch_size,
                           eps_warmup_epochs=budget.adv_warmup_epochs, adv_steps=budget.adv_steps,
                           train_limit=budget.zoo_train_limit)
        train_classifier(config, paths.zoo / f"{name}{SUFFIX}", device=device,
                         test_limit=budget.test_images)
    return zoo


def _train_generator(data: str, paths: DemoPaths, budget: DemoBudget, natural: str,
                     device: str, console: Console) -> None:
    settings = recipe_settings(RECIPE, epochs=budget.generator_epochs, lr=budget.generator_lr)
    config = TrainConfig(data=data, out=str(paths.checkpoint), sources=[SourceSpec(natural)],
                         zoo_dir=str(paths.zoo), batch_size=budget.generator_batch_size,
                         train_limit=budget.generator_train_limit, val_limit=budget.test_images,
                         device=device, **settings)
    last = train_generator(config, resume=True).meta["history"][-1]
    console.print(f"{paths.checkpoint}: {natural} accuracy on its images "
                  f"{percent(last[f'val_acc[{natural}]'])} (the first {budget.test_images} "
                  "validation images, held out from its training images)")


def _export(data: str, paths: DemoPaths, console: Console) -> None:
    """Export unless a file newer than the checkpoint exists (it passed its checks when written)."""
    if paths.onnx.is_file() and paths.onnx.stat().st_mtime >= paths.checkpoint.stat().st_mtime:
        console.print(f"{paths.onnx}: up to date (verified when it was written)")
        return
    shutil.rmtree(paths.perturbed, ignore_errors=True)  # made by an older file, if any
    report = export_checkpoint(paths.checkpoint, paths.onnx, data=data, zoo_dir=paths.zoo)
    worst = max(check.max_diff for check in report.parity)
    console.print(f"{paths.onnx}: {paths.onnx.stat().st_size / 1e6:.2f} MB; onnxruntime vs "
                  f"PyTorch max |diff| {worst:.1e} on {len(report.parity)} real test batches")


def _read_pairs(samples: list[Sample], paths: DemoPaths,
                channels: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, C, H, W) clean and adversarial images, read back from the two folders."""
    outputs = read_outputs(paths.perturbed / "manifest.jsonl")
    missing = [s.path for s in samples if s.path.resolve() not in outputs]
    if missing:
        raise AgscmError(f"agscm perturb wrote no output for {len(missing)} of {len(samples)} "
                         f"images (first: {missing[0]}); see {paths.perturbed}/manifest.jsonl")
    clean = np.stack([read_pixels(s.path, channels) for s in samples])
    adversarial = np.stack([read_pixels(outputs[s.path.resolve()], channels) for s in samples])
    return clean, adversarial


def _figure(paths: DemoPaths, natural: str, samples: list[Sample], clean: np.ndarray,
            adversarial: np.ndarray, classes: list[str], eps: float,
            budget: DemoBudget) -> dict[str, Any]:
    """demo.png on a random sample (`figure_seed`) of the perturbed images, not a chosen one;
    returns what it shows, for demo.json."""
    rng = np.random.default_rng(budget.figure_seed)
    chosen = sorted(rng.choice(len(samples), min(budget.figure_rows, len(samples)),
                               replace=False).tolist())
    model, _ = load_classifier(natural, paths.zoo)
    labels = np.array([samples[i].label for i in chosen])
    examples = explain(model, clean[chosen].astype(np.float32) / 255,
                       adversarial[chosen].astype(np.float32) / 255, labels)
    title = sample_title(examples, natural, eps, budget.figure_seed, len(samples))
    draw(examples, classes, eps, title, paths.figure)
    fooled, correct = success(examples)
    return {"seed": budget.figure_seed, "test_indices": [samples[i].index for i in chosen],
            "outcomes": [example.outcome for example in examples], "fooled": fooled,
            "correct": correct, "title": title}
