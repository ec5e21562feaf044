"""Primitives every other layer builds on: classifiers, the generator, Grad-CAM, checkpoints.

Nothing here imports attacks, trainers or evaluation, so the arrows run one way:
models -> attacks -> train -> eval -> commands.
"""
