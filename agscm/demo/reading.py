"""The demo's one-line reading of its transfer column, generated from the numbers."""

from __future__ import annotations

from agscm.formatting import percent


def points(high: float, low: float) -> str:
    """The gap between two accuracies in percentage points: '6.50 points'."""
    return f"{(high - low) * 100:.2f} points"


def transfer_reading(target: str, accuracy: dict[str, float], floor: float) -> str:
    """Which method leaves `target` (a model the attacks never saw) lowest, and by how much it
    beats the runner-up and random noise of the same size (`floor`); lower accuracy = stronger."""
    if not accuracy:
        raise ValueError("no method to read")
    ranked = sorted(accuracy.items(), key=lambda item: item[1])
    best, low = ranked[0]
    if low >= floor:
        return (f"No method transfers to {target}: the best, {best}, leaves it at {percent(low)}, "
                f"no lower than random noise ({percent(floor)}).")
    tied = [method for method, value in ranked[1:] if value == low]
    others = [(method, value) for method, value in ranked[1:] if value > low]
    if tied:
        text = f"{' and '.join([best, *tied])} transfer best (a tie), leaving {target} at "
    else:
        text = f"{best} transfers best, leaving {target} at "
    margins = [f"{points(value, low)} below {method} ({percent(value)})"
               for method, value in others[:1]]
    margins.append(f"{points(floor, low)} below random noise ({percent(floor)})")
    return f"{text}{percent(low)}, {' and '.join(margins)}."
