"""The Ray engine: `agscm perturb --engine ray` and `perturb_dataset`, for folders too large
for one machine. Ray is imported when a run starts, never with this package."""

from agscm.runtime.ray.engine import RayOptions, perturb_dataset

__all__ = ["RayOptions", "perturb_dataset"]
