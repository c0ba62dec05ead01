"""load_image: every input becomes (H, W, 3) uint8 RGB, or an ImageError that says why."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from yolocam_core.errors import ImageError
from yolocam_core.images import load_image

RED, BLUE = (220, 30, 30), (30, 30, 220)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def two_halves(width: int = 48, height: int = 24) -> Image.Image:
    """Left half red, right half blue."""
    array = np.empty((height, width, 3), np.uint8)
    array[:, : width // 2] = RED
    array[:, width // 2 :] = BLUE
    return Image.fromarray(array)


def assert_colour(region: np.ndarray, colour, tol: int = 12) -> None:
    mean = region.reshape(-1, 3).mean(axis=0)
    assert np.abs(mean - np.array(colour)).max() <= tol, (mean, colour)


@pytest.mark.parametrize(
    ("orientation", "red_side"),
    [(1, "left"), (3, "right"), (6, "top"), (8, "bottom")],
)
def test_exif_orientation_is_applied(orientation, red_side):
    """EXIF 6 = rotate 90° clockwise to display, 8 = counter-clockwise, 3 = 180°."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(two_halves(48, 24), "JPEG", quality=95, exif=exif.tobytes())
    rgb = load_image(data)
    assert rgb.dtype == np.uint8
    assert rgb.shape == ((24, 48, 3) if orientation in (1, 3) else (48, 24, 3))
    h, w = rgb.shape[:2]
    halves = {
        "left": (rgb[:, : w // 2 - 2], rgb[:, w // 2 + 2 :]),
        "right": (rgb[:, w // 2 + 2 :], rgb[:, : w // 2 - 2]),
        "top": (rgb[: h // 2 - 2], rgb[h // 2 + 2 :]),
        "bottom": (rgb[h // 2 + 2 :], rgb[: h // 2 - 2]),
    }
    red, blue = halves[red_side]
    assert_colour(red, RED)
    assert_colour(blue, BLUE)


def test_grayscale():
    gray = np.array([[0, 64, 128, 255]], np.uint8)
    rgb = load_image(encode(Image.fromarray(gray, "L"), "PNG"))
    assert rgb.shape == (1, 4, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, np.repeat(gray[..., None], 3, axis=2))


def test_rgba_is_composited_on_white():
    rgba = np.array([[[10, 20, 30, 255], [10, 20, 30, 0], [0, 0, 0, 128]]], np.uint8)
    rgb = load_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert rgb.shape == (1, 3, 3)
    np.testing.assert_array_equal(rgb[0, 0], [10, 20, 30])  # opaque: the colour
    np.testing.assert_array_equal(rgb[0, 1], [255, 255, 255])  # transparent: white
    np.testing.assert_allclose(rgb[0, 2], [127, 127, 127], atol=1)  # half black on white


def test_palette():
    image = Image.new("P", (3, 1))
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    image.putdata([2, 0, 1])
    rgb = load_image(encode(image, "PNG"))
    np.testing.assert_array_equal(rgb[0], [[0, 0, 255], [255, 0, 0], [0, 255, 0]])


def test_palette_with_transparency():
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 255, 255, 0, 0] + [0] * (256 * 3 - 6))
    image.putdata([0, 1])
    rgb = load_image(encode(image, "PNG", transparency=0))
    np.testing.assert_array_equal(rgb[0], [[255, 255, 255], [255, 0, 0]])


def test_cmyk():
    image = Image.new("CMYK", (3, 1))
    image.putdata([(255, 0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 255)])  # cyan, white, black
    rgb = load_image(encode(image, "TIFF"))
    np.testing.assert_array_equal(rgb[0], [[0, 255, 255], [255, 255, 255], [0, 0, 0]])


def test_16_bit_png():
    values = np.array([[0, 257, 32896, 65535]], np.uint16)
    image = Image.fromarray(values)
    assert image.mode.startswith("I;16")
    rgb = load_image(encode(image, "PNG"))
    assert rgb.shape == (1, 4, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 1, 128, 255])
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_dark_16_bit_png_stays_dark():
    """A 16-bit image whose values all lie below 256 is nearly black, not 8-bit data."""
    values = np.array([[0, 100, 200, 255]], np.uint16)
    rgb = load_image(encode(Image.fromarray(values), "PNG"))
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 0, 1, 1])


def test_array_passes_through_and_bad_array_is_refused():
    array = np.zeros((2, 3, 3), np.uint8)
    assert load_image(array) is array
    with pytest.raises(ImageError, match=r"\(2, 3\) float64"):
        load_image(np.zeros((2, 3)))


def test_path_and_bytes_give_the_same_pixels(tmp_path):
    data = encode(two_halves(), "PNG")
    path = tmp_path / "halves.png"
    path.write_bytes(data)
    np.testing.assert_array_equal(load_image(path), load_image(data))
    np.testing.assert_array_equal(load_image(str(path)), np.asarray(two_halves()))


# -- errors ------------------------------------------------------------------------------


def test_empty_bytes():
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert "empty.jpg" in str(info.value) and "empty (0 bytes)" in str(info.value)


def test_truncated_jpeg():
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "JPEG", quality=90)
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2])


