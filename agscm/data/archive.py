"""Image-folder trees packed in a tar archive (`.tar.gz`, `.tgz`, `.tar`, `.tar.xz`, ...).

Read in one streaming pass, never extracted, so nothing is written beside the archive or into the
repository; the tree is laid out as for folders (see agscm.data.layout). Decoding tens of
thousands of JPEGs takes a while, so the decoded split is cached (agscm.data.cache).
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path

from agscm.data.cache import load_cached, save_cached
from agscm.data.decode import decode_image, stack_images
from agscm.data.imageset import ImageSet
from agscm.data.layout import Parts, Tree, is_image, path_parts, plan_split, show
from agscm.errors import AgscmError

SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def is_archive_name(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


def load_archive(path: Path, split: str, cache: bool = True) -> ImageSet:
    """One split of the tree in the archive at `path`; `cache` reuses or saves the decoded split."""
    if cache and (cached := load_cached(path, split)) is not None:
        return cached
    data = _decode_split(path, split)
    if cache:
        save_cached(path, split, data)
    return data


def _decode_split(path: Path, split: str) -> ImageSet:
    contents, tree = _read_members(path)
    classes, items = plan_split(tree, split, str(path))
    where = [f"{path}:{show(member)}" for member, _ in items]
    pixels = [decode_image(contents[member], at)
              for (member, _), at in zip(items, where, strict=True)]
    return stack_images(pixels, [label for _, label in items], where, classes,
                        f"{path.name}/{split}")


def _read_members(path: Path) -> tuple[dict[Parts, bytes], Tree]:
    """The bytes of every image member and the tree they form, in one pass over the stream.

    All images are kept (compressed, so smaller than the decoded split) because which of them
    form the split is only known once the whole tree has been seen.
    """
    contents: dict[Parts, bytes] = {}
    folders = []
    try:
        with tarfile.open(path, "r|*") as archive:
            for member in archive:
                name = path_parts(member.name)
                if member.isdir():
                    folders.append(name)
                elif member.isfile() and is_image(name):
                    handle = archive.extractfile(member)
                    contents[name] = handle.read() if handle else b""
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise AgscmError(f"{path}: unreadable or truncated archive ({exc})") from None
    return contents, Tree(list(contents), folders)
