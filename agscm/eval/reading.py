"""What a reproduction's table says, generated from its numbers: who wins where, and the bars.

Every black-box cell (the target is neither the source nor one of its members) compares each
generator row (`aeg-gc`: the paper's recipe, `aeg-gc-transfer`: the transfer recipe) with
every baseline of the same source, the noise floor included; ties count against the generator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agscm.eval.datasets import PAPER_COLUMNS, Paper
from agscm.eval.methods import GENERATOR_METHOD, generator_label
from agscm.eval.plan import FLOOR, Plan
from agscm.eval.report import markdown_table
from agscm.eval.sweep import SweepResult
from agscm.eval.transfer import Cell, TransferResult
from agscm.formatting import percent

PAPER_LABEL = generator_label("paper")
TRANSFER_LABEL = generator_label("transfer")
COLLAPSE_BAR = 0.5


@dataclass
class Standing:
    """One generator row in one black-box cell, against the baselines of that source."""

    cell: Cell
    rivals: list[Cell]

    @property
    def lowest(self) -> bool:
        return all(self.cell.accuracy < rival.accuracy for rival in self.rivals)

    def beats(self, method: str) -> bool:
        rival = next((r for r in self.rivals if r.method == method), None)
        return rival is not None and self.cell.accuracy < rival.accuracy

    def floor_margin(self) -> float | None:
        floor = next((r for r in self.rivals if r.method == FLOOR), None)
        return None if floor is None else floor.accuracy - self.cell.accuracy


def standings(result: TransferResult, label: str) -> list[Standing]:
    """The black-box cells of generator row `label`, each with its source's baseline cells."""
    baselines = [m for m in result.methods if not m.startswith(GENERATOR_METHOD)]
    rows = []
    for cell in result.cells:
        if cell.method != label or cell.white_box:
            continue
        rivals = [c for m in baselines if (c := result.cell(cell.source, m, cell.target))]
        if rivals:
            rows.append(Standing(cell, rivals))
    return rows


def _cell_text(standing: Standing) -> str:
    best = min(standing.rivals, key=lambda c: c.accuracy)
    return (f"{standing.cell.source} -> {standing.cell.target} ({percent(standing.cell.accuracy)} "
            f"vs {best.method} {percent(best.accuracy)})")


def generator_reading(result: TransferResult, label: str, name: str) -> list[str]:
    rows = standings(result, label)
    if not rows:
        return []
    baselines = [m for m in result.methods if not m.startswith(GENERATOR_METHOD)]
    lost = [_cell_text(s) for s in rows if not s.lowest]
    versus = ", ".join(f"{m} in {sum(s.beats(m) for s in rows)}" for m in baselines)
    collapse = max(c.collapse for c in result.cells if c.method == label)
    return [f"{name} has the lowest accuracy of all methods in **{sum(s.lowest for s in rows)} "
            f"of {len(rows)} black-box cells**; it beats {versus} (of {len(rows)}).",
            f"{name}: cells where it is not lowest: " + ("; ".join(lost) if lost else "none")
            + f". Its worst collapse (share of images sent to one wrong class): "
            f"{percent(collapse)}."]


def reading(result: TransferResult, plan: Plan, sweep: SweepResult) -> list[str]:
    """The honest summary: wins and losses of both recipes, white-box, the sweep."""
    lines = [*generator_reading(result, PAPER_LABEL, "AEG-GC (paper recipe)"),
             *generator_reading(result, TRANSFER_LABEL, "AEG-GC (transfer recipe)")]
    natural = plan.name("natural")
    white = [c for c in result.cells if c.source == natural and c.target == natural]
    if white:
        lines.append(f"White-box on {natural}: " + ", ".join(
            f"{c.method} {percent(c.accuracy)}" for c in white) + ".")
    lines.append(_sweep_reading(sweep))
    return lines


