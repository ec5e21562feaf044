"""The arithmetic of training steps: float32, or bfloat16 autocast on channels-last tensors.

Zoo training defaults to bf16 on CUDA; on a CPU bf16 pays only where the hardware has bf16
arithmetic (AVX-512 BF16 or AMX: 2-3x faster for the zoo's CIFAR-10 nets, docs/RESULTS.md §2)
and is emulated, slower, elsewhere, so the CPU default stays fp32. Generator training defaults
to fp32 everywhere (its second-order Grad-CAM has not been tried in bf16). Weights, optimiser
state and every reported accuracy stay float32 either way; a run may change precision between
its parts.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from agscm.errors import AgscmError

PRECISIONS = ("fp32", "bf16")


def resolve_precision(precision: str | None, device: str) -> str:
    """`precision` (refused in one line unless known), or the zoo's default for the device
    (bf16 on CUDA, fp32 elsewhere)."""
    if precision is None:
        return "bf16" if torch.device(device).type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise AgscmError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The context a training step's forward pass runs in."""
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def for_precision(module: nn.Module, precision: str) -> nn.Module:
    """`module` in the memory layout its precision runs fastest in (channels-last for bf16)."""
    return module.to(memory_format=torch.channels_last) if precision == "bf16" else module
