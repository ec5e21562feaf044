"""Decode image files into one uint8 NCHW array: same size, one mode, EXIF orientation applied."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps

from agscm.data.imageset import ImageSet
from agscm.errors import AgscmError

GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


def decode_image(data: bytes, where: str) -> np.ndarray:
    """Pixels as (H, W) for grey-scale files and (H, W, 3) for all others, upright per EXIF."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            upright = ImageOps.exif_transpose(image)
            return np.asarray(upright.convert("L" if upright.mode in GRAY_MODES else "RGB"))
    except Image.DecompressionBombError:
        raise AgscmError(f"{where}: refused, too many pixels (a decompression bomb?)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise AgscmError(f"{where}: unreadable or corrupt image ({exc})") from None


def stack_images(pixels: Sequence[np.ndarray], labels: Sequence[int], where: Sequence[str],
                 classes: list[str], name: str) -> ImageSet:
    """One ImageSet from decoded images, all converted to the mode most of them have.

    Mixed sizes are an error (resizing would change the data silently); mixed modes are not, as
    folders often hold a few grey-scale images among colour ones (or the reverse).
    """
    if not pixels:
        raise AgscmError(f"{name}: no images")
    size = pixels[0].shape[:2]
    for array, path in zip(pixels, where, strict=True):
        if array.shape[:2] != size:
            raise AgscmError(f"{path}: mixed image sizes, {_wh(array.shape)} here but "
                             f"{_wh(size)} in {where[0]}")
    gray = Counter(array.ndim == 2 for array in pixels)
    to_gray = gray[True] > gray[False]  # a tie keeps colour, which loses nothing
    images = np.stack([_as_mode(array, to_gray) for array in pixels])
    chw = images[:, None] if to_gray else images.transpose(0, 3, 1, 2)
    return ImageSet(np.ascontiguousarray(chw), np.asarray(labels, dtype=np.int64), classes, name)


def _as_mode(array: np.ndarray, gray: bool) -> np.ndarray:
    if (array.ndim == 2) == gray:
        return array
    return np.asarray(Image.fromarray(array).convert("L" if gray else "RGB"))


def _wh(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]}"
