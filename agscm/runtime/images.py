"""Image files <-> the model's 8-bit pixels, with Pillow.

What happens to each kind of input, so a folder of mixed files gives no surprises:
- EXIF orientation is applied first, so outputs stand the way viewers show the input.
- Colour converts to the model's mode (L or RGB): CMYK, palette, YCbCr, 1-bit and so on
  through Pillow; RGB given to a grey model becomes grey (and the output is grey).
- 16-bit greyscale (Pillow modes I;16* and I) scales to 8 bits by value / 257.
- Alpha (RGBA, LA, PA, palette or colour-key transparency) is not perturbed: the colour
  channels are, and the original alpha is put back unchanged in PNG, WebP and TIFF output;
  JPEG and BMP output drop it.
- Files over `max_pixels` are refused from their header, before any pixel is decoded.
"""

from __future__ import annotations

import errno
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 50_000_000  # a 50-megapixel photo; larger headers are refused as bombs
# --format name -> (file suffix, Pillow format, lossy)
FORMATS = {
    "png": (".png", "PNG", False),
    "jpeg": (".jpg", "JPEG", True),
    "webp": (".webp", "WEBP", True),
    "bmp": (".bmp", "BMP", False),
    "tiff": (".tif", "TIFF", False),
}
DROPS_ALPHA = {"jpeg", "bmp"}
# Suffixes that promise an image: such a file that fails to decode is a failure, not noise.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".webp", ".tif", ".tiff",
                  ".gif", ".ppm", ".pgm", ".pbm", ".pnm"}
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
# What Pillow raises on damaged data besides OSError (truncated files, bad headers), and
# running out of memory on a large image that is still under the pixel limit.
_DECODE_ERRORS = (ValueError, SyntaxError, EOFError, struct.error, IndexError, MemoryError)


class ImageError(Exception):
    """One file cannot be used; the folder run reports it and goes on with the rest."""


class NotAnImage(ImageError):
    """Pillow does not recognise the content (or the file is empty)."""


@dataclass
class Pixels:
    """An image as the model sees it: uint8 (H, W, C), plus the alpha it carried, if any."""

    values: np.ndarray
    alpha: np.ndarray | None = None


def from_pil(image: Image.Image, mode: str) -> Pixels:
    """Orient, split off alpha, and convert a Pillow image to `mode` ('L' or 'RGB')."""
    image = ImageOps.exif_transpose(image)
    alpha = None
    if "A" in image.getbands() or "a" in image.getbands() or "transparency" in image.info:
        image = image.convert("RGBA")
        alpha = np.asarray(image.getchannel("A"))
    if image.mode in _SIXTEEN_BIT:
        wide = np.asarray(image).astype(np.float32)
        image = Image.fromarray(np.clip(np.rint(wide / 257), 0, 255).astype(np.uint8), "L")
    values = np.asarray(image.convert(mode))
    return Pixels(values[..., None] if values.ndim == 2 else values, alpha)


def to_pil(values: np.ndarray, alpha: np.ndarray | None = None) -> Image.Image:
    """uint8 (H, W, C) (+ alpha) -> a Pillow image in L, LA, RGB or RGBA."""
    image = Image.fromarray(values[..., 0] if values.shape[-1] == 1 else values)
    if alpha is not None:
        image.putalpha(Image.fromarray(alpha))
    return image


def read_image(path: Path, mode: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Pixels:
    """Decode one file; every way it can be unusable is an ImageError naming the reason."""
    try:
        if os.stat(path).st_size == 0:
            raise NotAnImage("empty file (0 bytes)")
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(f"refused: {width}x{height} = {width * height:,} pixels is over "
                                 f"the limit of {max_pixels:,} (decompression bomb?)")
            return from_pil(image, mode)
    except UnidentifiedImageError:
        raise NotAnImage("not an image (Pillow does not recognise the content)") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"refused as a decompression bomb ({exc})") from None
    except PermissionError:
        raise ImageError("unreadable: permission denied") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageError("symlink loop") from None
        raise ImageError(f"corrupt or unreadable ({exc})") from None
    except _DECODE_ERRORS as exc:
        raise ImageError(f"corrupt image ({type(exc).__name__}: {exc})") from None


def write_image(pixels: Pixels, path: Path, fmt: str, quality: int) -> None:
    """Encode to `path` (the caller makes it atomic). PNG, BMP and TIFF are lossless."""
    _, pillow_format, lossy = FORMATS[fmt]
    image = to_pil(pixels.values, None if fmt in DROPS_ALPHA else pixels.alpha)
    options: dict[str, object] = {"quality": quality} if lossy else {}
    if fmt == "jpeg":
        options["subsampling"] = 0  # 4:4:4: chroma subsampling would blur the colour perturbation
    image.save(path, format=pillow_format, **options)
