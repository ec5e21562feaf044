"""Image-folder trees packed in a tar archive (`.tar.gz`, `.tgz`, `.tar`, `.tar.xz`, ...).

Read in one streaming pass, never extracted, so nothing is written beside the archive or into the
repository; the tree is laid out as for folders (see agscm.data.layout). Decoding tens of
thousands of JPEGs takes a while, so the decoded split is cached (agscm.data.cache).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from agscm.data.cache import load_cached, save_cached
from agscm.data.decode import decode_image, stack_images
from agscm.data.imageset import ImageSet
from agscm.data.layout import Parts, Tree, is_image, path_parts, plan_split, show
from agscm.errors import AgscmError

SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_DECOMPRESSORS: tuple[tuple[bytes, Callable[[BinaryIO], BinaryIO]], ...] = (
    (b"\x1f\x8b", lambda raw: gzip.GzipFile(fileobj=raw)),
    (b"BZh", lambda raw: bz2.BZ2File(raw)),
    (b"\xfd7zXZ\x00", lambda raw: lzma.LZMAFile(raw)))


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
        with open(path, "rb") as raw, _decompressed(raw) as stream, \
                tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                name = path_parts(member.name)
                if member.isdir():
                    folders.append(name)
                elif member.isfile() and is_image(name):
                    handle = archive.extractfile(member)
                    contents[name] = handle.read() if handle else b""
            # tarfile takes a header cut short for the end of the archive; reading the
            # compressed stream to its end is what tells a truncated file (EOFError), and a
            # plain tar is whole 512-byte blocks
            while stream.read(1 << 20):
                pass
            if stream is raw and raw.tell() % tarfile.BLOCKSIZE:
                raise EOFError("not a whole number of 512-byte tar blocks")
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
        raise AgscmError(f"{path}: unreadable or truncated archive ({exc})") from None
    return contents, Tree(list(contents), folders)


def _decompressed(raw: BinaryIO) -> BinaryIO:
    """`raw`, or its decompressed stream when its first bytes name gzip, bzip2 or xz."""
    magic = raw.read(6)
    raw.seek(0)
    return next((opener(raw) for prefix, opener in _DECOMPRESSORS if magic.startswith(prefix)),
                raw)
