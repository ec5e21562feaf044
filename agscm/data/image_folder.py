"""Image folders on disk: `ROOT/<split>/<class>/<image>` or `ROOT/<class>/<image>`.

See agscm.data.layout for how a split and its classes are found (the flat layout holds out a
fixed fifth of each class as the test split).
"""

from __future__ import annotations

import os
from pathlib import Path

from agscm.data.decode import decode_image, stack_images
from agscm.data.imageset import ImageSet
from agscm.data.layout import Tree, is_image, plan_split
from agscm.errors import AgscmError


def list_tree(root: Path) -> Tree:
    """Every image file and folder under `root`, relative to it (symbolic links followed once)."""
    images, folders, seen = [], [], set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a link back up the tree
            dirnames.clear()
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        relative = Path(dirpath).relative_to(root).parts
        folders += [(*relative, d) for d in dirnames]
        images += [p for p in ((*relative, f) for f in filenames) if is_image(p)]
    return Tree(images, folders)


def load_image_folder(root: Path, split: str) -> ImageSet:
    """Decode every image of `split`; all must share one size (modes are unified)."""
    classes, items = plan_split(list_tree(root), split, str(root))
    paths = [root.joinpath(*path) for path, _ in items]
    pixels = [decode_image(_read(path), str(path)) for path in paths]
    return stack_images(pixels, [label for _, label in items], [str(p) for p in paths], classes,
                        f"{root.name}/{split}")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AgscmError(f"{path}: cannot read image ({exc.strerror or exc})") from None
