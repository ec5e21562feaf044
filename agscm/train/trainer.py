"""`train_generator(config)`: the AEG-GC training loop against one or more source classifiers.

Each epoch: minimise mu L_noise + sum_s w_s (L_adv,s + lambda L_gradcam,s + beta L_feat,s)
+ any further objectives over the `fit` split (the training images without the validation
ones), then validate on the `val` split (source accuracy on x', L-inf/L2 of delta, Grad-CAM
distance, the share of images sent to the most common wrong class). mu = 1 and beta = 0 is
the paper; every term is an objective of agscm.train.objectives, and input views
(agscm.train.views) may change each batch before the sources see it. The checkpoint
(weights, Adam state, history) and a JSON log are rewritten atomically after every epoch;
`resume=True` continues from the last finished epoch and gives the same weights as an
uninterrupted run (seeded per epoch).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from agscm import __version__
from agscm.atomic import write_json
from agscm.data import ImageSet
from agscm.data.budget import default_eps
from agscm.data.registry import dataset_tag, load_fit_and_val
from agscm.digest import file_digest
from agscm.errors import AgscmError
from agscm.locks import exclusive
from agscm.models.batches import batch_count, iterate_batches, iterate_indexed_batches
from agscm.models.checkpoint import (
    optimizer_from_tensors,
    optimizer_to_tensors,
    require_same_config,
)
from agscm.models.features import capture_features, forward_to
from agscm.models.generator import OUTPUTS, Generator, GeneratorConfig
from agscm.models.generator_checkpoint import load_generator, save_generator
from agscm.models.gradcam import GradCAM, channel_weights, gradcam_distance, resolve_layer
from agscm.models.registry import load_classifier
from agscm.models.skip_gradient import check_gamma, skip_gradient
from agscm.progress import format_metrics, make_progress
from agscm.train.objectives import (
    ADVERSARIAL_LOSSES,
    Needs,
    Objective,
    Settings,
    SourcePass,
    create_objective,
    parse_weighted,
)
from agscm.train.precision import autocast, for_precision, resolve_precision
from agscm.train.views import View, create_view, parse_view


@dataclass
class SourceSpec:
    """One source classifier: a zoo name or checkpoint path, its Grad-CAM layer and weight."""

    model: str
    layer: str | None = None
    weight: float = 1.0


SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    """Everything `agscm train` takes; saved in the checkpoint and the ONNX metadata."""

    data: str
    out: str
    sources: list[SourceSpec] = field(default_factory=lambda: [SourceSpec("mnist-natural")])
    zoo_dir: str | None = None
    eps: float | None = None  # None: 0.3 for grey data, 8/255 for colour
    norm: str = "linf"
    c: float | None = None  # hinge bound on ||delta||_2; None: 0.75 * eps * sqrt(C*H*W)
    noise_weight: float = 1.0  # mu: weight of the hinge L_noise (0: the L-inf box alone)
    loss: str = "ce"  # L_adv: ce, cw, mse (the paper's loss_f) or rce (relativistic CE)
    kappa: float = 0.0
    lambda_gradcam: float = 0.5
    feature_weight: float = 0.0  # beta: weight of the mid-layer feature distortion term
    feature_layer: str | None = None  # its layer in every source; None: the Grad-CAM layer
    objectives: list[str] = field(default_factory=list)  # more terms, NAME@WEIGHT (registry)
    diversity: float = 0.0  # probability that a batch is resized and padded (input diversity)
    views: list[str] = field(default_factory=list)  # more input views, NAME@STRENGTH (registry)
    first_order: bool = False
    adv_weight: float = 1.0  # weight of L_adv (0: the feature objectives alone)
    cam_weight_copies: int = 1  # masked copies the Grad-CAM channel weights are averaged over
    cam_weight_keep: float = 1.0  # the share of pixels each copy keeps (1: no masking)
    beta1: float = 0.9  # Adam's beta1 (the generator papers use 0.5)
    skip_gradient: float = 1.0  # SGM: gradient through the sources' residual branches x this
    cam_normalize: bool = True  # divide maps by the clean map's peak (scale-free lambda)
    target_class: int | None = None  # None: untargeted (true label)
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    schedule: str = "constant"  # learning rate: constant, or cosine decay to 1% at the end
    width: int = 8
    residual_blocks: int = 4
    downsamplings: int = 2  # the generator's stride-2 stages (0: all at full resolution)
    output_scale: float = 1.0  # delta = eps * tanh(output_scale * raw)
    output: str = "tanh"  # tanh, or clip: the raw output projected onto the eps-box
    smooth_sigma: float = 0.0  # Gaussian blur of delta (pixels), part of the generator
    recipe: str = "paper"  # the recipe these settings started from (agscm.train.recipes)
    train_limit: int | None = None
    val_limit: int | None = 1000
    monitors: list[str] = field(default_factory=list)  # models scored on val, never trained on
    device: str = "cpu"
    precision: str = "fp32"  # or bf16 (agscm.train.precision), on every device alike

    def validate(self) -> None:
        if self.eps is not None and not self.eps > 0:
            raise AgscmError(f"eps must be > 0, got {self.eps}")
        if self.lambda_gradcam < 0:
            raise AgscmError(f"lambda must be >= 0, got {self.lambda_gradcam}")
        if self.loss not in ADVERSARIAL_LOSSES:
            raise AgscmError(f"unknown loss {self.loss!r}; choose one of "
                             f"{', '.join(ADVERSARIAL_LOSSES)}")
        for text in self.objectives:
            parse_weighted(text)
        for text in self.views:
            parse_view(text)
        if self.c is not None and self.c < 0:
            raise AgscmError(f"the hinge bound c must be >= 0, got {self.c}")
        if self.noise_weight < 0 or self.feature_weight < 0:
            raise AgscmError("the noise and feature weights must be >= 0")
        if not 0 <= self.diversity <= 1:
            raise AgscmError(f"diversity is a probability in [0, 1], got {self.diversity}")
        if self.schedule not in SCHEDULES:
            raise AgscmError(f"unknown schedule {self.schedule!r}; choose one of "
                             f"{', '.join(SCHEDULES)}")
        if not self.sources:
            raise AgscmError("give at least one source model")
        watched = set(self.monitors) & {s.model for s in self.sources}
        if watched:
            raise AgscmError(f"{', '.join(sorted(watched))}: a source already; its validation "
                             "accuracy is reported without --monitor")
        if any(s.weight <= 0 for s in self.sources):
            raise AgscmError("source weights must be > 0")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise AgscmError("epochs and batch size must be >= 1 and lr > 0")
        for what, limit in (("train", self.train_limit), ("validation", self.val_limit)):
            if limit is not None and limit < 1:
                raise AgscmError(f"{what} limit must be >= 1, got {limit}")
        if self.adv_weight < 0 or not 0 <= self.beta1 < 1:
            raise AgscmError(f"the adversarial weight must be >= 0 and beta1 in [0, 1), got "
                             f"{self.adv_weight} and {self.beta1}")
        check_gamma(self.skip_gradient)
        if self.cam_weight_copies < 1 or not 0 < self.cam_weight_keep <= 1:
            raise AgscmError("the Grad-CAM weights need >= 1 copies and a kept share in (0, 1], "
                             f"got {self.cam_weight_copies} and {self.cam_weight_keep}")
        resolve_precision(self.precision, self.device)  # an unknown name: one line
        if self.output not in OUTPUTS:
            raise AgscmError(f"unknown generator output {self.output!r}; choose one of "
                             f"{', '.join(OUTPUTS)}")

    def view_strengths(self) -> list[tuple[str, float]]:
        """The input views as (name, strength): input diversity at `diversity`, then `views`."""
        named = [("diversity", self.diversity), *map(parse_view, self.views)]
        return [(name, strength) for name, strength in named if strength > 0]

    def weighted_objectives(self) -> list[tuple[str, float]]:
        """The loss as (objective name, weight) pairs: mu L_noise + a L_adv + lambda L_gradcam
        + beta L_feat, then `objectives`; terms of weight 0 are left out."""
        named = [("noise", self.noise_weight), (self.loss, self.adv_weight),
                 ("gradcam", self.lambda_gradcam),
                 ("feature", self.feature_weight), *map(parse_weighted, self.objectives)]
        return [(name, weight) for name, weight in named if weight > 0]


@dataclass
class GeneratorCheckpoint:
    """What training returns: the saved file, its metadata and the trained generator."""

    path: Path
    meta: dict[str, Any]
    generator: Generator


@dataclass
class LoadedSource:
    """A source classifier ready for the loss: frozen model, its Grad-CAM, its weight."""

    name: str
    model: nn.Module
    cam: GradCAM
    weight: float
    digest: str  # sha256 of the checkpoint, so a resumed generator keeps the same sources


def load_fitting(name: str, role: str, config: TrainConfig,
                 data: ImageSet) -> tuple[nn.Module, dict[str, Any]]:
    """Zoo model `name`, refused in one line (naming its `role`) unless it takes `data`'s
    images and classes."""
    zoo = Path(config.zoo_dir) if config.zoo_dir else None
    model, meta = load_classifier(name, zoo, device=config.device)
    model_channels = meta["model"]["channels"]
    if model_channels != data.channels:
        raise AgscmError(f"{role} {name!r} takes {model_channels}-channel images but "
                         f"{config.data} has {data.channels}")
    if meta["model"]["classes"] != len(data.classes):
        raise AgscmError(f"{role} {name!r} tells {meta['model']['classes']} classes "
                         f"apart but {config.data} has {len(data.classes)} "
                         f"({', '.join(data.classes[:5])}{', ...' if len(data.classes) > 5 else ''})")
    if tuple(meta["model"]["image_size"]) != data.size:
        raise AgscmError(f"{role} {name!r} takes {meta['model']['image_size'][0]}x"
                         f"{meta['model']['image_size'][1]} images but {config.data} has "
                         f"{data.size[0]}x{data.size[1]}")
    return model, meta


def load_monitors(config: TrainConfig, data: ImageSet) -> dict[str, nn.Module]:
    """The models whose validation accuracy each epoch reports beside the sources' (the
    targets a transfer recipe is chosen for, watched as training goes on)."""
    return {name: load_fitting(name, "monitored model", config, data)[0]
            for name in config.monitors}


def load_sources(config: TrainConfig, data: ImageSet) -> list[LoadedSource]:
    sources, hooked_branches = [], 0
    for spec in config.sources:
        model, meta = load_fitting(spec.model, "source", config, data)
        if config.feature_layer is not None:
            resolve_layer(model, config.feature_layer)  # a wrong name: one line, the candidates
        if config.skip_gradient < 1:
            hooked_branches += len(skip_gradient(model, config.skip_gradient))
        sources.append(LoadedSource(meta["name"], model,
                                    GradCAM(model, spec.layer, first_order=config.first_order),
                                    spec.weight, file_digest(Path(meta["path"]))))
    if config.skip_gradient < 1 and not hooked_branches:
        raise AgscmError(f"--skip-gradient {config.skip_gradient:g}: no source has residual "
                         f"branches ({', '.join(s.name for s in sources)}); SGM needs a ResNet")
    return sources


def resolve_config(config: TrainConfig, data: ImageSet) -> TrainConfig:
    eps = config.eps if config.eps is not None else default_eps(data.channels)
    dims = data.channels * data.size[0] * data.size[1]
    c = config.c if config.c is not None else 0.75 * eps * math.sqrt(dims)
    if config.target_class is not None and not 0 <= config.target_class < len(data.classes):
        raise AgscmError(f"target class {config.target_class} is not in 0..{len(data.classes) - 1}")
    return TrainConfig(**{**asdict(config), "eps": eps, "c": c,
                          "sources": [SourceSpec(**asdict(s)) for s in config.sources]})


CLEAN_MAP_BUDGET_BYTES = 1 << 30  # above this the clean maps are recomputed every step


def clean_map_cache(sources: list[LoadedSource], data: ImageSet,
                    config: TrainConfig) -> list[torch.Tensor] | None:
    """Every training image's clean Grad-CAM map for each source, computed once.

    They stay constant while the generator trains, and recomputing them took about a fifth
    of each step. None when no objective reads Grad-CAM maps, when an input view changes
    the clean images from step to step, or when the maps would not fit the memory budget.
    """
    if not objective_needs(build_objectives(config)).gradcam or config.view_strengths():
        return None
    images, labels = next(iterate_batches(data.subset(1), 1, device=config.device))
    per_image = sum(s.cam(images, labels, create_graph=False)[0].numel() for s in sources)
    if per_image * len(data) * 4 > CLEAN_MAP_BUDGET_BYTES:
        return None
    return [torch.cat([source.cam(images, labels, create_graph=False)[0] for images, labels
                       in iterate_batches(data, 250, device=config.device)]) for source in sources]


def channel_weight_cache(sources: list[LoadedSource], data: ImageSet,
                         config: TrainConfig) -> list[torch.Tensor] | None:
    """Every training image's clean Grad-CAM channel weights (N, C) for each source, computed
    once (they do not depend on the generator; with masked copies they cost several passes).
    None when no objective reads them or an input view changes the clean images."""
    if not objective_needs(build_objectives(config)).channel_weights or config.view_strengths():
        return None
    masks = torch.Generator().manual_seed(config.seed * 100_043)
    return [torch.cat([source_channel_weights(source, images, labels, config, masks)
                       for images, labels in iterate_batches(data, 250, device=config.device)])
            for source in sources]


def source_channel_weights(source: LoadedSource, images: torch.Tensor, labels: torch.Tensor,
                           config: TrainConfig, masks: torch.Generator | None) -> torch.Tensor:
    """The clean images' Grad-CAM channel weights for their labels at the feature layer."""
    return channel_weights(source.model, feature_layer(source, config), images, labels,
                           config.cam_weight_copies, config.cam_weight_keep, masks)


