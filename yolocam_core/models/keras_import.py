"""Keras YOLO models (``.keras`` and legacy ``.h5``) -> :class:`Detector`, loaded safely.

The popular Keras YOLOv3 projects (keras-yolo3, keras-YOLOv3-model-set — the
YOLOv3-MobileNetV2 Grad-CAM article's model comes from the latter) save a model whose
outputs are the raw YOLO heads: one tensor per scale of shape (B, H, W, A·(5+C)),
the output of each head's final 1×1 convolution (``predict_conv_1`` …, or
``conv2d_59`` … in older Keras). Decoding is theirs and Darknet's: sigmoid offsets,
``exp`` × anchor sizes, objectness × sigmoid class probability, on a letterboxed
input divided by 255. Anchors are not in the file (see
:mod:`yolocam_core.models.anchors`).

Steps, each a function:

1. :func:`~yolocam_core.models.keras_safety.inspect_model_file` reads the architecture
   **without loading it** (sizes bounded by :mod:`yolocam_core.models.keras_files`)
   and refuses what would run Python code unless the caller trusts the file
   (``trust_model_code=True``). This matters most for ``.h5``: Keras' legacy loader
   turns a ``Lambda``'s stored bytecode back into a function.
2. :func:`load_keras_model` loads it with Keras' safe mode on (off only when
   trusted), after :func:`~yolocam_core.models.keras_safety.sanitize_legacy_config`
   mapped what Keras 3 no longer reads in files saved by tf.keras 2.
3. :func:`find_heads` finds the heads by **shape**, not by layer names (names differ
   between Keras versions): each output, followed back through reshapes/identities,
   must come from a ``Conv2D`` with linear activation whose output is
   (B, H, W, A·(5+C)); the layer feeding that convolution is the scale's CAM layer.
4. :func:`detector_from_keras_model` checks the input, resizes it if asked, bounds
   the activation memory, describes each head and re-wires the model so that its
   outputs are exactly the heads' convolutions, coarsest grid first, which is what
   :class:`~yolocam_core.explainer.Explainer` expects of every model. Outputs that are
   already decoded (boxes, scores after NMS) are refused with what to export instead.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from yolocam_core.detector import Detector
from yolocam_core.errors import ModelFileError, UnsafeModelError
from yolocam_core.heads import HeadInfo
from yolocam_core.keras_internals import (
    activation_elements,
    node_inputs,
    node_outputs,
    producer,
    unsafe_deserialization,
)
from yolocam_core.models.activations import CUSTOM_OBJECTS
from yolocam_core.models.anchors import Anchors, AnchorsSpec, MasksSpec, anchors_for_heads
from yolocam_core.models.classes import ClassesSpec, resolve_class_names
from yolocam_core.models.keras_safety import (
    inspect_model_file,
    refuse_if_unsafe,
    sanitize_legacy_config,
)
from yolocam_core.models.options import (
    InputSizeSpec,
    check_activation_bytes,
    check_input_side,
    parse_input_size,
)


def _write_h5_with_config(source: Path, config: dict, folder: Path) -> Path:
    import h5py

    target = folder / "model.h5"
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as handle:
        handle.attrs["model_config"] = json.dumps(config).encode("utf-8")
    return target


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[:limit] + " …"


def load_keras_model(path: str | Path, trust_model_code: bool = False) -> keras.Model:
    """Load a ``.keras`` or ``.h5`` model after :func:`inspect_model_file` accepted it.

    Args:
        path: the model file (its format is read from its first bytes).
        trust_model_code: load Lambda layers and other code (Keras' ``safe_mode``
            off). Only for files you wrote or trust.

    Raises:
        UnsafeModelError: the file contains code and ``trust_model_code`` is False.
        ModelFileError: anything else that makes the file unusable.
    """
    path = Path(path)
    report = inspect_model_file(path)
    refuse_if_unsafe(report, path.name, trust_model_code)
    with tempfile.TemporaryDirectory(prefix="yolocam-model-") as tmp:
        source = path
        if report.format == "h5":
            config, changes = sanitize_legacy_config(report.config)
            if changes or config != report.config or path.suffix not in (".h5", ".hdf5"):
                source = _write_h5_with_config(path, config, Path(tmp))
        elif path.suffix != ".keras":
            source = Path(tmp) / "model.keras"
            shutil.copyfile(path, source)
        try:
            with warnings.catch_warnings():
                # tf.keras 2 files: "Argument `alpha` is deprecated" and the like.
                warnings.simplefilter("ignore", UserWarning)
                model = keras.saving.load_model(
                    source,
                    custom_objects=CUSTOM_OBJECTS,
                    compile=False,
                    safe_mode=not trust_model_code,
                )
        except Exception as exc:  # Keras raises ValueError, TypeError, KeyError, OSError…
            if "safe_mode" in str(exc):  # code our inspection did not see; Keras refused it
                raise UnsafeModelError(
                    f"{path.name} contains Python code, which yolocam does not run from "
                    f"model files ({_first_line(exc, 160)})"
                ) from None
            raise ModelFileError(f"Keras could not load {path.name}: {_first_line(exc)}") from None
    if not isinstance(model, keras.Model):
        raise ModelFileError(f"{path.name} does not hold a Keras model")
    return model


# -- heads ------------------------------------------------------------------------------


_PASS_THROUGH = (keras.layers.Reshape, keras.layers.Identity)


@dataclass(frozen=True)
class FoundHead:
    """One raw head found in a model: its final convolution and the layer feeding it."""

    conv: keras.layers.Conv2D
    output: object  # the convolution's output KerasTensor
    cam_layer: str
    grid: tuple[int, int]
    channels: int
    anchors_in_shape: int | None  # A, when the model reshaped to (H, W, A, 5 + C)


def _describe_outputs(model: keras.Model) -> str:
    return ", ".join(str(tuple(t.shape)) for t in model.outputs)


NEED_RAW = (
    "yolocam needs the raw YOLO head outputs: one tensor per scale of shape "
    "(batch, H, W, anchors·(5 + classes)), the output of each head's final 1×1 "
    "convolution, before any decoding or NMS. Export the model body: keras-YOLOv3-model-set "
    "`python yolo.py --model_type … --weights_path … --dump_model --output_model_file "
    "body.h5`; keras-yolo3 `convert.py` output (model_data/yolo.h5); for your own code, "
    "keras.Model(inputs, [head_conv_1.output, head_conv_2.output, …]).save('model.keras')"
)


def find_heads(model: keras.Model, name: str = "model") -> list[FoundHead]:
    """The raw heads of a model, coarsest grid first, found by shape.

    Raises:
        ModelFileError: an output that is not a raw head (decoded boxes, an activation
            after the convolution, …), with what is needed instead.
    """
    heads = []
    for index, tensor in enumerate(model.outputs):
        shape = tuple(tensor.shape)
        if len(shape) not in (4, 5):
            raise ModelFileError(
                f"{name}: its outputs {_describe_outputs(model)} look already decoded "
                f"(output {index} has shape {shape}). {NEED_RAW}"
            )
        anchors_in_shape = int(shape[3]) if len(shape) == 5 and shape[3] else None
        current = tensor
        while True:
            operation, node = producer(current)
            if isinstance(operation, keras.layers.Conv2D) and not isinstance(
                operation, (keras.layers.Conv2DTranspose, keras.layers.DepthwiseConv2D)
            ):
                break
            linear = isinstance(operation, keras.layers.Activation) and (
                getattr(operation.activation, "__name__", "") == "linear"
            )
            if (isinstance(operation, _PASS_THROUGH) or linear) and len(node_inputs(node)) == 1:
                current = node_inputs(node)[0]
                continue
            if isinstance(operation, keras.Model):
                raise ModelFileError(
                    f"{name}: output {index} is the output of the nested model "
                    f"{operation.name!r}; yolocam needs a flat model: load that inner model "
                    f"instead (save model.get_layer({operation.name!r}))"
                )
            what = type(operation).__name__
            if isinstance(operation, keras.layers.Activation):
                what = f"an activation ({operation.activation.__name__})"
            raise ModelFileError(
                f"{name}: output {index} (shape {shape}) comes from {what} "
                f"{operation.name!r}, not from a convolution. {NEED_RAW}"
            )
        conv = operation
        activation = getattr(conv.activation, "__name__", "linear")
        if activation != "linear":
            raise ModelFileError(
                f"{name}: the head convolution {conv.name!r} applies '{activation}' to its "
                f"output. {NEED_RAW}"
            )
        out = node_outputs(node)[0]
        h, w, channels = out.shape[1], out.shape[2], out.shape[3]
        if h is None or w is None:
            raise ModelFileError(f"{name}: head {conv.name!r} has no fixed grid size")
        parent, parent_node = producer(node_inputs(node)[0])
        # Keras 3 functional models may hold plain operations (keras.ops.*), which are
        # not layers and cannot be looked up by name: use the nearest layer above them
        # (the explainer then differentiates through the operations with a tape).
        while not isinstance(parent, keras.layers.Layer):
            if len(node_inputs(parent_node)) != 1:
                raise ModelFileError(
                    f"{name}: head {conv.name!r} is fed by the Keras operation "
                    f"{parent.name!r}, which has several inputs; wrap it in a layer"
                )
            parent, parent_node = producer(node_inputs(parent_node)[0])
        heads.append(
            FoundHead(conv, out, parent.name, (int(h), int(w)), int(channels), anchors_in_shape)
        )
    if not heads:
        raise ModelFileError(f"{name} has no outputs. {NEED_RAW}")
    if len({id(h.conv) for h in heads}) != len(heads):
        raise ModelFileError(f"{name}: two outputs come from the same convolution. {NEED_RAW}")
    heads.sort(key=lambda h: h.grid[0] * h.grid[1])
    return heads


def with_input_size(
    model: keras.Model, size: tuple[int, int], trust_model_code: bool = False
) -> keras.Model:
    """The same model and weights with its input fixed to (height, width)."""
    if len(model.inputs) != 1:
        raise ModelFileError(f"the model has {len(model.inputs)} inputs; yolocam needs one image")
    config = model.get_config()
    inputs = [
        layer for layer in config.get("layers", []) if layer.get("class_name") == "InputLayer"
    ]
    if len(inputs) != 1:
        raise ModelFileError("the model's input could not be resized (not a functional model)")
    inner = inputs[0]["config"]
    channels = (inner.get("batch_shape") or inner.get("batch_input_shape"))[-1]
    inner.pop("batch_input_shape", None)
    inner["batch_shape"] = [None, size[0], size[1], channels]
    try:
        if trust_model_code:
            with unsafe_deserialization():
                rebuilt = keras.Model.from_config(config, custom_objects=CUSTOM_OBJECTS)
        else:
            rebuilt = keras.Model.from_config(config, custom_objects=CUSTOM_OBJECTS)
        rebuilt.set_weights(model.get_weights())
    except Exception as exc:
        raise ModelFileError(
            f"the model does not accept a {size[1]}×{size[0]} input: {_first_line(exc)}"
        ) from None
    return rebuilt


#: The input size of a model saved with a free one, when none is given.
DEFAULT_INPUT_SIZE = (416, 416)


def _image_input_size(model: keras.Model, label: str) -> tuple[int, int] | None:
    """The (height, width) a model's one image input is fixed to, or None if free."""
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        shapes = [tuple(t.shape) for t in model.inputs]
        raise ModelFileError(
            f"{label} has inputs {shapes}; yolocam needs one image input (batch, H, W, 3) — "
            "a training model (with y_true inputs and a loss layer) cannot be explained; "
            "save the inference body instead"
        )
    in_shape = tuple(model.inputs[0].shape)
    if in_shape[3] != 3:
        raise ModelFileError(f"{label} takes {in_shape[3]} channels; yolocam feeds RGB (3)")
    if not (in_shape[1] and in_shape[2]):
        return None
    fixed = (int(in_shape[1]), int(in_shape[2]))
    check_input_side(fixed, f"{label}: its input")
    return fixed


