"""Keras YOLO models (``.keras`` and legacy ``.h5``) -> :class:`Detector`, loaded safely.

The popular Keras YOLOv3 projects (keras-yolo3, keras-YOLOv3-model-set — the
YOLOv3-MobileNetV2 Grad-CAM article's model comes from the latter) save a model whose
outputs are the raw YOLO heads: one tensor per scale of shape (B, H, W, A·(5+C)),
the output of each head's final 1×1 convolution (``predict_conv_1`` …, or
``conv2d_59`` … in older Keras). Decoding is theirs and Darknet's: sigmoid offsets,
``exp`` × anchor sizes, objectness × sigmoid class probability, on a letterboxed
input divided by 255. Anchors are not in the file (see :mod:`yolocam_core.anchors`).

Steps, each a function:

1. :func:`inspect_model_file` reads the architecture **without loading it** (the
   ``config.json`` of a ``.keras`` zip, the ``model_config`` attribute of an ``.h5``)
   and refuses what would run Python code: ``Lambda`` layers, serialized Python
   functions, layer classes that are not Keras built-ins (custom code), unless the
   caller trusts the file (``trust_model_code=True``). This matters most for
   ``.h5``: Keras' legacy loader turns a ``Lambda``'s stored bytecode back into a
   function.
2. :func:`load_keras_model` loads it with Keras' safe mode on (off only when
   trusted), after mapping what Keras 3 no longer reads in files saved by tf.keras 2
   where that is safe for inference: ``SyncBatchNormalization`` -> ``BatchNormalization``
   (the same computation at inference), training-only batch-norm arguments dropped,
   ``DepthwiseConv2D``'s ``groups=1`` dropped, the old ``"normal"`` initializer
   distribution read as ``"truncated_normal"`` (initializers never matter: the
   weights come from the file).
3. :func:`find_heads` finds the heads by **shape**, not by layer names (names differ
   between Keras versions): each output, followed back through reshapes/identities,
   must come from a ``Conv2D`` with linear activation whose output is
   (B, H, W, A·(5+C)); the layer feeding that convolution is the scale's CAM layer.
   The model is re-wired so that its outputs are exactly those convolutions' outputs,
   coarsest grid first, which is what :class:`~yolocam_core.explainer.Explainer`
   expects of every model. Outputs that are already decoded (boxes, scores after NMS)
   are refused with what to export instead.

Custom activations these projects save by name — ``mish``, ``swish``,
``hard_swish``, ``hard_sigmoid`` (and ``relu6``) — are registered. Departure:
``hard_sigmoid`` is read as ``relu6(x + 3) / 6`` (keras-YOLOv3-model-set's MobileNetV3
definition, and Keras 3's), not tf.keras 2's built-in ``0.2·x + 0.5``.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import keras
from keras import ops

from yolocam_core.anchors import AnchorsSpec, MasksSpec, anchors_for_heads
from yolocam_core.classes import ClassesSpec, resolve_class_names
from yolocam_core.detector import Detector
from yolocam_core.errors import ModelFileError, UnsafeModelError
from yolocam_core.heads import HeadInfo
from yolocam_core.layers import CUSTOM_OBJECTS as _LAYER_OBJECTS

# -- custom activations saved by name -------------------------------------------------


@keras.saving.register_keras_serializable(package="yolocam", name="mish")
def mish(x):
    """``x · tanh(softplus(x))`` (YOLOv4)."""
    return x * ops.tanh(ops.softplus(x))


@keras.saving.register_keras_serializable(package="yolocam", name="swish")
def swish(x):
    """``x · sigmoid(x)`` (EfficientNet; Keras' ``silu``)."""
    return x * ops.sigmoid(x)


@keras.saving.register_keras_serializable(package="yolocam", name="hard_sigmoid")
def hard_sigmoid(x):
    """``relu6(x + 3) / 6`` (MobileNetV3)."""
    return ops.relu6(x + 3.0) / 6.0


@keras.saving.register_keras_serializable(package="yolocam", name="hard_swish")
def hard_swish(x):
    """``x · relu6(x + 3) / 6`` (MobileNetV3)."""
    return x * ops.relu6(x + 3.0) / 6.0


@keras.saving.register_keras_serializable(package="yolocam", name="relu6")
def relu6(x):
    """``min(max(x, 0), 6)``."""
    return ops.relu6(x)


ACTIVATIONS = {
    "mish": mish,
    "swish": swish,
    "hard_sigmoid": hard_sigmoid,
    "hard_swish": hard_swish,
    "relu6": relu6,
}
CUSTOM_OBJECTS = {**ACTIVATIONS, **_LAYER_OBJECTS}
"""Everything passed as ``custom_objects`` when loading: the activations above and
yolocam's own Darknet layers (so converted models load too)."""

# -- what a file may contain ----------------------------------------------------------

#: Layer classes that hold or load code: never loaded unless trusted.
CODE_LAYERS = frozenset({"Lambda", "TFSMLayer", "JaxLayer", "FlaxLayer", "TorchModuleWrapper"})
#: tf.keras 2 records of raw TensorFlow calls: Keras 3 cannot rebuild them.
TF_OP_LAYERS = frozenset({"TFOpLambda", "SlicingOpLambda"})
#: Layer classes tf.keras 2 saved that Keras 3 lacks, and what they safely become.
LEGACY_LAYER_MAP = {"SyncBatchNormalization": "BatchNormalization"}
#: Batch-norm arguments that only change training, dropped when Keras 3 lacks them.
_BN_TRAINING_ONLY = ("renorm", "renorm_clipping", "renorm_momentum", "fused",
                     "virtual_batch_size", "adjustment", "synchronized")  # fmt: skip
_MODEL_CLASSES = frozenset({"Functional", "Model", "Sequential"})
_OUR_LAYERS = frozenset(_LAYER_OBJECTS)


def _builtin_layer_names() -> frozenset[str]:
    names = {
        name
        for name in dir(keras.layers)
        if isinstance(getattr(keras.layers, name), type)
        and issubclass(getattr(keras.layers, name), keras.layers.Layer)
    }
    return frozenset(names - CODE_LAYERS - {"Layer", "Wrapper"})


BUILTIN_LAYERS = _builtin_layer_names()


def _known_activation(name: str) -> bool:
    if name in ACTIVATIONS or name in ("linear", None):
        return True
    try:
        keras.activations.get(name)
    except (ValueError, TypeError):
        return False
    return True


def _is_keras_module(module) -> bool:
    return module == "keras" or str(module).startswith("keras.")


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"


@dataclass
class ModelFileReport:
    """What :func:`inspect_model_file` found.

    Attributes:
        format: ``"keras"`` (zip) or ``"h5"``.
        config: the model's architecture (the JSON Keras would deserialize).
        layer_classes: class name -> number of layers of that class.
        code: human descriptions of everything that would run Python code.
        unsupported: things Keras 3 cannot load at all (e.g. ``TFOpLambda``).
        legacy: whether the config comes from tf.keras 2 / Keras 2 (an ``.h5``).
    """

    format: str
    config: dict
    layer_classes: dict[str, int] = field(default_factory=dict)
    code: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    legacy: bool = False


def sniff_format(path: Path) -> str:
    """``"h5"`` or ``"keras"`` from the file's first bytes; ModelFileError otherwise."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except FileNotFoundError:
        raise ModelFileError(f"model file {path} does not exist") from None
    except IsADirectoryError:
        raise ModelFileError(
            f"{path} is a folder; TensorFlow SavedModel folders are not supported: save the "
            "model as .keras or .h5 (model.save('model.keras'))"
        ) from None
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc.strerror}") from None
    if head.startswith(HDF5_SIGNATURE):
        return "h5"
    if head.startswith(ZIP_SIGNATURE):
        return "keras"
    if not head:
        raise ModelFileError(f"{path.name} is empty")
    kind = "an .h5 (HDF5)" if path.suffix.lower() in (".h5", ".hdf5") else "a Keras"
    raise ModelFileError(
        f"{path.name} is not {kind} model file: its first bytes are neither HDF5's nor a "
        ".keras zip's (is it truncated, corrupted, or another format?)"
    )


def read_model_config(path: Path) -> tuple[str, dict]:
    """(format, architecture JSON) of a ``.keras`` or ``.h5`` file, read with h5py /
    zipfile only: nothing is deserialized and no code runs.

    Raises:
        ModelFileError: unreadable, corrupted, or an ``.h5`` that holds only weights.
    """
    fmt = sniff_format(path)
    if fmt == "keras":
        try:
            with zipfile.ZipFile(path) as archive:
                if "config.json" not in archive.namelist():
                    raise ModelFileError(
                        f"{path.name} is a zip file without config.json: not a Keras .keras model"
                    )
                text = archive.read("config.json").decode("utf-8")
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise ModelFileError(
                f"{path.name} is not a readable .keras file (truncated or corrupted zip: {exc})"
            ) from None
        except UnicodeDecodeError:
            raise ModelFileError(f"{path.name}: config.json is not UTF-8 text") from None
    else:
        import h5py

        try:
            with h5py.File(path, "r") as handle:
                raw = handle.attrs.get("model_config")
                # Keras 2 save_weights: layer_names; Keras 3 .weights.h5: layers/, vars/.
                has_weights = len(handle.keys()) > 0 or "layer_names" in handle.attrs
        except OSError as exc:
            raise ModelFileError(
                f"{path.name} is not a readable HDF5 file (truncated or corrupted?): "
                f"{str(exc).splitlines()[0]}"
            ) from None
        if raw is None:
            hint = (
                "it holds only weights (saved with save_weights)"
                if has_weights
                else "it holds no Keras model"
            )
            raise ModelFileError(
                f"{path.name} has no model architecture: {hint}. Save the whole model with "
                "model.save('model.h5') or model.save('model.keras') (keras-YOLOv3-model-set: "
                "yolo.py --dump_model)"
            )
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFileError(
            f"{path.name}: the model architecture is not valid JSON ({exc})"
        ) from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelFileError(f"{path.name}: the model architecture is not a Keras model config")
    return fmt, config


def _walk(node, inside_layers: bool = False) -> Iterator[tuple[dict, bool]]:
    """Every dict with a ``class_name`` in a config, and whether it is a layer entry."""
    if isinstance(node, dict):
        if "class_name" in node:
            yield node, inside_layers
        for key, value in node.items():
            yield from _walk(value, key == "layers" and isinstance(value, list))
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, inside_layers)


def _activation_names(node) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "activation" and isinstance(value, str):
                yield value
            else:
                yield from _activation_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from _activation_names(item)


def inspect_config(config: dict, fmt: str) -> ModelFileReport:
    """Classify every object of an architecture: built-in, code, unsupported.

    Nothing is deserialized. A layer entry is accepted when its class is a Keras
    built-in layer (or one of yolocam's Darknet layers, or a tf.keras 2 class we map),
    and for ``.keras`` files when its module is Keras'. Anything else needs Python code
    that is not in the file.
    """
    report = ModelFileReport(format=fmt, config=config, legacy=fmt == "h5")
    top = config.get("class_name")
    if top not in _MODEL_CLASSES:
        report.unsupported.append(f"the file holds a {top!r}, not a Keras model")
    for entry, is_layer in _walk(config):
        name = entry.get("class_name")
        inner = entry.get("config") if isinstance(entry.get("config"), dict) else {}
        if name == "__lambda__":
            report.code.append("a serialized Python function (lambda)")
            continue
        if not is_layer:
            module = entry.get("module")
            if name == "function" and isinstance(entry.get("config"), str):
                # Functions are looked up by name (ours first); their module is not
                # imported. An unknown name cannot be loaded with or without trust.
                fn = entry["config"]
                if not _known_activation(fn.split(">")[-1]):
                    where = (
                        f" (Python module {module!r})" if module not in (None, "builtins") else ""
                    )
                    report.unsupported.append(
                        f"the custom function {fn!r}{where}, whose Python code is not in the "
                        f"file (yolocam knows Keras' activations and {', '.join(ACTIVATIONS)})"
                    )
            elif module and not _is_keras_module(module) and module != "builtins":
                registered = entry.get("registered_name") or name
                if registered not in CUSTOM_OBJECTS and f"yolocam>{name}" != registered:
                    report.code.append(f"a custom object {name!r} from Python module {module!r}")
            continue
        report.layer_classes[name] = report.layer_classes.get(name, 0) + 1
        label = f"{name} layer {inner.get('name', '?')!r}"
        module = entry.get("module")
        registered = entry.get("registered_name")
        if name in CODE_LAYERS:
            report.code.append(f"a {label} (it holds Python code)")
        elif name in TF_OP_LAYERS:
            report.unsupported.append(
                f"a {label}: a raw TensorFlow call recorded by tf.keras 2, which Keras 3 "
                "cannot rebuild"
            )
        elif name in _OUR_LAYERS and registered in (None, name, f"yolocam>{name}"):
            continue
        elif module:
            # Keras 3 imports classes only from Keras' own modules (layers and ops).
            if not _is_keras_module(module):
                report.code.append(
                    f"a custom {label} from Python module {module!r} (its Python code is "
                    "not in the file)"
                )
        elif name not in _MODEL_CLASSES | BUILTIN_LAYERS | set(LEGACY_LAYER_MAP):
            report.code.append(f"a custom {label} (its Python code is not in the file)")
    for activation in sorted(set(_activation_names(config))):
        if not _known_activation(activation):
            report.unsupported.append(
                f"the activation {activation!r}, which is neither Keras' nor one yolocam "
                f"registers ({', '.join(ACTIVATIONS)})"
            )
    return report


def inspect_model_file(path: str | Path) -> ModelFileReport:
    """Read and classify a model file's architecture without loading it."""
    path = Path(path)
    fmt, config = read_model_config(path)
    return inspect_config(config, fmt)


def _refuse_if_unsafe(report: ModelFileReport, name: str, trust: bool) -> None:
    if report.unsupported:
        raise ModelFileError(
            f"{name} cannot be loaded: it contains {'; '.join(report.unsupported[:3])}"
        )
    if report.code and not trust:
        found = "; ".join(dict.fromkeys(report.code))
        if len(found) > 400:
            found = found[:400] + " …"
        raise UnsafeModelError(
            f"{name} contains Python code, which yolocam does not run from model files: "
            f"{found}. Export the model from Keras built-in layers only (if the code is the "
            "decoding/NMS part, export the model body whose outputs are the raw YOLO heads). "
            "If you wrote or trust this file, the yolocam command loads it with "
            "--trust-model-code (the web app never does)."
        )


# -- legacy (tf.keras 2 / Keras 2) configs --------------------------------------------


def sanitize_legacy_config(config: dict) -> tuple[dict, list[str]]:
    """Map what Keras 3 no longer reads in a tf.keras 2 config, where safe.

    Returns:
        The new config (the input is not changed) and a list of what was changed.
    """
    import inspect

    config = copy.deepcopy(config)
    changes: list[str] = []
    bn_params = set(inspect.signature(keras.layers.BatchNormalization.__init__).parameters)
    drop_bn = [k for k in _BN_TRAINING_ONLY if k not in bn_params]
    for entry, is_layer in _walk(config):
        name = entry.get("class_name")
        inner = entry.get("config")
        if not isinstance(inner, dict):
            continue
        if is_layer and name in LEGACY_LAYER_MAP:
            entry["class_name"] = LEGACY_LAYER_MAP[name]
            if entry.get("module"):
                entry["module"] = "keras.layers"
            changes.append(f"{name} {inner.get('name')!r} -> {LEGACY_LAYER_MAP[name]}")
            name = entry["class_name"]
        if is_layer and name == "BatchNormalization":
            for key in drop_bn:
                inner.pop(key, None)
        if is_layer and name == "DepthwiseConv2D" and "groups" in inner:
            if int(inner["groups"]) != 1:
                raise ModelFileError(
                    f"DepthwiseConv2D {inner.get('name')!r} has groups={inner['groups']}, "
                    "which Keras does not support"
                )
            inner.pop("groups")
        if name == "VarianceScaling" and inner.get("distribution") == "normal":
            inner["distribution"] = "truncated_normal"
    return config, changes


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
    _refuse_if_unsafe(report, path.name, trust_model_code)
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


def _producer(tensor):
    operation, node_index, _ = tensor._keras_history
    return operation, operation._inbound_nodes[node_index]


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
            operation, node = _producer(current)
            if isinstance(operation, keras.layers.Conv2D) and not isinstance(
                operation, (keras.layers.Conv2DTranspose, keras.layers.DepthwiseConv2D)
            ):
                break
            linear = isinstance(operation, keras.layers.Activation) and (
                getattr(operation.activation, "__name__", "") == "linear"
            )
            if (isinstance(operation, _PASS_THROUGH) or linear) and len(node.input_tensors) == 1:
                current = node.input_tensors[0]
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
        out = node.output_tensors[0]
        h, w, channels = out.shape[1], out.shape[2], out.shape[3]
        if h is None or w is None:
            raise ModelFileError(f"{name}: head {conv.name!r} has no fixed grid size")
        parent, parent_node = _producer(node.input_tensors[0])
        # Keras 3 functional models may hold plain operations (keras.ops.*), which are
        # not layers and cannot be looked up by name: use the nearest layer above them
        # (the explainer then differentiates through the operations with a tape).
        while not isinstance(parent, keras.layers.Layer):
            if len(parent_node.input_tensors) != 1:
                raise ModelFileError(
                    f"{name}: head {conv.name!r} is fed by the Keras operation "
                    f"{parent.name!r}, which has several inputs; wrap it in a layer"
                )
            parent, parent_node = _producer(parent_node.input_tensors[0])
        heads.append(
            FoundHead(conv, out, parent.name, (int(h), int(w)), int(channels), anchors_in_shape)
        )
    if not heads:
        raise ModelFileError(f"{name} has no outputs. {NEED_RAW}")
    if len({id(h.conv) for h in heads}) != len(heads):
        raise ModelFileError(f"{name}: two outputs come from the same convolution. {NEED_RAW}")
    heads.sort(key=lambda h: h.grid[0] * h.grid[1])
    return heads


def parse_input_size(value) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, (int, str)):
        try:
            side = int(value)
        except ValueError:
            raise ModelFileError(f"input size {value!r} is not a whole number") from None
        size = (side, side)
    else:
        size = tuple(int(v) for v in value)
        if len(size) != 2:
            raise ModelFileError(f"input size {value!r} must be one number or (height, width)")
    if any(s <= 0 or s % 32 for s in size):
        raise ModelFileError(
            f"input size {size[1]}×{size[0]}: YOLO inputs must be positive multiples of 32 "
            "(e.g. 320, 416, 608)"
        )
    return size  # type: ignore[return-value]


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
            from keras.src.saving import serialization_lib

            with serialization_lib.SafeModeScope(False):
                rebuilt = keras.Model.from_config(config, custom_objects=CUSTOM_OBJECTS)
        else:
            rebuilt = keras.Model.from_config(config, custom_objects=CUSTOM_OBJECTS)
        rebuilt.set_weights(model.get_weights())
    except Exception as exc:
        raise ModelFileError(
            f"the model does not accept a {size[1]}×{size[0]} input: {_first_line(exc)}"
        ) from None
    return rebuilt


def detector_from_keras_model(
    model: keras.Model,
    *,
    classes: ClassesSpec = None,
    anchors: AnchorsSpec = None,
    anchor_masks: MasksSpec = None,
    input_size: int | tuple[int, int] | None = None,
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
        ModelFileError: not a raw-head YOLO model, or options that do not fit it.
    """
    label = name or model.name
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
    wanted = parse_input_size(input_size)
    fixed = (in_shape[1], in_shape[2]) if in_shape[1] and in_shape[2] else None
    if wanted is None and fixed is None:
        wanted = (416, 416)
    if wanted is not None and wanted != fixed:
        model = with_input_size(model, wanted, trust_model_code)
    in_h, in_w = (int(v) for v in model.inputs[0].shape[1:3])

    found = find_heads(model, label)
    per_head = anchors_for_heads(len(found), anchors, anchor_masks)
    heads: list[HeadInfo] = []
    num_classes = None
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
        if num_classes is not None and c != num_classes:
            raise ModelFileError(
                f"{label}: heads predict different class counts ({num_classes} and {c}); "
                "check the anchor masks"
            )
        num_classes = c
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
    assert num_classes is not None
    class_names = resolve_class_names(classes, num_classes)
    wired = keras.Model(model.inputs[0], [h.output for h in found], name=model.name)
    return Detector(
        wired,
        heads,
        class_names,
        letterbox=True if letterbox is None else bool(letterbox),
        name=label,
    )


def load_keras_detector(
    path: str | Path,
    *,
    classes: ClassesSpec = None,
    anchors: AnchorsSpec = None,
    anchor_masks: MasksSpec = None,
    input_size: int | tuple[int, int] | None = None,
    letterbox: bool | None = None,
    trust_model_code: bool = False,
    name: str | None = None,
) -> Detector:
    """Load a ``.keras`` / ``.h5`` YOLO model safely and make it a :class:`Detector`.

    Example:
        >>> detector = load_keras_detector("yolo3_mobilenetv2_lite_voc.h5", classes="voc")
        >>> [h.grid for h in detector.heads]
        [(13, 13), (26, 26), (52, 52)]

    See :func:`load_keras_model` (safety) and :func:`detector_from_keras_model`
    (options). Raises :class:`~yolocam_core.errors.UnsafeModelError` for files with
    Python code unless ``trust_model_code``, and
    :class:`~yolocam_core.errors.ModelFileError` for anything else unusable.
    """
    path = Path(path)
    model = load_keras_model(path, trust_model_code=trust_model_code)
    return detector_from_keras_model(
        model,
        classes=classes,
        anchors=anchors,
        anchor_masks=anchor_masks,
        input_size=input_size,
        letterbox=letterbox,
        name=name or path.name,
        trust_model_code=trust_model_code,
    )


__all__ = [
    "ACTIVATIONS",
    "CUSTOM_OBJECTS",
    "ModelFileReport",
    "detector_from_keras_model",
    "find_heads",
    "inspect_model_file",
    "load_keras_detector",
    "load_keras_model",
    "sanitize_legacy_config",
]
