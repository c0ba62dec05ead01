"""Image loading: any file Pillow reads -> (H, W, 3) uint8 RGB, orientation applied."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from yolocam_core.errors import ImageError

# Largest image we decode, in pixels (~ 8K × 8K); checked before decoding.
MAX_PIXELS = 64_000_000


def load_image(source: str | Path | bytes | np.ndarray, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Load an image as RGB.

    EXIF orientation is applied; grayscale, RGBA/LA (composited on white), palette,
    CMYK and 16-bit images are converted to 8-bit RGB.

    Args:
        source: a path, the file's bytes, or an array (H, W, 3) uint8 RGB (returned as is).
        max_pixels: images with more pixels are refused before they are decoded.

    Returns:
        (H, W, 3) uint8 RGB array.

    Raises:
        ImageError: missing, empty, truncated, too large, or not an image; the
            message says which.
    """
    if isinstance(source, np.ndarray):
        if source.ndim != 3 or source.shape[2] != 3 or source.dtype != np.uint8:
            raise ImageError(
                f"expected an (H, W, 3) uint8 RGB array, got shape {source.shape} {source.dtype}"
            )
        return source
    if isinstance(source, bytes):
        name, data = "uploaded file", source
    else:
        path = Path(source)
        name = str(path)
        if not path.exists():
            raise ImageError(f"{name}: no such file")
        if path.is_dir():
            raise ImageError(f"{name}: is a folder, not an image file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageError(f"{name}: cannot read file ({exc.strerror or exc})") from None
    if not data:
        raise ImageError(f"{name}: the file is empty (0 bytes)")
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
            image.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(
            f"{name}: not an image file Pillow can read (use JPEG, PNG, WebP, BMP, TIFF, …)"
        ) from None
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"{name}: refused, too many pixels ({exc}); downscale the image first"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: the image is truncated or corrupt ({exc})") from None
    return _to_rgb(image)


def _to_rgb(image: Image.Image) -> np.ndarray:
    image = ImageOps.exif_transpose(image)
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
