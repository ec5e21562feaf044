"""The demo's reading of its table, generated from the numbers: where the generator wins and
where it loses, column by column, and in crafting speed.

A win is strictly the lowest accuracy of every method in a column (lower = stronger); a tie
counts as a loss, as in agscm.eval.reading. The noise floor is a yardstick, not a rival: it
is never a winner, and its (trivial) crafting speed is not compared.
"""

from __future__ import annotations

from dataclasses import dataclass

from agscm.formatting import percent, rate


@dataclass(frozen=True)
class Column:
    """One target of the table: what it is to the attacks, each method's accuracy on it (the
    generator's included) and random noise's."""

    target: str
    role: str  # e.g. "white-box", "another architecture"
    accuracy: dict[str, float]
    floor: float

    @property
    def name(self) -> str:
        return f"{self.target} ({self.role})"

    def rivals(self, generator: str) -> dict[str, float]:
        return {method: value for method, value in self.accuracy.items() if method != generator}

    def won_by(self, generator: str) -> bool:
        mine = self.accuracy[generator]
        return all(mine < value for value in self.rivals(generator).values())


def points(high: float, low: float) -> str:
    """The gap between two accuracies in percentage points: '6.50 points'."""
    return f"{(high - low) * 100:.2f} points"


def _listed(items: dict[str, float]) -> str:
    return " and ".join(f"{method} ({percent(value)})" for method, value in items.items())


def column_reading(column: Column, generator: str) -> str:
    """One sentence: whether `generator` wins `column`, against whom, by how much, and how it
    stands against random noise."""
    mine = column.accuracy[generator]
    rivals = dict(sorted(column.rivals(generator).items(), key=lambda item: item[1]))
    if not rivals:
        raise ValueError(f"no method to compare {generator} with on {column.target}")
    if column.won_by(generator):
        method, value = next(iter(rivals.items()))
        verdict = f"wins, {points(value, mine)} below the next best, {method} ({percent(value)})"
    else:
        better = {m: v for m, v in rivals.items() if v < mine}
        tied = {m: v for m, v in rivals.items() if v == mine}
        beaten = {m: v for m, v in rivals.items() if v > mine}
        verdict = " and ".join(([f"loses to {_listed(better)}"] if better else [])
                               + ([f"ties with {_listed(tied)}"] if tied else []))
        verdict += f", but beats {_listed(beaten)}" if beaten else ""
    if mine < column.floor:
        noise = f"{points(column.floor, mine)} below random noise ({percent(column.floor)})"
    else:
        noise = f"no lower than random noise ({percent(column.floor)})"
    return f"On {column.name}: {generator} ({percent(mine)}) {verdict}; {noise}."


def faster_than_all(generator: str, images_per_second: dict[str, float]) -> bool:
    mine = images_per_second[generator]
    return all(mine > value for method, value in images_per_second.items() if method != generator)


def speed_reading(generator: str, images_per_second: dict[str, float]) -> str:
    """One sentence: the generator's crafting speed against the fastest other attack's."""
    mine = images_per_second[generator]
    others = {m: v for m, v in images_per_second.items() if m != generator}
    if not others:
        raise ValueError(f"no attack to compare {generator}'s speed with")
    method, value = max(others.items(), key=lambda item: item[1])
    rival = f"{method} ({rate(value)} images/s)"
    if faster_than_all(generator, images_per_second):
        ratio = mine / value
        times = f"{ratio:,.0f}" if ratio >= 10 else f"{ratio:.1f}"
        relation = f"{times}x as fast as {rival}, the fastest other attack"
    else:
        relation = f"{'slower than' if mine < value else 'no faster than'} {rival}"
    return f"Crafting speed: {generator} {rate(mine)} images/s, {relation}."


def demo_reading(generator: str, columns: list[Column],
                 images_per_second: dict[str, float]) -> list[str]:
    """A headline naming what the generator wins and loses, then one sentence per column and
    one for speed. `images_per_second` holds the attacks only (the generator's included)."""
    won = [c.name for c in columns if c.won_by(generator)]
    lost = [c.name for c in columns if not c.won_by(generator)]
    if faster_than_all(generator, images_per_second):
        won.append("crafting speed")
    else:
        lost.append("crafting speed")
    headline = (f"{generator} wins on {', '.join(won) or 'nothing'}; "
                f"it loses on {', '.join(lost) or 'nothing'}.")
    return [headline, *(column_reading(c, generator) for c in columns),
            speed_reading(generator, images_per_second)]
