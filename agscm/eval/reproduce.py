"""`agscm reproduce <data set>`: the paper's table and lambda sweep on our own zoo, end to end.

One engine for every data set; what differs (paths, eps, zoo, sources, baselines, the paper's
numbers) is a `DatasetSpec` (agscm.eval.datasets). Stages, each resumable (a killed run
continues where it stopped): (1) the zoo, trained or resumed from its checkpoints; (2) the
lambda sweep adv -> secret of the paper's recipe, scored on the validation split; (3) per
source (and the ensemble) one generator of the paper's recipe at the chosen lambda and one of
the transfer recipe; (4) the transfer table on the test split (crafted sets cached); (5) the
report `<out>/<name>.md` with `.json`, `.csv` and `<name>-sweep.png`, and a reading generated
from the numbers (agscm.eval.reading).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rich.console import Console

from agscm.eval.datasets import DatasetSpec
from agscm.eval.methods import GENERATOR_METHOD
from agscm.eval.parallel import run_jobs
from agscm.eval.plots import plot_sweep
from agscm.eval.reading import FLOOR, paper_reference, paper_table, reading, verdicts
from agscm.eval.report import (
    markdown_table,
    sweep_table,
    transfer_rows,
    transfer_sections,
    write_csv,
    write_json,
    write_text,
    write_transfer,
)
from agscm.eval.stage_times import StageTime, checkpoint_stage, stage_table, table_stage
from agscm.eval.sweep import DEFAULT_LAMBDAS, SweepConfig, SweepResult, run_sweep
from agscm.eval.transfer import EvalConfig, TransferResult, evaluate
from agscm.models.ensemble import ENSEMBLE_SEPARATOR, ensemble_members
from agscm.models.registry import SUFFIX
from agscm.train.recipes import PAPER, recipe_settings
from agscm.train.trainer import SourceSpec, TrainConfig, train_generator
from agscm.train.zoo import train_classifier

FALLBACK_LAMBDA = 0.5
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
                           device=budget.device, cache_dir=budget.cache_dir)

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
                    device=budget.device, **settings)
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


@dataclass
class Reproduction:
    plan: Plan
    command: str
    lambda_gradcam: float
    lambda_reason: str
    transfer: TransferResult
    sweep: SweepResult
    stages: list[StageTime] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def reproduce(spec: DatasetSpec, budget: Budget, command: str,
              progress: bool = True) -> Reproduction:
    """Run (or resume) every stage and write the report; returns what it wrote."""
    plan = Plan(spec, budget)
    console = Console(stderr=True, quiet=not progress)
    logs = plan.work / "logs"
    console.rule("1/5 zoo")
    start = time.perf_counter()
    zoo = [(config, Path(budget.zoo_dir) / f"{name}{SUFFIX}", budget.device, budget.zoo_test_limit)
           for name, config in plan.zoo_configs().items()]
    run_jobs(train_classifier, zoo, [logs / f"zoo-{path.stem}.log" for _, path, *_ in zoo],
             budget.jobs)
    stages = [checkpoint_stage("zoo", [path for _, path, *_ in zoo], _since(start))]
    console.rule("2/5 lambda sweep (validation split)")
    start = time.perf_counter()
    sweep_config = plan.sweep_config()
    run_jobs(_train, [(sweep_config.train_config(v),) for v in sweep_config.lambdas],
             [logs / f"sweep-{v:g}.log" for v in sweep_config.lambdas], budget.jobs)
    sweep = run_sweep(sweep_config, progress, console)
    stages.append(checkpoint_stage("lambda sweep", [Path(row.checkpoint) for row in sweep.rows],
                                   _since(start)))
    chosen, reason = _choose_lambda(budget, sweep)
    console.rule(f"3/5 generators (paper lambda {chosen:g}, transfer recipe)")
    start = time.perf_counter()
    configs = plan.generator_configs(chosen)
    paths = run_jobs(_train, [(config,) for config in configs.values()],
                     [logs / f"{Path(c.out).stem}.log" for c in configs.values()], budget.jobs)
    stages.append(checkpoint_stage("generators", map(Path, paths), _since(start)))
    generators: dict[str, list[str]] = {}
    for (label, _), path in zip(configs, paths, strict=True):
        generators.setdefault(label, []).append(path)
    console.rule(f"4/5 transfer table (test split; the table so far in {plan.work / 'table'})")
    start = time.perf_counter()
    transfer = evaluate(plan.eval_config(generators), progress, console,
                        on_set=lambda so_far: write_transfer(so_far, plan.work / "table"))
    stages.append(table_stage("transfer table", transfer, _since(start)))
    console.rule("5/5 report")
    result = Reproduction(plan, command, chosen, reason, transfer, sweep, stages)
    result.files = write_report(result)
    return result


def _since(start: float) -> float:
    return time.perf_counter() - start


def _train(config: TrainConfig) -> str:
    """Train (or resume) one generator; its path (a process-pool job)."""
    return str(train_generator(config, resume=True).path)


def _choose_lambda(budget: Budget, sweep: SweepResult) -> tuple[float, str]:
    if budget.lambda_gradcam is not None:
        return budget.lambda_gradcam, "fixed by --lambda"
    best = sweep.best(positive=True)
    if best is None:
        return FALLBACK_LAMBDA, "the default: the sweep has no lambda above 0"
    return best.lambda_gradcam, (f"the sweep's best lambda above 0 on the validation split, "
                                 f"{sweep.source} -> {sweep.target}, as the paper's Figure 3")


def report_markdown(result: Reproduction) -> str:
    plan, budget = result.plan, result.plan.budget
    spec = plan.spec
    settings = markdown_table(["budget", "value"], [
        [f.name, f"`{getattr(budget, f.name)}`"] for f in fields(budget)])
    zoo = markdown_table(["model", "architecture", "training"], [
        [f"`{name}`", str(config.arch or "default"),
         f"{config.kind}, {config.epochs} epochs" + (
             f", PGD-{config.adv_steps}" if config.kind != "natural" else "")]
        for name, config in plan.zoo_configs().items()])
    return "\n\n".join([
        f"# {spec.name} reproduction: AEG-GC (paper and transfer recipes) against the baselines",
        f"Command: `{result.command}`",
        f"Every number on this page was written by that command (agscm, L-inf eps "
        f"{spec.eps:.4g}, {result.transfer.images} test images). The paper's recipe trains at "
        f"lambda {result.lambda_gradcam:g} ({result.lambda_reason}); each generator trains on "
        f"{budget.train_limit or 'all'} `fit` images (the training split without the "
        f"validation images). Lambda and the transfer recipe were chosen on the validation "
        f"split; the test split is used only for this table.",
        "## Reading (generated from the numbers below)",
        "\n".join(f"- {line}" for line in reading(result.transfer, plan, result.sweep)),
        "## Bars (the transfer recipe)",
        "\n".join(f"- {line}" for line in verdicts(result.transfer, plan)),
        "## Zoo", zoo,
        "## Our table",
        "In brackets: the paper's number for the cell, where its table has one.",
        transfer_sections(result.transfer, paper_reference(plan)),
        f"## The paper's {spec.name} table (its numbers, for reference; not ours)",
        "Target accuracy on adversarial test images as the paper reports on MadryLab's own "
        "checkpoints (DESIGN §1); bold by the same rule as ours. Our zoo is trained here, so "
        "only the ordering is expected to carry over.",
        paper_table(spec.paper),
        f"## Lambda sweep (paper recipe): {result.sweep.source} -> {result.sweep.target}, "
        f"validation split",
        sweep_table(result.sweep),
        f"![attack success rate vs lambda]({spec.name}-sweep.png)",
        "## What each stage cost", stage_table(result.stages),
        "## Budget", settings]) + "\n"


def write_report(result: Reproduction) -> list[Path]:
    plan = result.plan
    out = Path(plan.budget.out_dir)
    name = plan.spec.name
    payload = {
        "command": result.command, "spec": name, "budget": asdict(plan.budget),
        "zoo": {n: asdict(c) for n, c in plan.zoo_configs().items()},
        "lambda": result.lambda_gradcam, "lambda_reason": result.lambda_reason,
        "reading": reading(result.transfer, plan, result.sweep),
        "bars": verdicts(result.transfer, plan),
        "transfer": result.transfer.to_json(), "sweep": result.sweep.to_json(),
        "stages": [asdict(stage) for stage in result.stages], "paper": plan.spec.paper}
    return [plot_sweep(result.sweep, out / f"{name}-sweep.png"),
            write_text(out / f"{name}.md", report_markdown(result)),
            write_json(out / f"{name}.json", payload),
            write_csv(out / f"{name}.csv", transfer_rows(result.transfer))]