def _sized(
    model: keras.Model, input_size: InputSizeSpec, label: str, trust_model_code: bool
) -> keras.Model:
    """The model at the input size asked for (or its own, or the default), its
    activation memory checked before anything runs."""
    wanted = parse_input_size(input_size)
    fixed = _image_input_size(model, label)
    if wanted is None and fixed is None:
        wanted = DEFAULT_INPUT_SIZE
    if wanted is not None and wanted != fixed:
        model = with_input_size(model, wanted, trust_model_code)
    size = (int(model.inputs[0].shape[1]), int(model.inputs[0].shape[2]))
    check_activation_bytes(4 * activation_elements(model), label, size)
    return model


def _head_infos(
    found: list[FoundHead],
    per_head: tuple[Anchors, ...],
    input_size: tuple[int, int],
    label: str,
) -> list[HeadInfo]:
    """One :class:`HeadInfo` per found head, each checked against its anchors and the
    input size; every head must predict the same classes."""
    in_h, in_w = input_size
    heads: list[HeadInfo] = []
    for index, (head, head_anchors) in enumerate(zip(found, per_head, strict=True)):
        a = len(head_anchors)
        grid_label = f"{head.grid[0]}×{head.grid[1]}"
        if head.anchors_in_shape is not None and head.anchors_in_shape != a:
            raise ModelFileError(
                f"{label}: head {grid_label} predicts {head.anchors_in_shape} anchors per cell "
                f"but it is given {a}; check --anchors / --anchor-masks"
            )
        if head.channels % a or head.channels // a < 6:
            raise ModelFileError(
                f"{label}: head {grid_label} ({head.conv.name!r}) has {head.channels} channels, "
                f"which is not {a} anchors × (5 + classes); check --anchors / --anchor-masks "
                "(a model with another number of anchors per head needs its own)"
            )
        c = head.channels // a - 5
        if heads and c != heads[0].num_classes:
            raise ModelFileError(
                f"{label}: heads predict different class counts ({heads[0].num_classes} and "
                f"{c}); check the anchor masks"
            )
        if in_h % head.grid[0] or in_w % head.grid[1]:
            raise ModelFileError(
                f"{label}: grid {grid_label} does not divide the {in_w}×{in_h} input"
            )
        heads.append(
            HeadInfo(
                index=index,
                output_name=head.conv.name,
                grid=head.grid,
                stride=in_w // head.grid[1],
                anchors=tuple((float(w), float(h)) for w, h in head_anchors),
                num_classes=c,
                scale_x_y=1.0,
                cam_layer=head.cam_layer,
            )
        )
    return heads


