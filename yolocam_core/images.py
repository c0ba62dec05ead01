"""Image loading: any file Pillow reads -> (H, W, 3) uint8 RGB, orientation applied."""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from yolocam_core.errors import ImageError
from yolocam_core.files import MAX_FILE_BYTES, read_regular_file, shown

# Largest image we decode, in pixels (~ 8K × 8K); checked before decoding.
MAX_PIXELS = 64_000_000
#: Longest side over shortest side. Beyond 32, the short side of a letterboxed image
#: is under 13 of the 416 input pixels: less than one cell of the coarsest (stride-32)
#: grid, and a side-by-side sheet of it would be tens of thousands of pixels wide.
MAX_ASPECT = 32
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")


def load_image(
    source: str | Path | bytes | np.ndarray,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_FILE_BYTES,
) -> np.ndarray:
    """Load an image as RGB.

    EXIF orientation is applied; grayscale, RGBA/LA (composited on white), palette,
    CMYK and 16-bit images are converted to 8-bit RGB. Floating-point images (Pillow
    mode ``F``, e.g. a float32 TIFF): values in [0, 1] are scaled to 0–255, values in
    [0, 255] are taken as they are, anything else (negative, above 255, NaN, infinite)
    is refused.

    Args:
        source: a path, the file's bytes, or an array (H, W, 3) uint8 RGB (returned as is).
        max_pixels: images with more pixels are refused before they are decoded.
        max_bytes: larger files are refused before they are read.

    Returns:
        (H, W, 3) uint8 RGB array.

    Raises:
        ImageError: missing, not a regular file (a folder, a named pipe, a device), a
            symbolic-link loop, empty, truncated, too large, too elongated, or not an
            image; the message says which.
    """
    if isinstance(source, np.ndarray):
        if source.ndim != 3 or source.shape[2] != 3 or source.dtype != np.uint8:
            raise ImageError(
                f"expected an (H, W, 3) uint8 RGB array, got shape {source.shape} {source.dtype}"
            )
        if not source.size:
            height, width = source.shape[:2]
            raise ImageError(f"the image is empty ({width}×{height} pixels); pass a photo")
        return source
    if isinstance(source, bytes):
        name, data = "uploaded file", source
    else:
        name = shown(source)
        data = read_regular_file(source, max_bytes)
    if not data:
        raise ImageError(f"{name}: the file is empty (0 bytes)")
    return _to_rgb(_decode(data, name, max_pixels), name)


def _decode(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Pillow's image of ``data``, its size checked before its pixels are decoded."""
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below gives the clearer message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(
                    f"{name}: {width}×{height} = {width * height:,} pixels is more than the "
                    f"{max_pixels:,} allowed; downscale the image first"
                )
            if max(width, height) > MAX_ASPECT * min(width, height):
                raise ImageError(
                    f"{name}: {width}×{height} is too elongated (one side more than "
                    f"{MAX_ASPECT} times the other); crop it into parts first"
                )
            image.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        hint = (
            "; a TIFF Pillow cannot decode (e.g. floating-point colour): save it as 8- or 16-bit"
            if data[:4] in _TIFF_MAGIC
            else " (use JPEG, PNG, WebP, BMP, TIFF, …)"
        )
        raise ImageError(f"{name}: not an image file Pillow can read{hint}") from None
    except Image.DecompressionBombError as exc:
        # Pillow refuses before the size check above can run: the same message.
        # Pillow's own limit (twice MAX_IMAGE_PIXELS) applies even when max_pixels is
        # higher: name the one that refused.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{int(found.group(1)):,} pixels is" if found else "it has"
        allowed = min(max_pixels, 2 * int(Image.MAX_IMAGE_PIXELS or max_pixels))
        raise ImageError(
            f"{name}: {pixels} more than the {allowed:,} allowed; downscale the image first"
        ) from None
    except MemoryError:
        raise ImageError(f"{name}: not enough memory to decode the image") from None
    except Exception as exc:  # any decoder failure is a bad file, said in one line
        detail = str(exc) or type(exc).__name__
        raise ImageError(f"{name}: the image is truncated or corrupt ({detail})") from None
    return image


def _float_to_uint8(values: np.ndarray, name: str) -> np.ndarray:
    """Floating-point pixels -> uint8 by the rule of :func:`load_image`."""
    if not np.isfinite(values).all():
        raise ImageError(f"{name}: floating-point pixels that are NaN or infinite; refused")
    low, high = float(values.min()), float(values.max())
    if low < 0.0 or high > 255.0:
        raise ImageError(
            f"{name}: floating-point pixels from {low:g} to {high:g}; yolocam reads floats "
            "in [0, 1] (scaled to 0–255) or in [0, 255]: rescale the image or save it as 8-bit"
        )
    scale = 255.0 if high <= 1.0 else 1.0
    return np.clip(values * scale + 0.5, 0, 255).astype(np.uint8)


def _to_rgb(image: Image.Image, name: str) -> np.ndarray:
    image = ImageOps.exif_transpose(image)
    if image.mode == "F":
        image = Image.fromarray(_float_to_uint8(np.asarray(image, np.float64), name), "L")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        # I;16* is 16-bit by definition; only 32-bit "I" may hold 8-bit-range data.
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        image = background
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8).copy()
