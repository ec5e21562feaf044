"""IDX files (MNIST and any MNIST-format set), gzipped or raw."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from agscm.data.imageset import ImageSet
from agscm.errors import AgscmError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file; errors name the file and what is wrong with it."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except OSError as exc:
        raise AgscmError(f"{path}: cannot read IDX file ({exc.strerror or exc})") from None
    except EOFError:
        raise AgscmError(f"{path}: truncated gzip stream") from None
    except zlib.error as exc:
        raise AgscmError(f"{path}: corrupt gzip stream ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise AgscmError(f"{path}: wrong magic number {raw[:4].hex() or '(empty file)'}, "
                         "not an IDX file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise AgscmError(f"{path}: truncated header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header < expected:
        raise AgscmError(f"{path}: truncated, {len(raw) - header} data bytes for shape {shape}, "
                         f"expected {expected}")
    return np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape)), offset=header).reshape(shape)


def load_idx_pair(images_path: Path, labels_path: Path,
                  classes: list[str] | None = None) -> ImageSet:
    """An image file (N, H, W) or (N, H, W, C) and a label file (N,) as one ImageSet."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim not in (3, 4) or images.dtype != np.uint8:
        raise AgscmError(f"{images_path}: expected uint8 images of 3 or 4 dims, got {images.ndim}")
    if labels.ndim != 1:
        raise AgscmError(f"{labels_path}: expected a 1-D label file, got {labels.ndim} dims")
    if len(images) != len(labels):
        raise AgscmError(f"{images_path}: {len(images)} images but {labels_path.name} has "
                         f"{len(labels)} labels")
    chw = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    if classes is None:
        _require_contiguous(labels, labels_path)
    names = classes or [str(i) for i in range(int(labels.max()) + 1 if len(labels) else 0)]
    return ImageSet(np.ascontiguousarray(chw), labels.astype(np.int64), names, images_path.name)


def _require_contiguous(labels: np.ndarray, path: Path) -> None:
    """IDX names no classes, so they are 0..max label; a label past a gap (9, then 42) is a
    corrupt file, not 33 empty classes."""
    used = np.unique(labels)
    if len(used) and used[-1] != len(used) - 1:
        missing = int(np.setdiff1d(np.arange(used[-1] + 1), used)[0])
        stray = int(used[used > missing][0])
        raise AgscmError(f"{path}: label {stray} (first at image {int(np.argmax(labels == stray))})"
                         f" but no image has label {missing}; labels must be 0..K-1")


def find_idx_split(root: Path, split: str) -> tuple[Path, Path] | None:
    """Locate `<split>-images-idx3-ubyte[.gz]` and its labels (MNIST names; test = t10k).

    Each file may be gzipped or not, and `-images.idx3-ubyte` (a common re-packing) is accepted.
    """
    prefixes = ["t10k", "test"] if split == "test" else ["train"]
    for prefix in prefixes:
        images = _first_existing(root, f"{prefix}-images", "idx3-ubyte")
        labels = _first_existing(root, f"{prefix}-labels", "idx1-ubyte")
        if images and labels:
            return images, labels
    return None


def _first_existing(root: Path, stem: str, kind: str) -> Path | None:
    names = [f"{stem}{sep}{kind}{gz}" for sep in "-." for gz in ("", ".gz")]
    return next((root / n for n in names if (root / n).exists()), None)
