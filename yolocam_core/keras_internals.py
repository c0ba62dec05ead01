"""Every use of Keras' private APIs, in one place, behind small typed functions.

Keras 3 exposes no public API to walk a functional graph (which layer made a tensor,
which layers consume a layer) or to ask its deserializer which class a saved config
names. yolocam needs both: the explainer and the sanity check walk graphs, the
Darknet builder checks the names of the layers it made, and the model-file check
resolves every class a file names the way Keras' loader would. When a Keras release
moves these internals, this module is the only one to change.

Private names used: ``KerasTensor._keras_history``, ``Operation._inbound_nodes`` /
``_outbound_nodes``, ``Node.parent_nodes`` / ``input_tensors`` / ``output_tensors``,
``keras.src.api_export.get_symbol_from_name``, ``keras.src.saving.keras_saveable``,
``keras.src.saving.serialization_lib.SafeModeScope``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any


def producer(tensor) -> tuple[Any, Any]:
    """(operation, node) that produced a symbolic Keras tensor.

    Args:
        tensor: a ``KerasTensor`` of a functional model (e.g. ``model.outputs[0]``).

    Returns:
        The layer or operation that computed it and the graph node of that call.
    """
    operation, node_index, _ = tensor._keras_history
    return operation, operation._inbound_nodes[node_index]


def producer_name(tensor) -> str:
    """Name of the layer or operation that produced a symbolic Keras tensor."""
    return tensor._keras_history.operation.name


def node_inputs(node) -> list:
    """The symbolic tensors a graph node consumed."""
    return list(node.input_tensors)


def node_outputs(node) -> list:
    """The symbolic tensors a graph node produced."""
    return list(node.output_tensors)


def input_node(tensor):
    """The graph node that produced a symbolic Keras tensor, or None for a model input."""
    operation, node_index, _ = tensor._keras_history
    if operation is None or not operation._inbound_nodes:
        return None
    node = operation._inbound_nodes[node_index]
    return None if node.is_input else node


def call_count(layer) -> int:
    """How many times ``layer`` is called in the graphs it belongs to."""
    return len(layer._inbound_nodes)


def parent_layers(layer, call: int = 0) -> list:
    """The layers (or operations) whose outputs feed ``layer``'s ``call``-th call."""
    return [parent.operation for parent in layer._inbound_nodes[call].parent_nodes]


def consumer_names(layer) -> set[str]:
    """Names of the layers and operations that use ``layer``'s outputs."""
    return {node.operation.name for node in layer._outbound_nodes}


def ancestor_names(layer) -> set[str]:
    """Names of every layer and operation upstream of ``layer`` (not ``layer`` itself)."""
    seen: set[str] = set()
    stack = list(layer._inbound_nodes)
    while stack:
        node = stack.pop()
        for parent in node.parent_nodes:
            name = parent.operation.name
            if name not in seen:
                seen.add(name)
                stack.extend(parent.operation._inbound_nodes)
    return seen


def activation_elements(model) -> int:
    """Float values of every tensor one forward pass of a functional model creates for
    one image (each operation call's outputs, batch axis excluded; unknown sizes 1)."""
    total = 0
    for operation in model.operations:
        for node in operation._inbound_nodes:
            for tensor in node.output_tensors:
                count = 1
                for side in tuple(tensor.shape)[1:]:
                    count *= int(side or 1)
                total += count
    return total


# -- what Keras' deserializer would resolve ----------------------------------------------


def _saveable_base() -> type:
    from keras.src.saving.keras_saveable import KerasSaveable

    return KerasSaveable


def keras_symbol(module: str, name: str) -> Any | None:
    """The Keras built-in a saved config's ``module`` + ``class_name`` would load, or None.

    Follows Keras' own lookup (its registry of public API names, e.g.
    ``keras.layers.Dense``, then a class of an already imported ``keras.*`` module)
    without importing anything a file names.

    Args:
        module: the config's ``module`` (e.g. ``"keras.layers"``,
            ``"keras.src.ops.numpy"``); anything outside ``keras`` gives None.
        name: the config's ``class_name`` (or a function's name).

    Returns:
        The class or function, or None when it is not a Keras built-in.
    """
    if module != "keras" and not module.startswith("keras."):
        return None
    from keras.src.api_export import get_symbol_from_name

    found = get_symbol_from_name(f"{module}.{name}")
    if found is not None:
        return found
    loaded = sys.modules.get(module)
    value = vars(loaded).get(name) if loaded is not None else None
    if (
        isinstance(value, type)
        and issubclass(value, _saveable_base())
        and value.__module__.startswith("keras.")
    ):
        return value
    return None


def builtin_function(name: str, modules: tuple[str, ...] = ("activations",)) -> Any | None:
    """The Keras built-in function ``keras.<module>.<name>`` for the first module that
    has it (as Keras resolves functions saved with module ``builtins``), or None."""
    from keras.src.api_export import get_symbol_from_name

    for module in modules:
        found = get_symbol_from_name(f"keras.{module}.{name}")
        if found is not None and callable(found) and not isinstance(found, type):
            return found
    return None


def public_classes(*modules: str) -> dict[str, type]:
    """Class name -> class of every public class in ``keras.<module>`` for each module
    (e.g. ``"layers"``, ``"initializers"``): the names legacy (Keras 2) configs use."""
    from keras.src.api_export import REGISTERED_NAMES_TO_OBJS

    found: dict[str, type] = {}
    for api_name, obj in REGISTERED_NAMES_TO_OBJS.items():
        parent, _, name = api_name.rpartition(".")
        if parent in {f"keras.{m}" for m in modules} and isinstance(obj, type):
            found.setdefault(name, obj)
    return found


@contextlib.contextmanager
def unsafe_deserialization() -> Iterator[None]:
    """Within: Keras deserializes Python code (Lambda layers). Only for trusted files."""
    from keras.src.saving import serialization_lib

    with serialization_lib.SafeModeScope(False):
        yield


__all__ = [
    "activation_elements",
    "ancestor_names",
    "builtin_function",
    "consumer_names",
    "keras_symbol",
    "node_inputs",
    "node_outputs",
    "parent_layers",
    "producer",
    "producer_name",
    "public_classes",
    "unsafe_deserialization",
]
