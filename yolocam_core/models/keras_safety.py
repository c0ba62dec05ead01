"""The code check of Keras model files: what an architecture may contain.

A Keras config can smuggle Python code in many ways: a ``Lambda`` layer (its
bytecode is stored), at the top or nested in a wrapper (``TimeDistributed``,
``Bidirectional``, a nested model) at any depth; a serialized ``__lambda__``; a class
whose ``module`` claims to be Keras' but is not in Keras' registry, or whose
``registered_name`` points at some other registered class; a function (an activation,
a loss) named by module; keys such as ``function`` / ``fn``. The check walks the
**whole** config — every dict and list at every depth, every ``class_name``,
``module``, ``registered_name``, function and activation — and accepts only what is
provably a Keras built-in (resolved through Keras' own registry, as its loader would,
without importing anything the file names) or one of yolocam's registered objects.
Everything else is code, refused unless the caller trusts the file.

Nothing is deserialized here; the config is plain JSON.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from yolocam_core.errors import ModelFileError, UnsafeModelError
from yolocam_core.models.activations import ACTIVATIONS, CUSTOM_OBJECTS
from yolocam_core.models.keras_files import read_model_config
from yolocam_core.models.layers import CUSTOM_OBJECTS as LAYER_OBJECTS

#: Layer classes that hold or load code: never loaded unless trusted.
CODE_LAYERS = frozenset({"Lambda", "TFSMLayer", "JaxLayer", "FlaxLayer", "TorchModuleWrapper"})
#: tf.keras 2 records of raw TensorFlow calls: Keras 3 cannot rebuild them.
TF_OP_LAYERS = frozenset({"TFOpLambda", "SlicingOpLambda"})
#: Layer classes tf.keras 2 saved that Keras 3 lacks, and what they safely become.
LEGACY_LAYER_MAP = {"SyncBatchNormalization": "BatchNormalization"}
#: Keras' serialized plain values (tensors, arrays, bytes, slices): data, not code.
DATA_KINDS = frozenset(
    {"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__", "__slice__"}
)
#: Keys whose value names a function to call.
FUNCTION_KEYS = frozenset({"function", "fn"})
#: Keras modules whose functions a config may name (as Keras' loader searches them).
FUNCTION_MODULES = ("activations", "losses", "metrics")
MODEL_CLASSES = frozenset({"Functional", "Model", "Sequential"})
#: tf.keras 2 names of dtype policies.
LEGACY_DATA_CLASSES = frozenset({"Policy", "DTypePolicy", "FloatDTypePolicy"})

_BN_TRAINING_ONLY = ("renorm", "renorm_clipping", "renorm_momentum", "fused",
                     "virtual_batch_size", "adjustment", "synchronized")  # fmt: skip


@dataclass
class ModelFileReport:
    """What :func:`inspect_config` found.

    Attributes:
        format: ``"keras"`` (zip) or ``"h5"``.
        config: the model's architecture (the JSON Keras would deserialize).
        layer_classes: class name -> number of objects of that class.
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


# -- walking -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """One dict of a config and where it is (``inside``: the enclosing layers' names)."""

    node: dict
    inside: tuple[str, ...]

    def where(self) -> str:
        return f" (inside {' > '.join(repr(n) for n in self.inside)})" if self.inside else ""


