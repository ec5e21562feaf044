"""agscm: transferable adversarial examples from a Grad-CAM guided generator (AEG-GC)."""

__version__ = "0.1.0"
