"""CIFAR-10 python batches: `data_batch_1..5`, `test_batch` and `batches.meta` in one folder.

The batches are pickles, and unpickling can run any code the file names. The unpickler here
only builds what the batches hold (dicts, lists, strings, numbers and numpy arrays) and refuses
every other global, so a malicious file fails with an error instead of running.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from agscm.data.imageset import ImageSet
from agscm.errors import AgscmError

SPLIT_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
META_FILE = "batches.meta"
SIDE = 32

# The callables numpy's pickles name, taken from numpy itself so that both the numpy 1.x
# (`numpy.core`) and 2.x (`numpy._core`) spellings map onto the installed functions.
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]
_SCALAR = np.int64(0).__reduce__()[0]
_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # how protocol 2 spells bytes under Python 3
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _RECONSTRUCT for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _FROMBUFFER for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): _SCALAR for core in ("core", "_core")},
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}, which a CIFAR-10 "
                                         "batch never contains")
        return _ALLOWED[(module, name)]


def is_cifar_folder(root: Path) -> bool:
    names = [META_FILE, *SPLIT_FILES["train"], *SPLIT_FILES["test"]]
    return any((root / name).exists() for name in names)


def read_batch(path: Path) -> dict[str, Any]:
    """Unpickle one batch safely; keys as str whether written by Python 2 (bytes) or 3."""
    try:
        with path.open("rb") as handle:
            content = _BatchUnpickler(handle, encoding="latin1").load()
    except FileNotFoundError:
        raise AgscmError(f"{path}: missing CIFAR-10 batch file") from None
    except OSError as exc:
        raise AgscmError(f"{path}: cannot read CIFAR-10 batch ({exc.strerror or exc})") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise AgscmError(f"{path}: not a valid CIFAR-10 batch ({exc})") from None
    if not isinstance(content, dict):
        raise AgscmError(f"{path}: not a CIFAR-10 batch (holds a {type(content).__name__}, "
                         "not a dict)")
    return {_text(key): value for key, value in content.items()}


def load_cifar_batches(root: Path, split: str) -> ImageSet:
    """All batches of `split` as one (N, 3, 32, 32) set, class names from batches.meta."""
    names = _field(read_batch(root / META_FILE), "label_names", root / META_FILE)
    if not isinstance(names, (list, tuple)) or not names:
        raise AgscmError(f"{root / META_FILE}: label_names is not a list of class names")
    classes = [_text(name) for name in names]
    images, labels = [], []
    for name in SPLIT_FILES[split]:
        data, batch_labels = _check_batch(root / name, len(classes))
        images.append(data.reshape(-1, 3, SIDE, SIDE))
        labels.append(batch_labels)
    return ImageSet(np.concatenate(images), np.concatenate(labels), classes, f"{root.name}/{split}")


def _check_batch(path: Path, class_count: int) -> tuple[np.ndarray, np.ndarray]:
    batch = read_batch(path)
    data = _field(batch, "data", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * SIDE * SIDE:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise AgscmError(f"{path}: wrong shape, data is {got}, expected uint8 (N, 3072)")
    try:
        labels = np.asarray(_field(batch, "labels", path), dtype=np.int64)
    except (TypeError, ValueError):
        raise AgscmError(f"{path}: labels are not a list of integers") from None
    if labels.shape != (len(data),):
        raise AgscmError(f"{path}: {len(data)} images but labels of shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= class_count):
        raise AgscmError(f"{path}: labels run from {labels.min()} to {labels.max()}, but "
                         f"{META_FILE} names {class_count} classes")
    return data, labels


def _field(batch: dict[str, Any], key: str, path: Path) -> Any:
    if key not in batch:
        raise AgscmError(f"{path}: not a CIFAR-10 batch, no {key!r} entry "
                         f"(has {', '.join(sorted(batch)) or 'nothing'})")
    return batch[key]


def _text(value: str | bytes) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)
