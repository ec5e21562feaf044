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
    width: int = 16  # base width (not used by madry-cnn)
    batch_norm: bool = True  # resnet-small and vgg-small only: False drops every BatchNorm


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


def _norm(channels: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs, batch norm, identity or 1x1 shortcut)."""

    residual_branch_end = "bn2"  # the branch's last module (agscm.models.skip_gradient)

    def __init__(self, inputs: int, outputs: int, stride: int, batch_norm: bool = True) -> None:
        super().__init__()
        bias = not batch_norm
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=bias)
        self.bn1 = _norm(outputs, batch_norm)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=bias)
        self.bn2 = _norm(outputs, batch_norm)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=bias),
                                          _norm(outputs, batch_norm))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """A ResNet-8 (three stages of one basic block) that trains on 2 CPU cores for CIFAR-10.

    Without batch norm (`batch_norm=False`) it suits MNIST targets: with it, a naturally trained
    MNIST net has only seen black backgrounds and random noise of the attack's size already
    fools it (we measured 9.6% accuracy), which would make it useless for comparing attacks."""

    default_gradcam_layer = "stage3"

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        w, norm = config.width, config.batch_norm
        self.normalize = Normalize(config.mean, config.std)
        self.stem = nn.Sequential(nn.Conv2d(config.channels, w, 3, 1, 1, bias=not norm),
                                  _norm(w, norm), nn.ReLU())
        self.stage1 = BasicBlock(w, w, 1, norm)
        self.stage2 = BasicBlock(w, 2 * w, 2, norm)
        self.stage3 = BasicBlock(2 * w, 4 * w, 2, norm)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * w, config.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage3(self.stage2(self.stage1(self.stem(self.normalize(x)))))
        return self.fc(self.pool(x).flatten(1))


class MLP(nn.Module):
    """A fully connected net (flatten, two hidden ReLU layers of 32*width units): no convolution,
    so no Grad-CAM map, and the architecture least like the convolutional sources (a target)."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        height, width = config.image_size
        hidden = 32 * config.width
        self.normalize = Normalize(config.mean, config.std)
        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(config.channels * height * width, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, config.classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.normalize(x))


def _conv_bn(inputs: int, outputs: int, stride: int = 1, groups: int = 1, kernel: int = 3,
             batch_norm: bool = True) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inputs, outputs, kernel, stride, kernel // 2, groups=groups,
                                   bias=not batch_norm), _norm(outputs, batch_norm), nn.ReLU())


class VGGSmall(nn.Module):
    """A VGG-style plain CNN: three stages of two 3x3 conv-BN-ReLU layers (width w, 2w, 4w),
    max pooling between them, global average pooling, one linear layer. No shortcuts.
    `batch_norm=False` drops the batch norm (for MNIST targets; see SmallResNet)."""

    default_gradcam_layer = "features.stage3"

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        w, norm = config.width, config.batch_norm
        self.normalize = Normalize(config.mean, config.std)
        self.features = nn.Sequential()
        self.features.add_module("stage1", nn.Sequential(
            _conv_bn(config.channels, w, batch_norm=norm), _conv_bn(w, w, batch_norm=norm)))
        self.features.add_module("pool1", nn.MaxPool2d(2))
        self.features.add_module("stage2", nn.Sequential(
            _conv_bn(w, 2 * w, batch_norm=norm), _conv_bn(2 * w, 2 * w, batch_norm=norm)))
        self.features.add_module("pool2", nn.MaxPool2d(2))
        self.features.add_module("stage3", nn.Sequential(
            _conv_bn(2 * w, 4 * w, batch_norm=norm), _conv_bn(4 * w, 4 * w, batch_norm=norm)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * w, config.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(self.normalize(x))).flatten(1))


