"""Differentiable Grad-CAM (Selvaraju et al., 2017; AEG-GC eqs. 8-9), usable inside a loss.

    alpha_k^c = mean_ij d y^c / d A^k_ij        S^c(x) = ReLU(sum_k alpha_k^c A^k)

The activation A is captured by a forward hook that is removed after every call. With
`create_graph=True` the map is differentiable w.r.t. the input through alpha too (second
order, the faithful default); `first_order=True` detaches alpha for speed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from agscm.errors import AgscmError

_FEATURE_TYPES = (nn.Conv2d, nn.ReLU, nn.BatchNorm2d, nn.MaxPool2d, nn.Sequential)


def default_layer(model: nn.Module) -> str:
    """The model's declared Grad-CAM layer, else its last Conv2d."""
    declared = getattr(model, "default_gradcam_layer", None)
    if isinstance(declared, str):
        return declared
    convs = [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    if not convs:
        raise AgscmError(f"{type(model).__name__} has no Conv2d layer for Grad-CAM")
    return convs[-1]


def feature_layer_candidates(model: nn.Module) -> list[str]:
    """Module names that can hold a convolutional feature map (for error messages)."""
    return [name for name, module in model.named_modules()
            if name and (isinstance(module, _FEATURE_TYPES)
                         or any(isinstance(m, nn.Conv2d) for m in module.modules()))]


def resolve_layer(model: nn.Module, name: str | None) -> tuple[str, nn.Module]:
    """Look a layer up by its module name (no eval); a wrong name lists the valid ones."""
    name = name or default_layer(model)
    modules = dict(model.named_modules())
    if name not in modules or not name:
        candidates = ", ".join(feature_layer_candidates(model))
        raise AgscmError(f"no layer {name!r} in {type(model).__name__}; candidates: {candidates}")
    return name, modules[name]


@contextmanager
def capture_activation(layer: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record the layer's output on forward; the hook is removed on exit, even on error.

    An output that does not require grad (frozen model, constant input) is replaced by a leaf
    that does, so d y / d A exists for clean images too.
    """
    store: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        if not output.requires_grad:
            output = output.detach().requires_grad_(True)
        store.append(output)
        return output

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


class GradCAM:
    """Batched Grad-CAM maps for one class per image, with the logits of the same pass.

    Shapes: images (N, C, H, W) in [0,1], classes (N,) -> maps (N, h, w), logits (N, K).
    The model is run in eval mode and its previous mode is restored.
    """

    def __init__(self, model: nn.Module, layer: str | None = None,
                 first_order: bool = False) -> None:
        self.model = model
        self.layer_name, self.layer = resolve_layer(model, layer)
        self.first_order = first_order

    def __call__(self, images: torch.Tensor, classes: torch.Tensor,
                 create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.enable_grad(), capture_activation(self.layer) as store:
                logits = self.model(images)
                if not store:
                    raise AgscmError(f"layer {self.layer_name!r} was not used in the forward pass")
                activation = store[-1]
                if activation.ndim != 4:
                    raise AgscmError(
                        f"layer {self.layer_name!r} gives a {tuple(activation.shape)} output, not "
                        "a convolutional feature map; choose one of "
                        f"{', '.join(feature_layer_candidates(self.model))}")
                score = logits.gather(1, classes.view(-1, 1)).sum()
                grads = torch.autograd.grad(score, activation, retain_graph=create_graph,
                                            create_graph=create_graph and not self.first_order)[0]
        finally:
            self.model.train(was_training)
        alpha = grads.mean(dim=(2, 3), keepdim=True)
        if self.first_order or not create_graph:
            alpha = alpha.detach()
        if not create_graph:
            activation = activation.detach()
            logits = logits.detach()
        return torch.relu((alpha * activation).sum(dim=1)), logits


def gradcam_distance(clean_maps: torch.Tensor, adversarial_maps: torch.Tensor,
                     normalize: bool = False) -> torch.Tensor:
    """Per-image squared L2 distance ||S(x) - S(x')||^2; S(x) is treated as a constant.

    Raw Grad-CAM maps have a model-dependent scale (tiny for the MNIST CNN, and 10x apart
    between our MNIST models), which would make lambda mean something different on each
    source. `normalize=True` divides both maps by the clean map's maximum (what Grad-CAM
    implementations do before display), floored at 1% of the batch's mean maximum so an
    all-zero clean map cannot blow up. The adversarial map is then capped at the clean peak:
    otherwise the distance grows without bound by *amplifying* the true class's saliency (seen
    on adversarially trained sources, where it swamped the adversarial loss), which helps the
    classifier instead of fooling it. The sum over pixels is kept, as in the paper's
    ||S(x) - S(x')||_2^2.
    """
    clean_maps = clean_maps.detach()
    if normalize:
        peaks = clean_maps.flatten(1).amax(dim=1)
        scale = peaks.clamp_min(0.01 * peaks.mean().clamp_min(1e-12)).view(-1, 1, 1)
        clean_maps = clean_maps / scale
        adversarial_maps = (adversarial_maps / scale).clamp(max=1.0)
    return (clean_maps - adversarial_maps).pow(2).flatten(1).sum(dim=1)


def shape_distance(clean_maps: torch.Tensor, adversarial_maps: torch.Tensor) -> torch.Tensor:
    """Per-image ||S(x)/max S(x) - S'(x')/max S'(x')||^2: where two maps look, not how strongly.

    Targeted mode compares the target class's map on x' with the true class's map on x; their
    scales are unrelated, so each is divided by its own peak (floored, so an empty map stays 0).
    """
    def peak_normalized(maps: torch.Tensor) -> torch.Tensor:
        return maps / maps.flatten(1).amax(dim=1).clamp_min(1e-6).view(-1, 1, 1)

    difference = peak_normalized(clean_maps.detach()) - peak_normalized(adversarial_maps)
    return difference.pow(2).flatten(1).sum(dim=1)


def channel_weights(model: nn.Module, layer: str | None, images: torch.Tensor,
                    classes: torch.Tensor, copies: int = 1, keep: float = 1.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Grad-CAM's channel weights of class `classes` at `layer`, one unit vector per image (N, C).

        alpha_k = mean_ij d y^c / d A^k_ij

    averaged over `copies` of the images in which each value is kept with probability `keep`
    (zeroed otherwise): the aggregate gradient of FIA (Wang et al., ICCV 2021), which keeps
    the weights of features that matter for the class and drops those of one image's detail.
    `copies=1, keep=1` is plain Grad-CAM. Masks draw from `generator` (CPU). No gradient
    reaches the images; the model's mode is restored.
    """
    _, module = resolve_layer(model, layer)
    was_training = model.training
    model.eval()
    total: torch.Tensor | None = None
    try:
        for _ in range(copies):
            masked = images
            if keep < 1:
                mask = torch.rand(images.shape, generator=generator) < keep
                masked = images * mask.to(images.device, images.dtype)
            with torch.enable_grad(), capture_activation(module) as store:
                logits = model(masked.detach())
                score = logits.gather(1, classes.view(-1, 1)).sum()
                grads = torch.autograd.grad(score, store[-1])[0]
            alpha = grads.mean(dim=(2, 3))
            total = alpha if total is None else total + alpha
    finally:
        model.train(was_training)
    assert total is not None, "copies must be >= 1"
    return total / total.norm(dim=1, keepdim=True).clamp_min(1e-12)
