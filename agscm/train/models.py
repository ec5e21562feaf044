"""Source and target classifiers. Each wraps its own input normalisation: callers speak [0,1]."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from agscm.errors import AgscmError


@dataclass
class ClassifierConfig:
    """Everything needed to rebuild a classifier; saved as JSON inside its checkpoint."""

    arch: str = "madry-cnn"
    channels: int = 1
    classes: int = 10
    image_size: tuple[int, int] = (28, 28)
    mean: list[float] = field(default_factory=lambda: [0.0])
    std: list[float] = field(default_factory=lambda: [1.0])
    width: int = 16  # base width, used by resnet-small


class Normalize(nn.Module):
    """(x - mean) / std per channel, so the model's input is plain [0,1] pixels."""

    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class MadryCNN(nn.Module):
    """The MadryLab MNIST challenge CNN: conv 32@5x5, pool, conv 64@5x5, pool, fc 1024, fc 10."""

    default_gradcam_layer = "relu2"

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        height, width = config.image_size
        self.normalize = Normalize(config.mean, config.std)
        self.conv1 = nn.Conv2d(config.channels, 32, 5, padding=2)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(64 * (height // 4) * (width // 4), 1024)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(1024, config.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(self.normalize(x))))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc2(self.relu3(self.fc1(x.flatten(1))))


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs, batch norm, identity or 1x1 shortcut)."""

    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False),
                                          nn.BatchNorm2d(outputs))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """A ResNet-8 (three stages of one basic block) that trains on 2 CPU cores for CIFAR-10."""

    default_gradcam_layer = "stage3"

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        w = config.width
        self.normalize = Normalize(config.mean, config.std)
        self.stem = nn.Sequential(nn.Conv2d(config.channels, w, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(w), nn.ReLU())
        self.stage1 = BasicBlock(w, w, 1)
        self.stage2 = BasicBlock(w, 2 * w, 2)
        self.stage3 = BasicBlock(2 * w, 4 * w, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * w, config.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage3(self.stage2(self.stage1(self.stem(self.normalize(x)))))
        return self.fc(self.pool(x).flatten(1))


ARCHITECTURES: dict[str, Callable[[ClassifierConfig], nn.Module]] = {
    "madry-cnn": MadryCNN,
    "resnet-small": SmallResNet,
}


def build_classifier(config: ClassifierConfig) -> nn.Module:
    """Instantiate the architecture a config names."""
    if config.arch not in ARCHITECTURES:
        raise AgscmError(f"unknown architecture {config.arch!r}; choose one of "
                         f"{', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[config.arch](config)


def default_classifier_config(channels: int, image_size: tuple[int, int], classes: int,
                              mean: list[float], std: list[float]) -> ClassifierConfig:
    """MadryCNN for one-channel data, the small ResNet for colour data."""
    arch = "madry-cnn" if channels == 1 else "resnet-small"
    return ClassifierConfig(arch=arch, channels=channels, classes=classes,
                            image_size=image_size, mean=mean, std=std)
