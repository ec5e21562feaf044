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
Every conversion that loses information (colour to grey, 16 to 8 bits, alpha dropped) is
named in `Pixels.converted`, which the manifest and the run's warnings report; with
`strict_channels` an image whose colour does not match the model (colour to a grey model,
grey to a colour one) is refused instead.
"""

from __future__ import annotations

import errno
import io
import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from agscm.runtime.png import encode_png

DEFAULT_MAX_PIXELS = 50_000_000  # a 50-megapixel photo; larger headers are refused as bombs


def admit_pixels(max_pixels: int) -> None:
    """Let Pillow open images of up to `max_pixels` quietly: the runtime refuses larger headers
    itself, so Pillow's warning is noise, and its hard limit (twice its warning size) is
    raised only when a run asks for more."""
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    if max_pixels > (Image.MAX_IMAGE_PIXELS or 0):
        Image.MAX_IMAGE_PIXELS = max_pixels

# --format name -> (file suffix, Pillow format, lossy)
FORMATS = {
    "png": (".png", "PNG", False),
    "jpeg": (".jpg", "JPEG", True),
    "webp": (".webp", "WEBP", True),
    "bmp": (".bmp", "BMP", False),
    "tiff": (".tif", "TIFF", False),
}
DROPS_ALPHA = {"jpeg", "bmp"}
DEFAULT_PNG_LEVEL = 1
COLOUR_TO_GREY = "colour to grey"
GREY_TO_COLOUR = "grey to colour"
SIXTEEN_TO_EIGHT = "16-bit to 8-bit"
ALPHA_DROPPED = "alpha dropped"
_GREY_MODES = {"1", "L", "LA", "La", "F", "I", "I;16", "I;16L", "I;16B", "I;16N"}
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
    converted: list[str] = field(default_factory=list)


def is_grey(image: Image.Image) -> bool:
    """Whether an image holds grey levels only by its mode (a palette: by its colours)."""
    if image.mode in ("P", "PA"):
        colours = np.frombuffer(image.palette.tobytes(), np.uint8)
        return image.palette.mode == "RGB" and bool(
            (colours[0::3] == colours[1::3]).all() and (colours[1::3] == colours[2::3]).all())
    return image.mode in _GREY_MODES


def header_is_grey(path: str | Path) -> bool | None:
    """Whether a file is a grey image, from its header alone (no pixels decoded; `is_grey`);
    None when Pillow cannot open it (the folder run reports such files itself)."""
    try:
        with Image.open(path) as image:
            return is_grey(image)
    except (OSError, Image.DecompressionBombError, *_DECODE_ERRORS):
        return None


def from_pil(image: Image.Image, mode: str, strict_channels: bool = False) -> Pixels:
    """Orient, split off alpha, and convert a Pillow image to `mode` ('L' or 'RGB')."""
    converted = []
    if is_grey(image) != (mode == "L"):
        change = COLOUR_TO_GREY if mode == "L" else GREY_TO_COLOUR
        if strict_channels:
            raise ImageError(f"refused by --channels strict: {image.mode} image for a "
                             f"{'1' if mode == 'L' else '3'}-channel model ({change})")
        if change == COLOUR_TO_GREY:
            converted.append(change)
    if image.format != "JPEG" or "exif" in image.info or "xmp" in image.info:
        image = ImageOps.exif_transpose(image)  # (a JPEG keeps its EXIF in info["exif"])
    alpha = None
    if "A" in image.getbands() or "a" in image.getbands() or "transparency" in image.info:
        image = image.convert("RGBA")
        alpha = np.asarray(image.getchannel("A"))
    if image.mode in _SIXTEEN_BIT:
        wide = np.asarray(image).astype(np.float32)
        image = Image.fromarray(np.clip(np.rint(wide / 257), 0, 255).astype(np.uint8), "L")
        converted.append(SIXTEEN_TO_EIGHT)
    values = np.asarray(image if image.mode == mode else image.convert(mode))
    return Pixels(values[..., None] if values.ndim == 2 else values, alpha, converted)


def to_pil(values: np.ndarray, alpha: np.ndarray | None = None) -> Image.Image:
    """uint8 (H, W, C) (+ alpha) -> a Pillow image in L, LA, RGB or RGBA."""
    image = Image.fromarray(values[..., 0] if values.shape[-1] == 1 else values)
    if alpha is not None:
        image.putalpha(Image.fromarray(alpha))
    return image


def read_image(path: str | Path, mode: str, max_pixels: int = DEFAULT_MAX_PIXELS,
               strict_channels: bool = False) -> Pixels:
    """Decode one file; every way it can be unusable is an ImageError naming the reason."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(f"refused: {width}x{height} = {width * height:,} pixels is over "
                                 f"the limit of {max_pixels:,} (decompression bomb?)")
            return from_pil(image, mode, strict_channels)
    except UnidentifiedImageError:
        if os.path.getsize(path) == 0:
            raise NotAnImage("empty file (0 bytes)") from None
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


def encode_image(values: np.ndarray, alpha: np.ndarray | None, fmt: str, quality: int = 95,
                 png_level: int = DEFAULT_PNG_LEVEL) -> bytes:
    """uint8 (H, W, C) (+ alpha) -> the bytes of a `fmt` file. PNG, BMP and TIFF are lossless;
    JPEG and BMP drop alpha."""
    if fmt in DROPS_ALPHA:
        alpha = None
    if fmt == "png":
        return encode_png(values if alpha is None else np.dstack([values, alpha]), png_level)
    _, pillow_format, lossy = FORMATS[fmt]
    options: dict[str, object] = {"quality": quality} if lossy else {}
    if fmt == "jpeg":
        options["subsampling"] = 0  # 4:4:4: chroma subsampling would blur the colour perturbation
    buffer = io.BytesIO()
    to_pil(values, alpha).save(buffer, format=pillow_format, **options)
    return buffer.getvalue()


def decode_values(data: bytes, mode: str) -> np.ndarray:
    """The pixels of an encoded image in `mode`, as uint8 (H, W, C): what a lossy file holds."""
    with Image.open(io.BytesIO(data)) as image:
        values = np.asarray(image.convert(mode))
    return values[..., None] if values.ndim == 2 else values
