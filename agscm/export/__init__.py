"""`agscm export`: generator checkpoint -> ONNX (fp32, and fp16/int8 variants), verified.

Imports torch and onnx; the runtime never imports this package.
"""