def detector_from_keras_model(
    model: keras.Model,
    *,
    classes: ClassesSpec = None,
    anchors: AnchorsSpec = None,
    anchor_masks: MasksSpec = None,
    input_size: InputSizeSpec = None,
    letterbox: bool | None = None,
    name: str | None = None,
    trust_model_code: bool = False,
) -> Detector:
    """A :class:`Detector` for an in-memory Keras model whose outputs are raw YOLO heads.

    Args:
        model: one image input (B, H, W, 3), float RGB in [0, 1]; outputs as described
            in :func:`find_heads`.
        classes: ``"coco"``, ``"voc"``, a names file, a list, or None (guess by count).
        anchors: (width, height) pairs in input pixels; None = the projects' defaults.
        anchor_masks: which anchors each head uses, coarsest head first.
        input_size: the network input (height, width) or one side, for models saved
            with a free input size (default 416) or to run at another size.
        letterbox: keep the aspect ratio and pad (default True, as those projects).
        name: shown in the UI (default: the model's name).
        trust_model_code: needed only to resize the input of a model with Lambda layers.

    Returns:
        A detector whose Keras model's outputs are the heads' final convolutions,
        coarsest grid first, and whose heads name the layer feeding each.

    Raises:
        ModelFileError: not a raw-head YOLO model, options that do not fit it, or an
            input size beyond the limits of :mod:`yolocam_core.models.options`.
    """
    label = name or model.name
    model = _sized(model, input_size, label, trust_model_code)
    found = find_heads(model, label)
    per_head = anchors_for_heads(len(found), anchors, anchor_masks)
    size = (int(model.inputs[0].shape[1]), int(model.inputs[0].shape[2]))
    heads = _head_infos(found, per_head, size, label)
    class_names = resolve_class_names(classes, heads[0].num_classes)
    wired = keras.Model(model.inputs[0], [h.output for h in found], name=model.name)
    return Detector(
        wired,
        heads,
        class_names,
        letterbox=True if letterbox is None else bool(letterbox),
        name=label,
    )


