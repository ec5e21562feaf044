"""The skip gradient method (SGM; Wu et al., ICLR 2020): scale the gradient that flows back
through each residual branch of a source by gamma < 1, so the gradient reaching the input
comes more from the skip connections. The forward pass is unchanged; gradients from a source
of this kind are reported to transfer better to other architectures.

A residual unit declares its branch's last module in `residual_branch_end` (a submodule name;
agscm.models.classifiers); the scaling is a forward hook on that module."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from agscm.errors import AgscmError


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; the incoming gradient times `gamma` backward."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, tensor: torch.Tensor,
                gamma: float) -> torch.Tensor:
        ctx.gamma = gamma  # type: ignore[attr-defined]
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx,
                 grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.gamma, None  # type: ignore[attr-defined]


def residual_branch_ends(model: nn.Module) -> list[nn.Module]:
    """The last module of every residual branch in `model`, in definition order."""
    return [unit.get_submodule(unit.residual_branch_end) for unit in model.modules()
            if isinstance(getattr(unit, "residual_branch_end", None), str)]


def check_gamma(gamma: float) -> None:
    """Refuse, in one line, a gamma outside (0, 1] (0 would cut the branches off)."""
    if not 0 < gamma <= 1:
        raise AgscmError(f"the skip-gradient gamma must be in (0, 1], got {gamma}")


def skip_gradient(model: nn.Module, gamma: float) -> list[RemovableHandle]:
    """Scale the backward gradient through every residual branch of `model` by `gamma` in
    (0, 1]; returns the hooks' handles (none for a model without residual branches; remove
    them to undo)."""
    check_gamma(gamma)

    def scale(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        return _ScaleGradient.apply(output, gamma) if output.requires_grad else output

    return [end.register_forward_hook(scale) for end in residual_branch_ends(model)]
