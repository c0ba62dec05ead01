"""The input-size option and the limits on what a model file may ask of the machine.

A model file is untrusted input: its input size, class count, parameter count and the
memory one forward pass needs are bounded here and checked *before* anything large
is built or allocated, with a message that names the limit. The limits are generous
for YOLO models and small enough that one request never takes the machine.
"""

from __future__ import annotations

from collections.abc import Sequence

from yolocam_core.errors import ModelFileError, YolocamError

#: Largest network input side, in pixels (YOLO models run at 320–1536).
MAX_INPUT_SIDE = 4096
#: Largest float32 activation memory of one forward pass on one image, summed over
#: every layer's output (yolov3.cfg: 0.43 GiB at 416×416, 0.92 GiB at 608×608,
#: 2.6 GiB at 1024×1024; yolov4-tiny: 0.1 GiB at 416×416). The explainer keeps
#: about as much again in gradients.
MAX_ACTIVATION_BYTES = 3 << 30
#: Most parameters a model may hold (YOLOv4: 64 million).
MAX_PARAMETERS = 256 * 10**6
#: Most classes a head may predict (Open Images: 601; LVIS: 1,203).
MAX_CLASSES = 10_000

InputSizeSpec = int | str | Sequence[int] | None
"""What a caller may pass as ``input_size``: one side (``416``, ``"416"``),
``"416x608"`` (width × height, as image sizes are written), (height, width), or None."""


def parse_input_size(value: InputSizeSpec) -> tuple[int, int] | None:
    """A network input size as (height, width), checked.

    Args:
        value: see :data:`InputSizeSpec`.

    Returns:
        (height, width), or None for None.

    Raises:
        ModelFileError: not whole numbers, not positive multiples of 32, or a side
            above :data:`MAX_INPUT_SIDE`; the message names the value received.
    """
    if value is None:
        return None
    if isinstance(value, str) and "x" in value.lower():
        parts = value.lower().split("x")
        if len(parts) != 2:
            raise ModelFileError(f"input size {value!r}: write one side (416) or WIDTHxHEIGHT")
        value = (parts[1], parts[0])
    if isinstance(value, (int, float, str)):
        side = _whole(value, value)
        size = (side, side)
    else:
        try:
            items = list(value)
        except TypeError:
            raise ModelFileError(f"input size {value!r} is not a whole number") from None
        if len(items) != 2:
            raise ModelFileError(f"input size {value!r} must be one number or (height, width)")
        size = (_whole(items[0], value), _whole(items[1], value))
    if any(s <= 0 or s % 32 for s in size):
        raise ModelFileError(
            f"input size {size[1]}×{size[0]}: YOLO inputs must be positive multiples of 32 "
            "(e.g. 320, 416, 608)"
        )
    check_input_side(size)
    return size


def _whole(item, value) -> int:
    if isinstance(item, bool):
        raise ModelFileError(f"input size {value!r} is not a whole number")
    try:
        number = int(str(item).strip()) if isinstance(item, str) else int(item)
    except (TypeError, ValueError):
        raise ModelFileError(f"input size {value!r} is not a whole number") from None
    if isinstance(item, float) and item != number:
        raise ModelFileError(f"input size {value!r} is not a whole number")
    return number


def check_input_side(
    size: tuple[int, int], where: str = "input size", error: type[YolocamError] = ModelFileError
) -> None:
    """Refuse a (height, width) with a side outside 1..:data:`MAX_INPUT_SIDE`."""
    height, width = size
    if min(height, width) < 1 or max(height, width) > MAX_INPUT_SIDE:
        raise error(
            f"{where} {width}×{height}: each side must be between 1 and {MAX_INPUT_SIDE} "
            "pixels (YOLO models run at 320–1536); give a smaller input size"
        )


def check_activation_bytes(
    needed: int, label: str, size: tuple[int, int], error: type[YolocamError] = ModelFileError
) -> None:
    """Refuse a model whose forward pass on one image needs more than
    :data:`MAX_ACTIVATION_BYTES` of activations (float32, summed over layers)."""
    if needed > MAX_ACTIVATION_BYTES:
        raise error(
            f"{label} at {size[1]}×{size[0]} needs about {needed / 2**30:.1f} GiB of "
            f"activations per image, more than yolocam's limit of "
            f"{MAX_ACTIVATION_BYTES / 2**30:.0f} GiB; give a smaller input size"
        )


def check_parameters(count: int, label: str, error: type[YolocamError] = ModelFileError) -> None:
    """Refuse a model with more than :data:`MAX_PARAMETERS` parameters."""
    if count > MAX_PARAMETERS:
        raise error(
            f"{label} holds {count:,} parameters, more than yolocam's limit of "
            f"{MAX_PARAMETERS:,} (YOLOv4 holds 64 million); check its filters and sizes"
        )


def check_class_count(count: int, label: str, error: type[YolocamError] = ModelFileError) -> None:
    """Refuse a head that predicts no class or more than :data:`MAX_CLASSES`."""
    if not 1 <= count <= MAX_CLASSES:
        raise error(f"{label} predicts {count:,} classes; yolocam supports 1 to {MAX_CLASSES:,}")
