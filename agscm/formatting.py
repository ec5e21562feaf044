"""How agscm writes numbers for people: rates as percentages, measured values rounded.

Torch-free (the runtime's `agscm info` uses it too).
"""

from __future__ import annotations

from typing import Any


def percent(fraction: float) -> str:
    """Accuracies and success rates, in every table and message: 0.1234 -> '12.34%'."""
    return f"{fraction:.2%}"


def rounded(value: Any, digits: int = 6) -> Any:
    """Floats in a JSON-like tree to `digits` significant digits, for display only
    (a stored 6.299999999999999 prints as 6.3)."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(item, digits) for item in value]
    return value


def duration(seconds: float) -> str:
    """Costs in reports: 42 -> '42 s', 4000 -> '1 h 07 min' (minutes rounded)."""
    if round(seconds) < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def rate(per_second: float) -> str:
    """Speeds such as images/s: 2228.4 -> '2,228', 19.34 -> '19.3'."""
    return f"{per_second:,.0f}" if per_second >= 100 else f"{per_second:.1f}"
