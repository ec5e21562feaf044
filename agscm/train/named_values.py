"""`NAME[@VALUE]` settings of the trainer's plug-in registries (objectives by weight, input
views by strength), read one way, so every registry answers bad input with the same one-line
errors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from agscm.errors import AgscmError

T = TypeVar("T")


def lookup(registry: Mapping[str, T], name: str, kind: str, text: str | None = None) -> T:
    """`registry[name]`; an unknown name is one line that lists the known ones (and quotes
    `text`, the setting it came from, when given)."""
    if name not in registry:
        where = f" in {text!r}" if text is not None else ""
        raise AgscmError(f"unknown {kind} {name!r}{where}; choose one of {', '.join(registry)}")
    return registry[name]


def parse_named_value(text: str, registry: Mapping[str, object], kind: str, value: str,
                      allowed: Callable[[float], bool], rule: str) -> tuple[str, float]:
    """`NAME[@VALUE]` -> (name, value), 1 when VALUE is left out; NAME must be in `registry`
    and VALUE `allowed`, else `rule` (e.g. "a view's strength is in (0, 1]") says why not."""
    name, _, number_text = text.partition("@")
    try:
        number = float(number_text) if number_text else 1.0
    except ValueError:
        raise AgscmError(f"bad {kind} {value} in {text!r}; "
                         f"expected NAME[@{value.upper()}]") from None
    lookup(registry, name, kind, text)
    if not allowed(number):
        raise AgscmError(f"{rule}, got {text!r}")
    return name, number
