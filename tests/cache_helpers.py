"""Make recomputation fail loudly, so a rerun passes only when the cache answers for it."""

from __future__ import annotations

import pytest

from agscm.eval import cache as cache_module
from agscm.eval.methods import BaselineMethod, GeneratorMethod


def forbid_recomputing(patch: pytest.MonkeyPatch, *, scoring: bool = True) -> None:
    """Crafting any set (and, with `scoring`, predicting on any images) raises AssertionError."""
    def forbidden(*args, **kwargs):
        raise AssertionError("computed again instead of reading the cache")

    patch.setattr(BaselineMethod, "craft", forbidden)
    patch.setattr(GeneratorMethod, "craft", forbidden)
    if scoring:
        patch.setattr(cache_module, "predict", forbidden)
