"""Which files of an image-folder tree make up one split, and their labels.

Pure path logic, shared by folders on disk and `.tar.gz` archives so both read a tree the same
way. Two layouts are understood (names starting with '.' are ignored everywhere):

- split layout: `ROOT/<split>/<class>/<image>`, the split folder named `train` (or `training`)
  and `test` (or `val`, `validation`). The class list is the sorted union of the class folders of
  both splits, so a label means the same class in each; every split must hold every class.
- flat layout: `ROOT/<class>/<image>` with no split folders. Then a fixed fifth of each class is
  held out as the test split, chosen by a hash of the image's path: the choice is the same on
  every machine, does not change when images are added, and keeps train and test disjoint
  (training on the whole folder and testing on the same images would only measure memory).

Images may sit in sub-folders of their class folder. A tree wrapped in one extra folder (as most
archives are, e.g. `cifar10/train/...`) is read from inside that folder.
"""

from __future__ import annotations

import hashlib

from agscm.errors import AgscmError

SPLIT_FOLDERS = {"train": ("train", "training"), "test": ("test", "val", "validation")}
SPLIT_NAMES = frozenset(name for names in SPLIT_FOLDERS.values() for name in names)
HOLDOUT_BUCKETS = 5  # flat layout: one bucket in five goes to the test split
IMAGE_SUFFIXES = frozenset({"png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff", "ppm",
                            "pgm", "pbm"})

Parts = tuple[str, ...]  # a relative path as its components; () is the root
Items = list[tuple[Parts, int]]  # (image path, label)


def path_parts(name: str) -> Parts:
    """Components of a '/'-separated relative name, without empty and '.' parts."""
    return tuple(part for part in name.split("/") if part not in ("", "."))


def is_image(parts: Parts) -> bool:
    """An image by its name: a known suffix and no hidden component (e.g. macOS `._x.jpg`)."""
    return (bool(parts) and parts[-1].rpartition(".")[2].lower() in IMAGE_SUFFIXES
            and not _hidden(parts))


def show(parts: Parts) -> str:
    return "/".join(parts)


def _hidden(parts: Parts) -> bool:
    return any(part.startswith(".") for part in parts)


class Tree:
    """The image files and folders of a tree, as paths relative to its root."""

    def __init__(self, images: list[Parts], folders: list[Parts]) -> None:
        self.folders = {f for f in folders if not _hidden(f)}
        self._under: dict[Parts, list[Parts]] = {}
        for image in sorted(images):
            for depth in range(len(image)):  # archives need not list a file's folders
                self._under.setdefault(image[:depth], []).append(image)
        self.folders.update(self._under)

    def subfolders(self, folder: Parts) -> list[str]:
        depth = len(folder) + 1
        return sorted(f[-1] for f in self.folders if len(f) == depth and f[:-1] == folder)

    def images_in(self, folder: Parts, direct: bool = False) -> list[Parts]:
        images = self._under.get(folder, [])
        return [p for p in images if len(p) == len(folder) + 1] if direct else images


def plan_split(tree: Tree, split: str, where: str) -> tuple[list[str], Items]:
    """The class names and the (image path, label) pairs of `split`, in a fixed mixed order.

    Folders are sorted by class, so the first N images would hold only the first classes; the
    pairs are ordered by a hash of their path instead, the same on every machine, so that
    `ImageSet.subset(n)` is a fair sample. `where` names the tree in errors.
    """
    base = _unwrap(tree)
    found = {s: next((n for n in SPLIT_FOLDERS[s] if n in tree.subfolders(base)), None)
             for s in SPLIT_FOLDERS}
    if not any(found.values()):
        classes = [c for c in tree.subfolders(base) if c not in SPLIT_NAMES]
        return classes, _mixed(_holdout(tree, base, classes, split, where))
    folder = found[split]
    if folder is None:
        present = ", ".join(f"{n}/" for n in found.values() if n)
        raise AgscmError(f"{where}: missing split, no {split} folder "
                         f"({' or '.join(SPLIT_FOLDERS[split])}) beside {present}")
    classes = sorted({c for n in found.values() if n for c in tree.subfolders((*base, n))})
    if not classes:
        raise AgscmError(f"{where}/{show((*base, folder))}: no class folders "
                         "(expected <class>/<image>)")
    items = []
    for label, name in enumerate(classes):
        class_dir = (*base, folder, name)
        if class_dir not in tree.folders:
            others = [n for n in found.values() if n and n != folder]
            raise AgscmError(f"{where}/{show(class_dir)}: missing class folder (present in "
                             f"{', '.join(others)}/)")
        items += [(p, label) for p in _nonempty(tree, class_dir, where)]
    return classes, _mixed(items)


def _unwrap(tree: Tree) -> Parts:
    """Step into a lone wrapper folder: one that is not a split and holds no images itself."""
    base: Parts = ()
    while True:
        children = tree.subfolders(base)
        if len(children) != 1 or children[0] in SPLIT_NAMES or tree.images_in(base, direct=True):
            return base
        inner = (*base, children[0])
        if tree.images_in(inner, direct=True):
            return base  # a single class folder, not a wrapper
        base = inner


def _nonempty(tree: Tree, class_dir: Parts, where: str) -> list[Parts]:
    images = tree.images_in(class_dir)
    if not images:
        raise AgscmError(f"{where}/{show(class_dir)}: empty class folder (no images)")
    return images


def _holdout(tree: Tree, base: Parts, classes: list[str], split: str, where: str) -> Items:
    if not classes:
        raise AgscmError(f"{where}: no class folders (expected <split>/<class>/<image> or "
                         "<class>/<image>)")
    items = []
    for label, name in enumerate(classes):
        for path in _nonempty(tree, (*base, name), where):
            if (_bucket(path[len(base):]) == 0) == (split == "test"):
                items.append((path, label))
    if not items:
        raise AgscmError(f"{where}: too few images to hold out a {split} split "
                         f"(flat <class>/<image> layout keeps 1 in {HOLDOUT_BUCKETS} for test)")
    return items


def _digest(relative: Parts) -> bytes:
    return hashlib.sha256(show(relative).encode()).digest()


def _bucket(relative: Parts) -> int:
    return int.from_bytes(_digest(relative)[:4], "big") % HOLDOUT_BUCKETS


def _mixed(items: Items) -> Items:
    return sorted(items, key=lambda item: _digest(item[0]))