def verdicts(result: TransferResult, plan: Plan) -> list[str]:
    """The transfer recipe's bars, each `met` or `NOT met` with its numbers."""
    rows = standings(result, TRANSFER_LABEL)
    if not rows:
        return ["no transfer-recipe rows in this table"]
    robust = plan.robust_targets()
    natural_rows = [s for s in rows if s.cell.target not in robust]
    robust_rows = [s for s in rows if s.cell.target in robust]
    spec = plan.spec
    floor_rows = robust_rows if spec.floor_cells == "robust" else rows
    margins = [(s, s.floor_margin()) for s in floor_rows]
    short = [f"{s.cell.source} -> {s.cell.target} "
             + (f"({100 * m:+.2f} points)" if m is not None else "(no noise row)")
             for s, m in margins if m is None or m < spec.floor_margin]
    lines = [
        _verdict(all(s.lowest for s in natural_rows),
                 f"lowest of all methods in every black-box cell with a natural target: "
                 f"{sum(s.lowest for s in natural_rows)} of {len(natural_rows)}"),
        _verdict(2 * sum(s.lowest for s in robust_rows) >= len(robust_rows),
                 f"lowest in at least half of the black-box cells with an adversarially "
                 f"trained target: {sum(s.lowest for s in robust_rows)} of {len(robust_rows)}"),
        _verdict(not short, f"beats the noise floor by at least {spec.floor_margin:.0%} in every "
                            f"black-box cell{' with a robust target' if floor_rows is robust_rows else ''}"
                            + (f"; short: {'; '.join(short)}" if short else "")),
    ]
    adv = plan.name("adv")
    mine = result.cell(adv, TRANSFER_LABEL, adv)
    pgd = [c for c in result.cells if c.source == adv and c.target == adv
           and c.method.startswith("pgd")]
    if mine and pgd:
        strongest = min(pgd, key=lambda c: c.accuracy)
        lines.append(_verdict(mine.accuracy <= strongest.accuracy,
                              f"white-box against {adv}: {percent(mine.accuracy)} vs "
                              f"{strongest.method} {percent(strongest.accuracy)}"))
    collapse = max(c.collapse for c in result.cells if c.method == TRANSFER_LABEL)
    lines.append(_verdict(collapse <= COLLAPSE_BAR, f"most common wrong class at most "
                                                   f"{COLLAPSE_BAR:.0%} of images: worst "
                                                   f"{percent(collapse)}"))
    return lines


def _verdict(met: bool, text: str) -> str:
    return f"{'met' if met else 'NOT met'}: {text}"


def _sweep_reading(sweep: SweepResult) -> str:
    best = sweep.best()
    zero = next((r for r in sweep.rows if r.lambda_gradcam == 0), None)
    assert best is not None
    text = (f"Lambda sweep {sweep.source} -> {sweep.target} (validation split): success peaks "
            f"at lambda {best.lambda_gradcam:g} ({percent(best.success_rate)})")
    if zero is not None:
        text += f"; without the Grad-CAM term (lambda 0) it is {percent(zero.success_rate)}"
    return text + "."


PAPER_METHODS = {"aeg-gc": "AEG-GC", "ata": "ATA", "pgd": "PGD"}


def paper_reference(plan: Plan) -> Callable[[Cell], float | None]:
    """The paper's number for a cell of ours (source and target among natural/adv/secret,
    method among AEG-GC (paper recipe), ATA and PGD), or None."""
    kinds = {plan.name(kind): kind for kind in PAPER_COLUMNS}

    def reference(cell: Cell) -> float | None:
        method = PAPER_METHODS.get(cell.method.partition(":")[0])
        if cell.source not in kinds or cell.target not in kinds or method is None:
            return None
        row = plan.spec.paper.get(kinds[cell.source], {}).get(method)
        return None if row is None else row[PAPER_COLUMNS.index(kinds[cell.target])]

    return reference


def paper_table(paper: Paper) -> str:
    """The paper's numbers, bold by the same rule as ours (lowest per source and target)."""
    rows = []
    for source, methods in paper.items():
        lowest = [min(values[i] for values in methods.values()) for i in range(len(PAPER_COLUMNS))]
        for method, values in methods.items():
            rows.append([source, method, *(f"**{percent(v)}**" if v == low else percent(v)
                                           for v, low in zip(values, lowest, strict=True))])
    return markdown_table(["source", "method", *PAPER_COLUMNS], rows)
