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

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from rich.console import Console

from agscm.eval.datasets import DatasetSpec
from agscm.eval.parallel import run_jobs
from agscm.eval.plan import Budget, Plan
from agscm.eval.plots import plot_sweep
from agscm.eval.reading import paper_reference, paper_table, reading, verdicts
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
from agscm.eval.sweep import SweepResult, run_sweep
from agscm.eval.transfer import TransferResult, evaluate
from agscm.models.catalog import is_catalogued
from agscm.models.registry import SUFFIX
from agscm.progress import Stages
from agscm.train.precision import resolve_precision
from agscm.train.trainer import TrainConfig, train_generator
from agscm.train.zoo import catalogued_model, train_classifier

FALLBACK_LAMBDA = 0.5
STAGES = {"zoo": "zoo", "lambda sweep": "lambda sweep (validation split)",
          "generators": "generators", "transfer table": "transfer table", "report": "report"}


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
    resolve_precision(budget.precision, budget.device)  # a bad name stops it before any stage
    plan = Plan(spec, budget)
    console = Console(stderr=True, quiet=not progress)
    stages = Stages(console, STAGES)
    logs = plan.work / "logs"
    with stages.stage("zoo"):
        zoo_paths = _zoo(plan, logs)
    with stages.stage("lambda sweep"):
        sweep_config = plan.sweep_config()
        run_jobs(_train, [(sweep_config.train_config(v),) for v in sweep_config.lambdas],
                 [logs / f"sweep-{v:g}.log" for v in sweep_config.lambdas], budget.jobs)
        sweep = run_sweep(sweep_config, progress, console)
    chosen, reason = _choose_lambda(budget, sweep)
    with stages.stage("generators", f"generators (paper lambda {chosen:g}, transfer recipe)"):
        configs = plan.generator_configs(chosen)
        paths = run_jobs(_train, [(config,) for config in configs.values()],
                         [logs / f"{Path(c.out).stem}.log" for c in configs.values()],
                         budget.jobs)
    generators: dict[str, list[str]] = {}
    for (label, _), path in zip(configs, paths, strict=True):
        generators.setdefault(label, []).append(path)
    with stages.stage("transfer table", "transfer table (test split; the table so far in "
                                        f"{plan.work / 'table'})"):
        transfer = evaluate(plan.eval_config(generators), progress, console,
                            on_set=lambda so_far: write_transfer(so_far, plan.work / "table"))
    times = [checkpoint_stage("zoo", zoo_paths, stages.seconds["zoo"]),
             checkpoint_stage("lambda sweep", [Path(row.checkpoint) for row in sweep.rows],
                              stages.seconds["lambda sweep"]),
             checkpoint_stage("generators", map(Path, paths), stages.seconds["generators"]),
             table_stage("transfer table", transfer, stages.seconds["transfer table"])]
    with stages.stage("report"):
        result = Reproduction(plan, command, chosen, reason, transfer, sweep, times)
        result.files = write_report(result)
    return result


def _zoo(plan: Plan, logs: Path) -> list[Path]:
    """The spec's classifiers: those of a catalogued zoo (the committed one) as they are, each
    checked to be the spec's model; in any other folder trained, or resumed, there."""
    folder, budget = Path(plan.budget.zoo_dir), plan.budget
    configs = plan.zoo_configs()
    if is_catalogued(folder):
        return [catalogued_model(folder, name, config, plan.spec.channels)
                for name, config in configs.items()]
    zoo = [(config, folder / f"{name}{SUFFIX}", budget.device, budget.zoo_test_limit)
           for name, config in configs.items()]
    run_jobs(train_classifier, zoo, [logs / f"zoo-{path.stem}.log" for _, path, *_ in zoo],
             budget.jobs)
    return [path for _, path, *_ in zoo]


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
        "checkpoints; bold by the same rule as ours. Our zoo is trained here, so "
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