def test_random_bytes():
    data = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(ImageError, match="not an image file"):
        load_image(data)


def test_text_file(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n" * 20)
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert "notes.jpg" in str(info.value) and "not an image file" in str(info.value)


def test_missing_path(tmp_path):
    with pytest.raises(ImageError) as info:
        load_image(tmp_path / "nowhere.png")
    assert "nowhere.png" in str(info.value) and "no such file" in str(info.value)


def test_folder(tmp_path):
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


def test_too_many_pixels_refused():
    data = encode(two_halves(40, 30), "PNG")
    assert load_image(data, max_pixels=1200).shape == (30, 40, 3)
    with pytest.raises(ImageError) as info:
        load_image(data, max_pixels=1199)
    message = str(info.value).replace(",", "")
    assert "40×30 = 1200 pixels" in message and "1199" in message


def test_a_header_beyond_pillow_s_own_limit_gets_the_same_message():
    """A PNG header claiming 20000×20000 (Pillow refuses it at open, before our check)."""
    png = bytearray(encode(two_halves(4, 4), "PNG"))
    png[16:24] = struct.pack(">II", 20_000, 20_000)  # IHDR's width and height
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))  # and its CRC
    png = bytes(png)
    with pytest.raises(ImageError) as info:
        load_image(png)
    message = str(info.value)
    assert "400,000,000 pixels is more than the" in message and "downscale" in message
    assert "DOS" not in message  # not Pillow's text
    # A higher max_pixels does not lift Pillow's own limit: the message names that one.
    with pytest.raises(ImageError) as info:
        load_image(png, max_pixels=500_000_000)
    pillow = 2 * Image.MAX_IMAGE_PIXELS
    assert f"more than the {pillow:,} allowed" in str(info.value)


def _float_tiff(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(values.astype(np.float32), "F").save(buffer, "TIFF")
    return buffer.getvalue()


def test_float_image_in_0_1_is_scaled_to_0_255():
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    rgb = load_image(_float_tiff(grey / 255.0))
    assert rgb.dtype == np.uint8 and rgb.shape == (16, 16, 3)
    np.testing.assert_array_equal(rgb[..., 0], grey)  # not an all-black image
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_float_image_in_0_255_is_taken_as_it_is():
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_array_equal(load_image(_float_tiff(grey.astype(np.float64)))[..., 1], grey)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.array([[-0.5, 0.5]]), "from -0.5 to 0.5"),
        (np.array([[0.0, 4095.0]]), "from 0 to 4095"),
        (np.array([[np.nan, 0.5]]), "NaN or infinite"),
        (np.array([[np.inf, 0.5]]), "NaN or infinite"),
    ],
)
def test_float_image_out_of_range_is_refused(values, message):
    with pytest.raises(ImageError) as info:
        load_image(_float_tiff(values))
    assert message in str(info.value) and "uploaded file: " in str(info.value)


def test_float_colour_tiff_pillow_cannot_read_says_so(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "rgb.tif"), np.random.default_rng(0).random((8, 8, 3), np.float32))
    with pytest.raises(ImageError, match="a TIFF Pillow cannot decode"):
        load_image(tmp_path / "rgb.tif")


@pytest.mark.parametrize(("size", "ok"), [((1, 1), True), ((320, 10), True), ((330, 10), False)])
def test_elongated_images_are_refused(size, ok):
    data = encode(Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)), "PNG")
    if ok:
        assert load_image(data).shape == (size[1], size[0], 3)
    else:
        with pytest.raises(ImageError, match="330×10 is too elongated"):
            load_image(data)


def test_special_files_are_refused_without_being_opened(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.jpg")  # opening it for reading would block
    (tmp_path / "loop.jpg").symlink_to("loop.jpg")
    (tmp_path / "file").write_bytes(b"x")
    cases = {
        tmp_path / "pipe.jpg": "pipe.jpg: is a named pipe (FIFO), not a regular file; refused",
        tmp_path / "loop.jpg": "loop.jpg: a symbolic-link loop",
        tmp_path / "file" / "x.jpg": "file is a file, not a folder",
        "/dev/null": "/dev/null: is a character device, not a regular file",
    }
    for path, message in cases.items():
        with pytest.raises(ImageError) as info:
            load_image(path)
        assert message in str(info.value), info.value


def test_files_above_the_byte_limit_are_refused_before_reading(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(encode(two_halves(40, 30), "PNG"))
    size = path.stat().st_size
    assert load_image(path, max_bytes=size).shape == (30, 40, 3)
    with pytest.raises(ImageError, match="is more than the"):
        load_image(path, max_bytes=size - 1)