def load_keras_detector(
    path: str | Path, *, trust_model_code: bool = False, name: str | None = None, **options
) -> Detector:
    """Load a ``.keras`` / ``.h5`` YOLO model safely and make it a :class:`Detector`.

    Args:
        path: the model file.
        trust_model_code: load Python code in the file (see :func:`load_keras_model`).
        name: shown in the UI (default: the file's name).
        **options: ``classes``, ``anchors``, ``anchor_masks``, ``input_size``,
            ``letterbox``, as :func:`detector_from_keras_model` takes them.

    Raises:
        UnsafeModelError: a file with Python code, unless ``trust_model_code``.
        ModelFileError: anything else unusable; the message says why.

    Example:
        >>> detector = load_keras_detector("yolo3_mobilenetv2_lite_voc.h5", classes="voc")
        >>> [h.grid for h in detector.heads]
        [(13, 13), (26, 26), (52, 52)]
    """
    path = Path(path)
    model = load_keras_model(path, trust_model_code=trust_model_code)
    _check_finite(model, path.name)
    return detector_from_keras_model(
        model, name=name or path.name, trust_model_code=trust_model_code, **options
    )


def _check_finite(model: keras.Model, name: str) -> None:
    """Refuse weights holding NaN or infinity (diverged training, a damaged file): every
    map and score of such a model is NaN."""
    bad = [w for w in model.weights if not np.isfinite(np.asarray(w.numpy())).all()]
    if bad:
        raise ModelFileError(
            f"{name}: {len(bad)} of its {len(model.weights)} weight tensors hold NaN or "
            f"infinite values (the first: {getattr(bad[0], 'path', bad[0].name)}): its "
            "training diverged, or the file is damaged"
        )


__all__ = [
    "FoundHead",
    "detector_from_keras_model",
    "find_heads",
    "load_keras_detector",
    "load_keras_model",
    "with_input_size",
]
