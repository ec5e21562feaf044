"""Training (needs torch): the classifier zoo (`zoo`) and AEG-GC generators (`trainer`, with
its loss terms as plug-ins in `objectives` and settings in `recipes`); the models themselves
and Grad-CAM live in agscm.models."""
