"""Every input view by name. Adding one: a file with its View class, and its line below."""

from __future__ import annotations

from agscm.errors import AgscmError
from agscm.train.views.base import View
from agscm.train.views.diversity import InputDiversity

VIEWS: dict[str, type[View]] = {view.name: view for view in (
    InputDiversity,
)}


def parse_view(text: str) -> tuple[str, float]:
    """`NAME@STRENGTH` -> (name, strength in (0, 1]), e.g. `diversity@0.5`."""
    name, _, strength_text = text.partition("@")
    try:
        strength = float(strength_text) if strength_text else 1.0
    except ValueError:
        raise AgscmError(f"bad view strength in {text!r}; expected NAME[@STRENGTH]") from None
    if name not in VIEWS:
        raise AgscmError(f"unknown view {name!r} in {text!r}; choose one of {', '.join(VIEWS)}")
    if not 0 < strength <= 1:
        raise AgscmError(f"a view's strength is in (0, 1], got {text!r}")
    return name, strength


def create_view(name: str, strength: float) -> View:
    if name not in VIEWS:
        raise AgscmError(f"unknown view {name!r}; choose one of {', '.join(VIEWS)}")
    return VIEWS[name](strength)
