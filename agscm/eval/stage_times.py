"""What each stage of a reproduction cost, from the seconds its checkpoints and crafted sets record.

A reproduction spans sessions and resumes, so no single run's clock covers a stage. Instead every
zoo model and generator records the seconds and device of each epoch it trained (its checkpoint's
`history`), and every crafted set the seconds it took to craft (kept in the cache); summed per
stage, they say what the stage cost on the machine that ran it. Models trained at once with
`--jobs` share the cores, so their seconds overlap in time. Each model's predictions keep the
seconds they took too (agscm.eval.cache), so the table's scoring is counted whichever run did it.
Each stage also reports the wall time of the run that wrote the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agscm.eval.report import markdown_table
from agscm.eval.transfer import TransferResult
from agscm.formatting import duration
from agscm.models.checkpoint import read_meta

NOT_RECORDED = "not recorded"


@dataclass
class ItemTime:
    """One model's training, or one crafted set."""

    name: str
    epochs: int  # 0 for a crafted set
    seconds: float
    devices: list[str]


@dataclass
class StageTime:
    stage: str
    items: list[ItemTime] = field(default_factory=list)
    run_seconds: float = 0.0  # the wall time of this stage in the run that wrote the report
    scoring_seconds: float = 0.0  # the table's predictions, beside its items' crafting

    @property
    def seconds(self) -> float:
        return sum(item.seconds for item in self.items) + self.scoring_seconds

    @property
    def devices(self) -> list[str]:
        return list(dict.fromkeys(d for item in self.items for d in item.devices))


def checkpoint_time(path: Path) -> ItemTime:
    """The epochs, summed epoch seconds and devices a checkpoint's history records. Epochs from
    before each epoch recorded its device take the device its training config was first written
    with (generators have one; zoo models do not: `not recorded`)."""
    meta = read_meta(path)
    history = meta.get("history", [])
    fallback = meta.get("train", {}).get("device", NOT_RECORDED)
    devices = [str(row.get("device", fallback)) for row in history]
    return ItemTime(path.name.removesuffix(".safetensors"), len(history),
                    sum(float(row["seconds"]) for row in history), list(dict.fromkeys(devices)))


def checkpoint_stage(stage: str, paths: Iterable[Path], run_seconds: float) -> StageTime:
    return StageTime(stage, [checkpoint_time(Path(p)) for p in paths], run_seconds)


def table_stage(stage: str, table: TransferResult, run_seconds: float) -> StageTime:
    """The crafting seconds of every set of the table and the seconds of all its scoring,
    whether done in this run or read back from the cache (neither records its device)."""
    return StageTime(stage, [ItemTime(f"{s.source} / {s.method}", 0, s.seconds, [])
                             for s in table.sets], run_seconds, table.scoring_seconds)


def stage_table(stages: Sequence[StageTime]) -> str:
    """Markdown: one row per stage, then one per trained model."""
    summary = markdown_table(
        ["stage", "models or sets", "recorded seconds (all runs)", "of which scoring", "device",
         "wall time of the run that wrote this page"],
        [[stage.stage, str(len(stage.items)), duration(stage.seconds),
          duration(stage.scoring_seconds) if stage.scoring_seconds else "",
          ", ".join(stage.devices) or NOT_RECORDED, duration(stage.run_seconds)]
         for stage in stages])
    models = markdown_table(
        ["stage", "model", "epochs", "recorded seconds", "device"],
        [[stage.stage, f"`{item.name}`", str(item.epochs), duration(item.seconds),
          ", ".join(item.devices)] for stage in stages for item in stage.items if item.epochs])
    return "\n\n".join([
        "Recorded seconds: the sum of every epoch's training seconds in each checkpoint (the "
        "zoo's exclude its per-epoch test), and the table's crafting seconds of every set plus "
        "its scoring seconds (every model on the clean images and on every set), whichever run "
        "(or machine) did the work; models trained at once (`--jobs`) share the cores. The "
        "sweep's scoring counts only in the wall time of the run that did it.",
        summary, models])
