"""Large images in overlapping tiles, so the model's memory stays bounded whatever the size.

onnxruntime's memory grows with the pixels of one call (953 MB peak for a whole 1920x1080
image, measured when tiling was added), so an image larger than the tile runs as tiles of
at most `size` x `size` pixels: each tile's core is kept, and a margin of real neighbouring
pixels around it (instead of reflect padding) gives the convolutions their context at the
seams. The default, 256, runs photos within 7% of 512-pixel tiles and, unlike 384 or 512,
keeps two processes under 300 MB (benchmarks/bench_runtime.py, tile sizes). The generator's
InstanceNorm statistics are then per tile, so a tiled image differs slightly from one
whole-image pass; the eps bound holds in both.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TILE = 256
MARGIN = 8


@dataclass(frozen=True)
class Tile:
    """Rows and columns as (start, stop): `region` is what the model sees, `core` what is
    kept, both in image coordinates."""

    region: tuple[int, int, int, int]  # top, bottom, left, right
    core: tuple[int, int, int, int]

    @property
    def shape(self) -> tuple[int, int]:
        top, bottom, left, right = self.region
        return bottom - top, right - left


def _spans(length: int, size: int) -> list[tuple[int, int, int, int]]:
    """(region start, region stop, core start, core stop) along one axis."""
    if length <= size:
        return [(0, length, 0, length)]
    count = -(-length // (size - 2 * MARGIN))
    bounds = [round(i * length / count) for i in range(count + 1)]
    return [(max(0, start - MARGIN), min(length, stop + MARGIN), start, stop)
            for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]


def tile_grid(height: int, width: int, size: int = DEFAULT_TILE) -> list[Tile]:
    """The tiles covering a height x width image; one whole-image tile when it fits or when
    `size` is 0 (tiling off)."""
    if size == 0:
        return [Tile((0, height, 0, width), (0, height, 0, width))]
    return [Tile((r0, r1, c0, c1), (k0, k1, j0, j1))
            for r0, r1, k0, k1 in _spans(height, size)
            for c0, c1, j0, j1 in _spans(width, size)]
