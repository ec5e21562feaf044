"""Turn uint8 ImageSets into shuffled float batches without a DataLoader (it is all in memory)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from agscm.data import ImageSet


def iterate_indexed_batches(
        data: ImageSet, batch_size: int, shuffle: bool = False,
        generator: torch.Generator | None = None, device: str | torch.device = "cpu",
) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """Yield (positions in `data`, images in [0,1] float32, labels int64) batches.

    The positions let a caller look up per-image values it computed once; the order comes
    from `generator`.
    """
    count = len(data)
    order = torch.randperm(count, generator=generator).numpy() if shuffle else np.arange(count)
    for start in range(0, count, batch_size):
        index = order[start:start + batch_size]
        images = torch.from_numpy(data.images[index]).to(device, torch.float32).div_(255.0)
        labels = torch.from_numpy(data.labels[index]).to(device)
        yield index, images, labels


def iterate_batches(data: ImageSet, batch_size: int, shuffle: bool = False,
                    generator: torch.Generator | None = None,
                    device: str | torch.device = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (images in [0,1] float32, labels int64) batches; the order comes from `generator`."""
    for _, images, labels in iterate_indexed_batches(data, batch_size, shuffle, generator, device):
        yield images, labels


AUGMENTATIONS = ("none", "noise", "shift", "shift-flip")


def augment(images: torch.Tensor, mode: str, generator: torch.Generator,
            noise: float = 0.0) -> torch.Tensor:
    """"noise": uniform noise in [-noise, noise] on a random half of the images (clipped to
    [0, 1]), so random perturbations of the attack budget alone do not fool the model (natural
    MNIST nets with global average pooling otherwise fall to them). "shift": random
    translations by up to 1/8 of the side (zero padding, then a random crop back to the
    original size); "shift-flip" adds random horizontal flips: the standard CIFAR-10
    augmentation. Runs on the batch's device; the draws come from the CPU `generator`, so a
    resumed run sees the same augmentations."""
    if mode == "none":
        return images
    if mode == "noise":
        count = images.shape[0]
        amplitude = (torch.rand(count, generator=generator) < 0.5).float() * noise
        offsets = (torch.rand(images.shape, generator=generator) * 2 - 1) * amplitude.view(-1, 1, 1, 1)
        return (images + offsets.to(images.device)).clamp(0, 1)
    count, _, height, width = images.shape
    pad = max(1, min(height, width) // 8)
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (count, 1), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * pad + 1, (count, 1), generator=generator).to(images.device)
    rows = (dy + torch.arange(height, device=images.device)).view(count, 1, height, 1)
    cols = (dx + torch.arange(width, device=images.device)).view(count, 1, 1, width)
    batch = torch.arange(count, device=images.device).view(count, 1, 1, 1)
    channel = torch.arange(images.shape[1], device=images.device).view(1, -1, 1, 1)
    shifted = padded[batch, channel, rows, cols]
    if mode == "shift-flip":
        flip = (torch.rand(count, generator=generator) < 0.5).to(images.device)
        shifted = torch.where(flip.view(count, 1, 1, 1), shifted.flip(3), shifted)
    return shifted


def batch_count(data: ImageSet, batch_size: int) -> int:
    return (len(data) + batch_size - 1) // batch_size


def channel_stats(data: ImageSet) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the [0,1] pixels, for a model's built-in normalisation."""
    pixels = data.images.astype(np.float64) / 255.0
    mean = pixels.mean(axis=(0, 2, 3))
    std = pixels.std(axis=(0, 2, 3))
    return [float(m) for m in mean], [float(max(s, 1e-3)) for s in std]


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: ImageSet, batch_size: int = 500,
             device: str | torch.device = "cpu") -> float:
    """Top-1 accuracy on clean images; the model's mode is restored afterwards."""
    was_training = model.training
    model.eval()
    correct = 0
    for images, labels in iterate_batches(data, batch_size, device=device):
        correct += int((model(images).argmax(1) == labels).sum())
    model.train(was_training)
    return correct / max(len(data), 1)
