"""The metrics that ask "this box?": instance hit, support, agreement with D-RISE, and
the cascade randomisation (every layer between the explained layer and the head)."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import detection_at

from yolocam_core.cams import ODAM
from yolocam_core.metrics import (
    agreement,
    instance_hit,
    randomised_explainer,
    randomised_layers,
    rank_correlation,
    same_class_others,
    support_fraction,
)


def peak_map(row: int, col: int, shape=(10, 20)) -> np.ndarray:
    heat = np.zeros(shape, np.float32)
    heat[row, col] = 1.0
    return heat


def test_instance_hit_by_hand():
    # peak at pixel (row 2, col 5): centre (5.5, 2.5)
    heat = peak_map(2, 5)
    own = (4.0, 1.0, 8.0, 4.0)  # contains (5.5, 2.5)
    assert instance_hit(heat, own, [])
    assert instance_hit(heat, own, [(10.0, 0.0, 19.0, 9.0)])  # another box, elsewhere
    assert not instance_hit(heat, own, [(5.0, 2.0, 6.0, 3.0)])  # overlapping box has it
    assert not instance_hit(heat, (0.0, 0.0, 3.0, 3.0), [])  # not in its own box
    assert not instance_hit(np.ones((4, 4)), (0, 0, 4, 4), [])  # a constant map has no peak


def test_same_class_others():
    dets = [detection_at(0, 0), detection_at(1, 1), detection_at(2, 2)]
    dets[2] = dets[2].__class__(**{**dets[2].__dict__, "class_id": 5})
    assert same_class_others(dets, 0) == [dets[1].box_xyxy]
    assert same_class_others(dets, 2) == []


def test_support_fraction():
    assert support_fraction(np.array([[0.0, 1.0], [0.0, 0.5]])) == 0.5
    assert support_fraction(np.zeros((3, 3))) == 0.0


def test_agreement_area_averages_the_reference_to_the_map_grid():
    rng = np.random.default_rng(0)
    grid = rng.random((4, 4))
    # a 16×16 reference whose 4×4 block means are the grid itself
    reference = np.kron(grid, np.ones((4, 4)))
    assert agreement(grid, reference) == pytest.approx(1.0)
    assert agreement(grid, -reference) == pytest.approx(-1.0)
    same = rng.random((4, 4))
    assert agreement(grid, same) == pytest.approx(rank_correlation(grid, same))


def test_cascade_randomises_every_layer_between_the_explained_layer_and_the_head(detector):
    model = detector.keras_model
    assert randomised_layers(detector) == ["conv_29", "conv_28", "conv_36", "conv_35"]
    layers = {s: ODAM().layers(detector, s) for s in range(2)}
    cascade = randomised_layers(detector, "cascade", layers)
    # neck outputs: 13×13 conv_27_leaky -> conv_28 -> conv_29; 26×26 route_34 -> conv_35
    # -> conv_36 (the same as last-two, here)
    assert sorted(cascade) == ["conv_28", "conv_29", "conv_35", "conv_36"]
    deeper = randomised_layers(detector, "cascade", {0: ("route_16",), 1: ("route_16",)})
    for name in ("conv_18", "conv_20", "conv_21", "conv_23", "conv_26", "conv_27", "conv_32"):
        assert name in deeper, name
    assert "conv_15" not in deeper and "conv_10" not in deeper
    assert all(model.get_layer(n).weights for n in deeper)
    with pytest.raises(ValueError, match="mode"):
        randomised_layers(detector, "all")


def test_randomised_explainer_cascade_changes_only_those_layers(detector):
    from yolocam_core.explainer import Explainer

    explainer = Explainer(detector)
    odam = ODAM(layers={0: ("conv_26_leaky",), 1: ("route_34",)})
    twin = randomised_explainer(explainer, mode="cascade", method=odam)
    changed = {
        layer.name
        for layer in detector.keras_model.layers
        if layer.weights
        and not all(
            np.array_equal(a, b)
            for a, b in zip(
                layer.get_weights(),
                twin.detector.keras_model.get_layer(layer.name).get_weights(),
                strict=True,
            )
        )
    }
    # conv_32 feeds route_34 (the 26×26 head's explained layer), so it stays trained
    assert changed == {"conv_27", "conv_28", "conv_29", "conv_35", "conv_36"}
    assert "cascade" in twin.detector.name