def feature_layer(source: LoadedSource, config: TrainConfig) -> str:
    """The layer the feature objectives read in `source`: --feature-layer, else the Grad-CAM
    layer."""
    return config.feature_layer or source.cam.layer_name


def build_objectives(config: TrainConfig) -> list[tuple[Objective, float]]:
    """The config's objectives, made, with their weights (config resolved: c is set)."""
    settings = Settings(kappa=config.kappa, cam_normalize=config.cam_normalize,
                        noise_bound=config.c if config.c is not None else 0.0)
    return [(create_objective(name, settings), weight)
            for name, weight in config.weighted_objectives()]


def build_views(config: TrainConfig) -> list[View]:
    """The config's input views, made, in order."""
    return [create_view(name, strength) for name, strength in config.view_strengths()]


def objective_needs(objectives: list[tuple[Objective, float]]) -> Needs:
    needs = Needs.nothing()
    for objective, _ in objectives:
        needs = needs | objective.needs
    return needs


LOGGED_TERMS = ("noise", "adv", "gradcam", "feature")  # always in the log, 0 when unused


def step_loss(generator: Generator, sources: list[LoadedSource], images: torch.Tensor,
              labels: torch.Tensor, config: TrainConfig,
              clean_maps: list[torch.Tensor] | None = None,
              draws: torch.Generator | None = None,
              objectives: list[tuple[Objective, float]] | None = None,
              clean_weights: list[torch.Tensor] | None = None,
              views: list[View] | None = None,
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss of one batch and its terms (for the progress bar): each objective summed
    over the sources by their weights, then weighted. What the objectives need from a source
    is computed once (`source_pass`).

    `clean_maps`, `clean_weights`: this batch's clean Grad-CAM maps and channel weights per
    source, if cached; else computed here. `draws`: the random source of the input views
    (needed when the config has any) and of the weights' masks when computed here.
    `objectives`, `views`: made once per run by `build_objectives` and `build_views` (made
    here when not given).
    """
    objectives = objectives if objectives is not None else build_objectives(config)
    views = views if views is not None else build_views(config)
    needs = objective_needs(objectives)
    targeted = config.target_class is not None
    goal = torch.full_like(labels, config.target_class) if targeted else labels
    delta = generator.perturbation(images)
    adversarial = (images + delta).clamp(0, 1)
    clean_view, adversarial_view = images, adversarial
    for view in views:
        assert draws is not None, "input views need a random generator"
        clean_view, adversarial_view = view(clean_view, adversarial_view, draws)
    sums = [objective.perturbation_term(delta) if not objective.per_source else torch.zeros(())
            for objective, _ in objectives]
    for index, source in enumerate(sources):
        view = source_pass(source, clean_view, adversarial_view, labels, goal, targeted, needs,
                           config, None if clean_maps is None else clean_maps[index],
                           None if clean_weights is None else clean_weights[index], draws)
        for position, (objective, _) in enumerate(objectives):
            if objective.per_source:
                sums[position] = sums[position] + source.weight * objective.term(view)
    total = sum((weight * term for (_, weight), term in zip(objectives, sums, strict=True)),
                torch.zeros(()))
    terms = dict.fromkeys(LOGGED_TERMS, 0.0)
    for (objective, _), term in zip(objectives, sums, strict=True):
        terms[objective.log_key] = terms.get(objective.log_key, 0.0) + term.item()
    return total, {"loss": total.item(), **terms}


def source_pass(source: LoadedSource, clean_view: torch.Tensor, adversarial_view: torch.Tensor,
                labels: torch.Tensor, goal: torch.Tensor, targeted: bool, needs: Needs,
                config: TrainConfig, clean_maps: torch.Tensor | None = None,
                clean_weights: torch.Tensor | None = None,
                masks: torch.Generator | None = None) -> SourcePass:
    """Run one source on the batch, computing only what `needs` asks for: clean logits and
    features without gradient, Grad-CAM maps of x' differentiable, the clean maps and channel
    weights from the cache when given. When no objective reads logits or maps, the source is
    truncated after the feature layer: nothing above it runs, forward or backward."""
    layer = feature_layer(source, config) if needs.features else None
    clean_logits = clean_features = None
    with torch.no_grad():
        if needs.clean_logits:
            with capture_features(source.model, layer) as features:
                clean_logits = source.model(clean_view)
            clean_features = features[-1] if layer is not None else None
        elif layer is not None:
            clean_features = forward_to(source.model, layer, clean_view)
    logits = adversarial_maps = None
    if layer is not None and not (needs.logits or needs.gradcam):
        adversarial_features = forward_to(source.model, layer, adversarial_view)
    else:
        with capture_features(source.model, layer) as features:
            if needs.gradcam:
                if clean_maps is None:
                    clean_maps = source.cam(clean_view, labels, create_graph=False)[0]
                adversarial_maps, logits = source.cam(adversarial_view, goal, create_graph=True)
            else:
                logits = source.model(adversarial_view)
        adversarial_features = features[-1] if layer is not None else None
    if needs.channel_weights and clean_weights is None:
        clean_weights = source_channel_weights(source, clean_view, labels, config, masks)
    return SourcePass(logits=logits, goal=goal, targeted=targeted, clean_logits=clean_logits,
                      clean_maps=clean_maps if needs.gradcam else None,
                      adversarial_maps=adversarial_maps, clean_features=clean_features,
                      adversarial_features=adversarial_features,
                      channel_weights=clean_weights if needs.channel_weights else None)


def _validate(generator: Generator, sources: list[LoadedSource], data: ImageSet,
              config: TrainConfig, monitors: dict[str, nn.Module]) -> dict[str, float]:
    """Source (and monitored model) accuracy on x' for the validation images, delta's size,
    the first source's Grad-CAM distance, and `collapse`: the share of images the first source
    sends to its most common wrong class (near 1 when the generator has learned one universal
    pattern)."""
    generator.eval()
    correct = {name: 0 for name in [*(s.name for s in sources), *monitors]}
    linf = l2 = cam_distance = 0.0
    wrong_classes = torch.zeros(len(data.classes), dtype=torch.long)
    for images, labels in iterate_batches(data, 250, device=config.device):
        with torch.no_grad():
            delta = generator.perturbation(images)
            adversarial = (images + delta).clamp(0, 1)
        linf += delta.flatten(1).abs().amax(dim=1).sum().item()
        l2 += delta.flatten(1).norm(dim=1).sum().item()
        with torch.no_grad():
            for name, model in monitors.items():
                correct[name] += int((model(adversarial).argmax(1) == labels).sum())
        for index, source in enumerate(sources):
            adv_maps, logits = source.cam(adversarial, labels, create_graph=False)
            predicted = logits.argmax(1)
            correct[source.name] += int((predicted == labels).sum())
            if index == 0:
                clean_maps, _ = source.cam(images, labels, create_graph=False)
                cam_distance += gradcam_distance(clean_maps, adv_maps,
                                                 config.cam_normalize).sum().item()
                wrong_classes += torch.bincount(predicted[predicted != labels].cpu(),
                                                minlength=len(data.classes))
    generator.train()
    count = len(data)
    row = {f"val_acc[{name}]": hits / count for name, hits in correct.items()}
    return {**row, "delta_linf": linf / count, "delta_l2": l2 / count,
            "gradcam_distance": cam_distance / count,
            "collapse": wrong_classes.max().item() / count}


def log_path(checkpoint: Path) -> Path:
    """Where the per-epoch JSON log of a generator checkpoint lives."""
    return checkpoint.with_suffix(".log.json")


def train_generator(config: TrainConfig, resume: bool = True,
                    splits: tuple[ImageSet, ImageSet] | None = None) -> GeneratorCheckpoint:
    """Train an AEG-GC generator as `config` says; returns the final checkpoint. A second run
    into the same `out` while this one goes on is refused. `splits`: the data set's (fit, val)
    when the caller has read them already (else read here)."""
    config.validate()
    fit, val = splits or load_fit_and_val(config.data)
    train_set, val_set = fit.subset(config.train_limit), val.subset(config.val_limit)
    config = resolve_config(config, train_set)
    sources = load_sources(config, train_set)  # every check before anything is written
    monitors = load_monitors(config, val_set)
    with exclusive(Path(config.out), "training"):
        return _train_generator(config, resume, train_set, val_set, sources, monitors)


def _train_generator(config: TrainConfig, resume: bool, train_set: ImageSet, val_set: ImageSet,
                     sources: list[LoadedSource],
                     monitors: dict[str, nn.Module]) -> GeneratorCheckpoint:
    assert config.eps is not None
    torch.manual_seed(config.seed)
    generator = Generator(GeneratorConfig(
        channels=train_set.channels, width=config.width, residual_blocks=config.residual_blocks,
        downsamplings=config.downsamplings, eps=config.eps, norm=config.norm,
        output_scale=config.output_scale, output=config.output,
        smooth_sigma=config.smooth_sigma)).to(config.device)
    optimizer = make_optimizer(generator, config)
    out = Path(config.out)
    record: dict[str, Any] = {
        "agscm_version": __version__, "dataset": dataset_tag(config.data),
        "image_size": list(train_set.size), "classes": train_set.classes,
        "sources": [s.name for s in sources], "lambda": config.lambda_gradcam,
        "recipe": config.recipe, "source_sha256": [s.digest for s in sources],
        "train": asdict(config), "epoch": 0, "history": []}
    if out.exists():
        if not resume:
            raise AgscmError(f"{out} exists; pass --resume to continue it or choose another --out")
        generator, record, optimizer = _resume(out, config, record["source_sha256"])
    if record["epoch"] >= config.epochs:
        return GeneratorCheckpoint(out, {**record, "kind": "generator"}, generator.eval())
    generator = for_precision(generator.train(), config.precision)
    for source in sources:
        for_precision(source.model, config.precision)
    objectives, views = build_objectives(config), build_views(config)
    cached_maps = clean_map_cache(sources, train_set, config)
    cached_weights = channel_weight_cache(sources, train_set, config)
    steps_per_epoch = batch_count(train_set, config.batch_size)
    with make_progress() as progress:
        for epoch in range(record["epoch"], config.epochs):
            order = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
            draws = torch.Generator().manual_seed(config.seed * 100_019 + epoch)
            task = progress.add_task(f"generator epoch {epoch + 1}/{config.epochs}",
                                     total=steps_per_epoch, metrics="")
            start = time.perf_counter()
            sums: dict[str, float] = {}
            for step, (index, images, labels) in enumerate(iterate_indexed_batches(
                    train_set, config.batch_size, shuffle=True, generator=order,
                    device=config.device), start=1):
                rows = torch.from_numpy(index)
                clean_maps = None if cached_maps is None else [m[rows] for m in cached_maps]
                clean_weights = (None if cached_weights is None
                                 else [w[rows] for w in cached_weights])
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(config, epoch + (step - 1) / steps_per_epoch)
                with autocast(config.device, config.precision):
                    loss, terms = step_loss(generator, sources, images, labels, config,
                                            clean_maps, draws, objectives, clean_weights, views)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                sums = {k: sums.get(k, 0.0) + v for k, v in terms.items()}
                progress.update(task, advance=1, metrics=format_metrics(
                    {k: v / step for k, v in sums.items()}))
            seconds = time.perf_counter() - start
            progress.remove_task(task)
            row = {"epoch": epoch + 1, **{k: v / steps_per_epoch for k, v in sums.items()},
                   "seconds": seconds, "images_per_second": len(train_set) / seconds,
                   "images_seen": (epoch + 1) * len(train_set),
                   **_validate(generator, sources, val_set, config, monitors)}
            record["history"].append({**row, "device": str(config.device),
                                      "precision": config.precision})
            record["epoch"] = epoch + 1
            optim_tensors, record["optimizer"] = optimizer_to_tensors(optimizer.state_dict())
            save_generator(out, generator, record, optim_tensors)
            write_json(log_path(out), record["history"])
            progress.console.print(f"epoch {epoch + 1}/{config.epochs}: " + format_metrics(
                {k: v for k, v in row.items() if k not in ("epoch", "seconds")}))
    return GeneratorCheckpoint(out, {**record, "kind": "generator"}, generator.eval())


def make_optimizer(generator: Generator, config: TrainConfig) -> torch.optim.Adam:
    return torch.optim.Adam(generator.parameters(), lr=config.lr, betas=(config.beta1, 0.999))


def learning_rate(config: TrainConfig, progress_in_epochs: float) -> float:
    """`lr` throughout (constant), or cosine decay from `lr` to 1% of it at the last step."""
    if config.schedule == "constant":
        return config.lr
    done = min(progress_in_epochs / config.epochs, 1.0)
    return config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(done * math.pi)))


def _resume(out: Path, config: TrainConfig,
            source_sha256: list[str]) -> tuple[Generator, dict[str, Any], torch.optim.Adam]:
    generator, record, tensors = load_generator(out, config.device)
    # The sources' sha256 prove the weights, wherever the zoo now lives (a moved demo folder);
    # older files lack them, and there the zoo folder itself must match.
    proven = ("zoo_dir",) if "source_sha256" in record else ()
    require_same_config(out, record["train"], config, proven_elsewhere=proven)
    if record.get("source_sha256", source_sha256) != source_sha256:
        raise AgscmError(f"{out}: was trained against other weights of its source models "
                         f"({', '.join(record['sources'])}); delete it or choose another --out")
    record["train"].update(epochs=config.epochs, out=config.out, device=config.device,
                           precision=config.precision, monitors=config.monitors,
                           zoo_dir=config.zoo_dir)
    generator.train()
    optimizer = make_optimizer(generator, config)
    if "optimizer" in record:
        optimizer.load_state_dict(optimizer_from_tensors(tensors, record["optimizer"]))
    return generator, record, optimizer