def walk_dicts(config, skip=frozenset()) -> Iterator[Found]:
    """Every dict in a config at any depth, parents first (iteratively: no recursion
    limit); the insides of objects whose ``class_name`` is in ``skip`` are not entered."""
    stack: list[tuple[object, tuple[str, ...]]] = [(config, ())]
    while stack:
        node, inside = stack.pop()
        if isinstance(node, dict):
            yield Found(node, inside)
            kind = node.get("class_name")
            if isinstance(kind, str) and kind in skip:
                continue
            inner = node.get("config")
            name = inner.get("name") if isinstance(inner, dict) else None
            child_inside = (
                (*inside, str(name))
                if "class_name" in node and isinstance(name, str) and node is not config
                else inside
            )
            stack.extend((value, child_inside) for value in reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend((item, inside) for item in reversed(node))


def iter_objects(config) -> Iterator[dict]:
    """Every serialized object (a dict with a ``class_name``) in a config."""
    for found in walk_dicts(config):
        if "class_name" in found.node:
            yield found.node


# -- what is built in ----------------------------------------------------------------------


@functools.cache
def _legacy_names() -> frozenset[str]:
    """Class names a module-less (Keras 2) config may use: Keras' public classes of
    the modules its legacy loader searches, models, dtype policies, mapped layers."""
    from yolocam_core.keras_internals import public_classes

    names = public_classes(
        "layers", "initializers", "regularizers", "constraints", "optimizers", "losses",
        "metrics", "dtype_policies",
    )  # fmt: skip
    return frozenset(names) | MODEL_CLASSES | LEGACY_DATA_CLASSES | set(LEGACY_LAYER_MAP)


@functools.cache
def _code_classes() -> tuple[type, ...]:
    import keras

    return tuple(
        getattr(keras.layers, name) for name in sorted(CODE_LAYERS) if hasattr(keras.layers, name)
    )


def _builtin_function(name: str):
    from yolocam_core.keras_internals import builtin_function

    return builtin_function(name, FUNCTION_MODULES)


def known_function(name: str, module: str | None = None) -> bool:
    """Whether a function a config names is one yolocam or Keras provides.

    ``yolocam>mish`` and ``mish`` are ours (looked up by name first, as Keras does: the
    module a file names is not imported); otherwise a Keras built-in of
    :data:`FUNCTION_MODULES`, and when the module is Keras' it must resolve to that
    same function.
    """
    if name in (None, "linear"):
        return True
    short = name.removeprefix("yolocam>")
    if short in ACTIVATIONS:
        return True
    builtin = _builtin_function(name)
    if builtin is None:
        return False
    if module and (module == "keras" or module.startswith("keras.")):
        from yolocam_core.keras_internals import keras_symbol

        resolved = keras_symbol(module, name)
        return resolved is None or resolved is builtin
    return True


def _is_keras_module(module) -> bool:
    return isinstance(module, str) and (module == "keras" or module.startswith("keras."))


# -- classification ------------------------------------------------------------------------


def _check_function(found: Found, report: ModelFileReport) -> None:
    node = found.node
    name, module = node.get("config"), node.get("module")
    if not isinstance(name, str):
        report.unsupported.append(f"a function entry without a name{found.where()}")
    elif not known_function(name, module):
        where = f" (Python module {module!r})" if module not in (None, "builtins") else ""
        report.unsupported.append(
            f"the custom function {name!r}{where}{found.where()}, whose Python code is not "
            f"in the file (yolocam knows Keras' activations and {', '.join(ACTIVATIONS)})"
        )


def _check_class(found: Found, report: ModelFileReport) -> None:
    node = found.node
    name = node["class_name"]
    inner = node.get("config") if isinstance(node.get("config"), dict) else {}
    label = f"{name} layer {inner.get('name', '?')!r}{found.where()}"
    module, registered = node.get("module"), node.get("registered_name")
    report.layer_classes[name] = report.layer_classes.get(name, 0) + 1
    ours = name in LAYER_OBJECTS and registered in (None, name, f"yolocam>{name}")
    if name in CODE_LAYERS:
        report.code.append(f"a {label} (it holds Python code)")
    elif name in TF_OP_LAYERS:
        report.unsupported.append(
            f"a {label}: a raw TensorFlow call recorded by tf.keras 2, which Keras 3 cannot rebuild"
        )
    elif ours:
        return
    elif registered not in (None, name):
        report.code.append(
            f"a custom {label} registered as {registered!r} (its Python code is not in the file)"
        )
    elif module is not None:
        _check_module_class(label, name, module, report)
    elif name not in _legacy_names():
        report.code.append(f"a custom {label} (its Python code is not in the file)")


def _check_module_class(label: str, name: str, module, report: ModelFileReport) -> None:
    from yolocam_core.keras_internals import keras_symbol

    if not _is_keras_module(module):
        report.code.append(
            f"a custom {label} from Python module {module!r} (its Python code is not in the file)"
        )
        return
    resolved = keras_symbol(module, name)
    if resolved is None:
        report.code.append(
            f"a custom {label}: module {module!r} claims to be Keras' but Keras has no "
            f"{name!r} there"
        )
    elif isinstance(resolved, type) and issubclass(resolved, _code_classes()):
        report.code.append(f"a {label} (a {resolved.__name__}: it holds Python code)")


def _check_node(found: Found, report: ModelFileReport) -> None:
    """Classify one dict of the config."""
    node = found.node
    name = node.get("class_name")
    if "class_name" in node and not isinstance(name, str):
        report.unsupported.append(f"an object whose class_name is {name!r}{found.where()}")
    elif name == "__lambda__":
        report.code.append(f"a serialized Python function (lambda){found.where()}")
    elif name == "__typespec__":
        report.code.append(f"a TensorFlow type spec object{found.where()}")
    elif name == "function":
        _check_function(found, report)
    elif name is not None and name not in DATA_KINDS:
        _check_class(found, report)
    elif name is None and ("module" in node or "registered_name" in node):
        report.code.append(
            f"an object naming Python module {node.get('module')!r} without a class"
            f"{found.where()} (Keras' format does not allow it)"
        )
    for key, value in node.items():
        if key in FUNCTION_KEYS and value is not None and name not in CODE_LAYERS:
            # A dict is an object, checked on its own as the walk reaches it.
            if not isinstance(value, dict) and not (
                isinstance(value, str) and known_function(value)
            ):
                report.code.append(f"a {key!r} entry{found.where()} (Python code)")
        elif (key == "activation" or key.endswith("_activation")) and isinstance(value, str):
            if not known_function(value):
                report.unsupported.append(
                    f"the activation {value!r}{found.where()}, which is neither Keras' nor "
                    f"one yolocam registers ({', '.join(ACTIVATIONS)})"
                )


def inspect_config(config: dict, fmt: str) -> ModelFileReport:
    """Classify every object of an architecture: built-in, code, or unsupported.

    Args:
        config: the architecture JSON (see
            :func:`~yolocam_core.models.keras_files.read_model_config`).
        fmt: ``"keras"`` or ``"h5"``.

    Returns:
        The report; empty ``code`` and ``unsupported`` lists mean every object is a
        Keras built-in or one of yolocam's.
    """
    report = ModelFileReport(format=fmt, config=config, legacy=fmt == "h5")
    top = config.get("class_name")
    if top not in MODEL_CLASSES:
        report.unsupported.append(f"the file holds a {top!r}, not a Keras model")
    for found in walk_dicts(config, skip=CODE_LAYERS):  # code is refused whole
        _check_node(found, report)
    report.code = list(dict.fromkeys(report.code))
    report.unsupported = list(dict.fromkeys(report.unsupported))
    return report


def inspect_model_file(path: str | Path) -> ModelFileReport:
    """Read and classify a model file's architecture without loading it."""
    fmt, config = read_model_config(Path(path))
    return inspect_config(config, fmt)


def refuse_if_unsafe(report: ModelFileReport, name: str, trust: bool) -> None:
    """Raise for what cannot load, and for code unless ``trust``.

    Raises:
        ModelFileError: something Keras 3 cannot load at all.
        UnsafeModelError: Python code, and ``trust`` is False.
    """
    if report.unsupported:
        raise ModelFileError(
            f"{name} cannot be loaded: it contains {'; '.join(report.unsupported[:3])}"
        )
    if report.code and not trust:
        found = "; ".join(report.code)
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

    ``SyncBatchNormalization`` -> ``BatchNormalization`` (the same computation at
    inference), training-only batch-norm arguments dropped, ``DepthwiseConv2D``'s
    ``groups=1`` dropped, the old ``"normal"`` initializer distribution read as
    ``"truncated_normal"`` (initializers never matter: the weights come from the file).

    Returns:
        The new config (the input is not changed) and a list of what was changed.
    """
    import inspect

    import keras

    config = copy.deepcopy(config)
    changes: list[str] = []
    bn_params = set(inspect.signature(keras.layers.BatchNormalization.__init__).parameters)
    drop_bn = [k for k in _BN_TRAINING_ONLY if k not in bn_params]
    for entry in iter_objects(config):
        name = entry.get("class_name")
        inner = entry.get("config")
        if not isinstance(inner, dict):
            continue
        if name in LEGACY_LAYER_MAP:
            entry["class_name"] = LEGACY_LAYER_MAP[name]
            if entry.get("module"):
                entry["module"] = "keras.layers"
            changes.append(f"{name} {inner.get('name')!r} -> {LEGACY_LAYER_MAP[name]}")
            name = entry["class_name"]
        if name == "BatchNormalization":
            for key in drop_bn:
                inner.pop(key, None)
        if name == "DepthwiseConv2D" and "groups" in inner:
            if int(inner["groups"]) != 1:
                raise ModelFileError(
                    f"DepthwiseConv2D {inner.get('name')!r} has groups={inner['groups']}, "
                    "which Keras does not support"
                )
            inner.pop("groups")
        if name == "VarianceScaling" and inner.get("distribution") == "normal":
            inner["distribution"] = "truncated_normal"
    return config, changes


__all__ = [
    "CUSTOM_OBJECTS",
    "ModelFileReport",
    "inspect_config",
    "inspect_model_file",
    "refuse_if_unsafe",
    "sanitize_legacy_config",
]
