"""Generators shipped inside the package: `NAME.onnx` (as `agscm export` writes it) beside its
card `NAME.json`. Read them with `agscm.runtime.pretrained` (torch-free); list them with
`agscm models`.
"""
