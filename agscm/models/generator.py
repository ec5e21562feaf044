"""The AEG-GC generator: an AdvGAN-style ResNet generator that maps x to a bounded delta.

conv 7x7 stem -> stride-2 downsamplings (two by default) -> residual blocks -> as many
upsamplings -> conv 7x7 head -> tanh. Without downsamplings every block works at full
resolution: on 32x32 colour images the downsampled generator learned one universal pattern
for every image, the full-resolution one image-specific perturbations (docs/RESULTS.md §9).
The bound is exact by construction: L-inf `delta = eps * tanh(scale * raw)`, or L2
`delta = raw * min(1, eps / ||raw||_2)`; an optional fixed Gaussian blur of delta follows
(it keeps the L-inf bound). Fully convolutional: any H, W that are multiples of 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from agscm.contract import NORMS, SIZE_MULTIPLE
from agscm.errors import AgscmError
from agscm.models.smoothing import GaussianBlur

MAX_DOWNSAMPLINGS = SIZE_MULTIPLE.bit_length() - 1  # each halves H and W
OUTPUTS = ("tanh", "clip")  # how the raw output is bounded (GeneratorConfig.output)


@dataclass
class GeneratorConfig:
    """Architecture and bound of a generator; saved with its weights and in the ONNX metadata."""

    channels: int = 1
    width: int = 8  # channels after the stem; doubled by each downsampling
    residual_blocks: int = 4
    downsamplings: int = 2  # stride-2 stages before the residual blocks (0: full resolution)
    eps: float = 0.3
    norm: str = "linf"
    output_scale: float = 1.0  # tanh(scale * raw): larger pushes delta to the corners +-eps
    output: str = "tanh"  # how raw becomes bounded: tanh, or clip (projection onto the box)
    smooth_sigma: float = 0.0  # > 0: blur delta with a Gaussian of this std (pixels)

    def validate(self) -> None:
        if not self.eps > 0:
            raise AgscmError(f"eps must be > 0, got {self.eps}")
        if self.norm == "linf" and self.eps > 1:
            raise AgscmError(f"an L-inf eps above 1 is meaningless in [0,1] pixels, got {self.eps}")
        if self.norm not in NORMS:
            raise AgscmError(f"unknown norm {self.norm!r}; choose one of {', '.join(NORMS)}")
        if self.width < 1 or self.residual_blocks < 0 or self.channels < 1:
            raise AgscmError("generator width and channels must be >= 1, residual blocks >= 0")
        if not 0 <= self.downsamplings <= MAX_DOWNSAMPLINGS:
            raise AgscmError(f"downsamplings must be in 0..{MAX_DOWNSAMPLINGS} (images are padded "
                             f"to multiples of {SIZE_MULTIPLE}), got {self.downsamplings}")
        if not self.output_scale > 0 or self.smooth_sigma < 0:
            raise AgscmError("the output scale must be > 0 and the smoothing sigma >= 0")
        if self.output not in OUTPUTS:
            raise AgscmError(f"unknown generator output {self.output!r}; choose one of "
                             f"{', '.join(OUTPUTS)}")


def _conv_block(inputs: int, outputs: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(inputs, outputs, kernel, stride, kernel // 2, padding_mode="reflect"
                      if kernel > 3 else "zeros", bias=False),
            nn.InstanceNorm2d(outputs, affine=True), nn.ReLU()]


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv_block(channels, channels, 3),
                                  nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
                                  nn.InstanceNorm2d(channels, affine=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    """x in [0,1] (N, C, H, W) -> delta with ||delta|| <= eps; `adversarial(x)` = clip(x + delta)."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        widths = [config.width * 2**stage for stage in range(config.downsamplings + 1)]
        # modules are created in the order of the first version (up, stem, down, blocks,
        # head), so a seed still gives the same initial weights as it always did
        up = [module for inputs, outputs in zip(widths[:0:-1], widths[-2::-1], strict=True)
              for module in (nn.ConvTranspose2d(inputs, outputs, 3, 2, 1, output_padding=1,
                                                bias=False),
                             nn.InstanceNorm2d(outputs, affine=True), nn.ReLU())]
        self.body = nn.Sequential(
            *_conv_block(config.channels, widths[0], 7),
            *(module for inputs, outputs in zip(widths[:-1], widths[1:], strict=True)
              for module in _conv_block(inputs, outputs, 3, 2)),
            *[ResidualBlock(widths[-1]) for _ in range(config.residual_blocks)],
            *up,
            nn.Conv2d(widths[0], config.channels, 7, 1, 3, padding_mode="reflect"),
        )
        self.smooth = GaussianBlur(config.channels, config.smooth_sigma) if config.smooth_sigma else None

    def perturbation(self, x: torch.Tensor) -> torch.Tensor:
        """The bounded delta for a batch whose H and W are multiples of 4."""
        if x.shape[-1] % SIZE_MULTIPLE or x.shape[-2] % SIZE_MULTIPLE:
            raise AgscmError(f"image size {tuple(x.shape[-2:])} is not a multiple of "
                             f"{SIZE_MULTIPLE}; pad it first")
        scaled = self.config.output_scale * self.body(x)
        # tanh saturates smoothly; clip is the projection of the generator papers (CDA, LTP,
        # BIA): the raw output, in units of eps, projected onto the box, its gradient cut
        # where it lies outside
        raw = torch.tanh(scaled) if self.config.output == "tanh" else scaled.clamp(-1, 1)
        if self.config.norm == "linf":
            delta = self.config.eps * raw
        else:
            norms = raw.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            delta = raw * (self.config.eps / norms).clamp(max=1.0)
        return self.smooth(delta) if self.smooth is not None else delta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The adversarial image clip(x + delta, 0, 1)."""
        return (x + self.perturbation(x)).clamp(0, 1)
