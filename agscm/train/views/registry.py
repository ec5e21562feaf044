"""Every input view by name. Adding one: a file with its View class, and its line below."""

from __future__ import annotations

from agscm.train.named_values import lookup, parse_named_value
from agscm.train.views.base import View
from agscm.train.views.diversity import InputDiversity

VIEWS: dict[str, type[View]] = {view.name: view for view in (
    InputDiversity,
)}


def parse_view(text: str) -> tuple[str, float]:
    """`NAME[@STRENGTH]` -> (name, strength in (0, 1]), e.g. `diversity@0.5`."""
    return parse_named_value(text, VIEWS, "view", "strength", lambda strength: 0 < strength <= 1,
                             "a view's strength is in (0, 1]")


def create_view(name: str, strength: float) -> View:
    """The view called `name` at `strength`; an unknown name is one line that lists the known
    ones."""
    return lookup(VIEWS, name, "view")(strength)
