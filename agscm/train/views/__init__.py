"""Input views: random changes of the clean and adversarial batch that only the sources see
during training, one file each, by name (agscm.train.views.registry)."""

from agscm.train.views.base import View
from agscm.train.views.registry import VIEWS, create_view, parse_view

__all__ = ["VIEWS", "View", "create_view", "parse_view"]