class Residual(nn.Module):
    """x + two conv-BN-ReLU layers (the ResNet-9 residual unit)."""

    residual_branch_end = "body"  # the branch's last module (agscm.models.skip_gradient)

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(channels, channels), _conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    """The DAWNBench ResNet-9 (Page, 2018) at base width w: prep conv (w); conv (2w), pool,
    residual; conv (4w), pool; conv (8w), pool, residual; global max pool; linear. Width 64 is
    the original (6.5M parameters); the zoo uses a narrower one that trains in minutes on a GPU.
    """

    default_gradcam_layer = "layer3"

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        w = config.width
        self.normalize = Normalize(config.mean, config.std)
        self.prep = _conv_bn(config.channels, w)
        self.layer1 = nn.Sequential(_conv_bn(w, 2 * w), nn.MaxPool2d(2), Residual(2 * w))
        self.layer2 = nn.Sequential(_conv_bn(2 * w, 4 * w), nn.MaxPool2d(2))
        self.layer3 = nn.Sequential(_conv_bn(4 * w, 8 * w), nn.MaxPool2d(2), Residual(8 * w))
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(8 * w, config.classes, bias=False)
        self.scale = 0.125  # the original's logit scaling, which steadies training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.prep(self.normalize(x)))))
        return self.fc(self.pool(x).flatten(1)) * self.scale


class DepthwiseSeparable(nn.Module):
    """MobileNet's unit: a 3x3 depthwise conv-BN-ReLU, then a 1x1 pointwise conv-BN-ReLU."""

    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(inputs, inputs, stride, groups=inputs),
                                  _conv_bn(inputs, outputs, kernel=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class MobileNetSmall(nn.Module):
    """A MobileNet-v1-style net (Howard et al., 2017) for small images: a conv stem (w), then
    depthwise-separable units w -> 2w -> 4w (stride 2) -> 4w -> 8w (stride 2) -> 8w, global
    average pooling, linear. Factorised convolutions: structurally unlike the ResNet and VGG."""

    default_gradcam_layer = "blocks.5"

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        w = config.width
        self.normalize = Normalize(config.mean, config.std)
        self.stem = _conv_bn(config.channels, w)
        plan = [(w, 2 * w, 1), (2 * w, 4 * w, 2), (4 * w, 4 * w, 1), (4 * w, 8 * w, 2),
                (8 * w, 8 * w, 1), (8 * w, 8 * w, 1)]
        self.blocks = nn.Sequential(*(DepthwiseSeparable(i, o, s) for i, o, s in plan))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * w, config.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.blocks(self.stem(self.normalize(x)))).flatten(1))


ARCHITECTURES: dict[str, Callable[[ClassifierConfig], nn.Module]] = {
    "madry-cnn": MadryCNN,
    "resnet-small": SmallResNet,
    "resnet9": ResNet9,
    "vgg-small": VGGSmall,
    "mobilenet-small": MobileNetSmall,
    "mlp": MLP,
}
# The base width each architecture gets when a config leaves it out (None).
DEFAULT_WIDTHS = {"madry-cnn": 16, "resnet-small": 16, "resnet9": 32, "vgg-small": 32,
                  "mobilenet-small": 32, "mlp": 16}


def build_classifier(config: ClassifierConfig) -> nn.Module:
    """Instantiate the architecture a config names."""
    if config.arch not in ARCHITECTURES:
        raise AgscmError(f"unknown architecture {config.arch!r}; choose one of "
                         f"{', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[config.arch](config)


def default_arch(channels: int) -> str:
    """The paper's source architecture: the MadryLab CNN for grey images, a ResNet for colour."""
    return "madry-cnn" if channels == 1 else "resnet-small"


def classifier_config(channels: int, image_size: tuple[int, int], classes: int,
                      mean: list[float], std: list[float], arch: str | None = None,
                      width: int | None = None, batch_norm: bool = True) -> ClassifierConfig:
    """A config for `arch` (default: `default_arch`) at `width` (default: the arch's own)."""
    arch = arch or default_arch(channels)
    if arch not in ARCHITECTURES:
        raise AgscmError(f"unknown architecture {arch!r}; choose one of "
                         f"{', '.join(sorted(ARCHITECTURES))}")
    if width is not None and width < 1:
        raise AgscmError(f"width must be >= 1, got {width}")
    return ClassifierConfig(arch=arch, channels=channels, classes=classes, image_size=image_size,
                            mean=mean, std=std,
                            width=width if width is not None else DEFAULT_WIDTHS[arch],
                            batch_norm=batch_norm)
