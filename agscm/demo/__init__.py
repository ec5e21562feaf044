"""`agscm demo`: zoo, generator, ONNX export, a perturbed folder, a table and a figure in one run."""

from agscm.demo.pipeline import DemoBudget, DemoPaths, DemoResult, run_demo

__all__ = ["DemoBudget", "DemoPaths", "DemoResult", "run_demo"]
