"""Darknet cfg parser, Keras builder and weights loader on tiny cfgs checked by hand.

Every cfg here is written in the test; every expected value is computed with numpy
loops that follow Darknet's C code (convolutional_layer.c, maxpool_layer.c,
batchnorm, activations.h), not with our Keras layers.
"""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np
import pytest
from darknet_helpers import resize_cfg, weights_file

from yolocam_core.errors import ConfigError, ModelNotFoundError, WeightsError
from yolocam_core.heads import HeadInfo
from yolocam_core.models.darknet import (
    BN_EPSILON,
    build_model,
    load_darknet,
    load_weights,
    parse_cfg,
    plan_model,
    read_weights_header,
)

# A one-anchor, one-class head: 1×1 linear convolution with 6 filters, then [yolo].
HEAD = """
[convolutional]
size=1
stride=1
pad=1
filters=6
activation=linear

[yolo]
mask=0
anchors=2,3
classes=1
num=1
"""


def tiny_cfg(body: str, width: int = 8, height: int = 8, channels: int = 1) -> str:
    return f"[net]\nwidth={width}\nheight={height}\nchannels={channels}\n\n{body}\n{HEAD}"


def build(body: str, **net):
    return build_model(parse_cfg(tiny_cfg(body, **net)))


def layer_outputs(built, names, x) -> dict[str, np.ndarray]:
    """Outputs of the named layers of a built model for input ``x``."""
    model = built.model
    probe = keras.Model(model.inputs[0], [model.get_layer(n).output for n in names])
    outs = probe(x, training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return {n: np.asarray(o) for n, o in zip(names, outs, strict=True)}


def head_zeros(in_channels: int) -> list[np.ndarray]:
    """File values of HEAD's convolution (6 biases, 6 × in_channels kernel), all zero."""
    return [np.zeros(6), np.zeros(6 * in_channels)]


def darknet_conv(x, kernel, bias, stride, pad):
    """Darknet's convolution: x (H, W, C), kernel (F, C, k, k) as stored in the file,
    ``pad`` zeros on every side; output ((H + 2p - k) // s + 1, ..., F)."""
    h, w, _ = x.shape
    f, _, k, _ = kernel.shape
    xp = np.zeros((h + 2 * pad, w + 2 * pad, x.shape[2]))
    xp[pad : pad + h, pad : pad + w] = x
    out_h, out_w = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    out = np.zeros((out_h, out_w, f))
    for i in range(out_h):
        for j in range(out_w):
            patch = xp[i * stride : i * stride + k, j * stride : j * stride + k]  # (k, k, C)
            for n in range(f):
                out[i, j, n] = np.sum(patch * kernel[n].transpose(1, 2, 0)) + bias[n]
    return out


def darknet_maxpool(x, size, stride, padding):
    """maxpool_layer.c: window starts at i*stride - padding//2; cells outside are skipped."""
    h, w, c = x.shape
    out_h, out_w = (h + padding - size) // stride + 1, (w + padding - size) // stride + 1
    out = np.full((out_h, out_w, c), -np.inf)
    offset = -(padding // 2)
    for i in range(out_h):
        for j in range(out_w):
            for di in range(size):
                for dj in range(size):
                    r, q = offset + i * stride + di, offset + j * stride + dj
                    if 0 <= r < h and 0 <= q < w:
                        out[i, j] = np.maximum(out[i, j], x[r, q])
    return out


# -- parser ---------------------------------------------------------------------------


def test_parser_comments_spacing_case_and_line_numbers():
    text = (
        "# a comment before anything\n"  # 1
        "[net]\n"  # 2
        "  Width = 64   # trailing comment\n"  # 3
        "HEIGHT=32\n"  # 4
        "; a semicolon comment\n"  # 5
        "\n"  # 6
        "[Convolutional]\n"  # 7
        "filters = 16\n"  # 8
        "\tsize=3\n"  # 9
        "Activation= Leaky\n"  # 10
        "[conv]\n"  # 11
        "FILTERS=8\n"  # 12
    )
    config = parse_cfg(text)
    assert config.net.type == "net" and config.net.line == 2
    assert config.net.options == {"width": "64", "height": "32"}
    assert config.net.key_lines == {"width": 3, "height": 4}
    assert config.input_size == (32, 64)
    assert [s.type for s in config.layers] == ["convolutional", "convolutional"]
    first, second = config.layers
    assert (first.line, first.index, second.line, second.index) == (7, 0, 11, 1)
    assert first.options == {"filters": "16", "size": "3", "activation": "Leaky"}
    assert first.key_lines == {"filters": 8, "size": 9, "activation": 10}
    assert second.options == {"filters": "8"} and second.key_lines == {"filters": 12}


def test_unknown_section_names_it_and_its_line():
    text = "[net]\nwidth=8\nheight=8\n\n[dropout]\nprobability=.5\n"
    with pytest.raises(ConfigError) as info:
        parse_cfg(text)
    message = str(info.value)
    assert "[dropout]" in message and "line 5" in message


def test_unknown_key_names_it_its_section_and_line():
    text = "[net]\nwidth=8\nheight=8\n[convolutional]\nfilters=3\n\nbogus_key = 1\n"
    with pytest.raises(ConfigError) as info:
        parse_cfg(text)
    message = str(info.value)
    assert "bogus_key" in message and "line 7" in message and "[convolutional]" in message


def test_key_accepted_only_at_its_neutral_value():
    parse_cfg("[net]\nwidth=8\nheight=8\n[convolutional]\nfilters=3\ngroups=1\n")
    with pytest.raises(ConfigError) as info:
        parse_cfg("[net]\nwidth=8\nheight=8\n[convolutional]\nfilters=3\ngroups=2\n")
    assert "groups=2" in str(info.value) and "line 6" in str(info.value)


def test_training_only_keys_are_accepted_and_change_nothing():
    plain = tiny_cfg("[maxpool]\nsize=2\nstride=2\n")
    training_net = (
        "batch=64\nsubdivisions=16\nmomentum=0.949\ndecay=0.0005\nangle=0\nsaturation = 1.5\n"
        "exposure = 1.5\nhue=.1\nlearning_rate=0.0013\nburn_in=1000\nmax_batches = 500500\n"
        "policy=steps\nsteps=400000,450000\nscales=.1,.1\nmosaic=1\n"
    )
    training_yolo = (
        "jitter=.3\nignore_thresh = .7\ntruth_thresh = 1\nrandom=1\nscale_x_y = 1.0\n"
        "iou_thresh=0.213\ncls_normalizer=1.0\niou_normalizer=0.07\niou_loss=ciou\n"
        "nms_kind=greedynms\nbeta_nms=0.6\nmax_delta=5\nresize=1.5\n"
    )
    noisy = plain.replace("[net]\n", "[net]\n" + training_net).replace(
        "num=1\n", "num=1\n" + training_yolo
    )
    a, b = build_model(parse_cfg(plain)), build_model(parse_cfg(noisy))
    assert parse_cfg(noisy).net.options["subdivisions"] == "16"
    assert a.heads == b.heads
    assert [c.num_values for c in a.convs] == [c.num_values for c in b.convs]


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("[net]\nwidth=8\nheight=8\n[maxpool]\nsize 2\n", ["line 5", "size 2"]),
        ("width=8\n[net]\nheight=8\n", ["line 1", "before any [section]"]),
        ("[convolutional]\nfilters=3\n", ["[net]"]),
        ("[net]\nwidth=8\nheight=8\n[maxpool]\n[net]\nwidth=8\n", ["line 5", "second [net]"]),
        ("[net]\nwidth=8\n", ["missing required key 'height'"]),
    ],
)
def test_malformed_cfg_messages(text, fragments):
    with pytest.raises(ConfigError) as info:
        parse_cfg(text)
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ("[convolutional]\nfilters=abc\nsize=1\n", ["filters='abc'", "line 7"]),
        ("[convolutional]\nfilters=2\nsize=1\nactivation=elu\n", ["'elu'", "line 9"]),
        ("[maxpool]\nsize=2\n[route]\nlayers=1\n", ["line 9", "not an earlier layer"]),
        (
            "[convolutional]\nfilters=2\nsize=1\n[convolutional]\nfilters=3\nsize=1\n"
            "[shortcut]\nfrom=-2\n",
            ["shortcut", "must match"],
        ),
        ("[maxpool]\nsize=1\n[route]\nlayers=-1\ngroups=2\n", ["groups=2", "not divisible"]),
    ],
)
def test_invalid_layers_name_key_and_line(body, fragments):
    with pytest.raises(ConfigError) as info:
        build(body, channels=1)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_yolo_filter_count_and_missing_head_are_errors():
    bad = tiny_cfg("").replace("filters=6", "filters=7")
    with pytest.raises(ConfigError) as info:
        build_model(parse_cfg(bad))
    assert "7 filters" in str(info.value) and "1 anchors × (5 + 1 classes) = 6" in str(info.value)
    with pytest.raises(ConfigError) as info:
        build_model(parse_cfg("[net]\nwidth=8\nheight=8\n[maxpool]\nsize=2\n"))
    assert "no [yolo]" in str(info.value)


# -- convolution padding, activations, batch norm --------------------------------------


def test_stride2_conv_pads_like_darknet_not_like_keras_same():
    """size=3 stride=2 pad=1 on an 8×8 input: Darknet pads 1 pixel on *every* side
    (output (8 + 2 - 3) // 2 + 1 = 4); Keras 'same' pads 0 before and 1 after, which
    shifts every window by one pixel."""
    body = "[convolutional]\nfilters=1\nsize=3\nstride=2\npad=1\nactivation=linear\n"
    built = build(body, width=8, height=8, channels=1)
    kernel = (np.arange(9, dtype=np.float64) - 4.0).reshape(1, 1, 3, 3) / 4.0
    bias = np.array([0.25])
    load_weights(built, weights_file([bias, kernel, *head_zeros(1)]))
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 1)).astype(np.float32)

    ours = layer_outputs(built, ["conv_0"], x)["conv_0"][0]
    expected = darknet_conv(x[0].astype(np.float64), kernel, bias, stride=2, pad=1)
    assert ours.shape == expected.shape == (4, 4, 1)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)

    same = keras.layers.Conv2D(1, 3, strides=2, padding="same")
    same.build((1, 8, 8, 1))
    same.set_weights([kernel[0, 0][:, :, None, None].astype(np.float32), bias.astype(np.float32)])
    keras_same = np.asarray(same(x))[0]
    assert keras_same.shape == ours.shape
    assert np.abs(keras_same - expected).max() > 0.1


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("leaky", lambda x: np.where(x > 0, x, 0.1 * x)),
        ("mish", lambda x: x * np.tanh(np.log1p(np.exp(x)))),
        ("swish", lambda x: x / (1.0 + np.exp(-x))),
        ("logistic", lambda x: 1.0 / (1.0 + np.exp(-x))),
        ("linear", lambda x: x),
        ("relu", lambda x: np.maximum(x, 0.0)),
    ],
)
def test_activation_values(name, reference):
    body = f"[convolutional]\nfilters=1\nsize=1\nstride=1\nactivation={name}\n"
    built = build(body, width=16, height=2, channels=1)
    load_weights(built, weights_file([[0.0], [1.0], *head_zeros(1)]))  # identity conv
    x = np.linspace(-6.0, 6.0, 32).reshape(1, 2, 16, 1).astype(np.float32)
    name_of_output = built.heads[0].cam_layer
    assert name_of_output == ("conv_0" if name == "linear" else f"conv_0_{name}")
    ours = layer_outputs(built, [name_of_output], x)[name_of_output]
    np.testing.assert_allclose(ours, reference(x.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_default_activation_is_logistic_as_in_darknet():
    built = build("[convolutional]\nfilters=1\nsize=1\n")
    assert built.heads[0].cam_layer == "conv_0_logistic"


BN_BODY = (
    "[convolutional]\nbatch_normalize=1\nfilters=2\nsize=3\nstride=1\npad=1\nactivation=linear\n"
)


def bn_values():
    beta = np.array([0.1, -0.2])
    gamma = np.array([1.5, 0.5])
    mean = np.array([0.3, -0.4])
    var = np.array([1e-5, 2.0])  # 1e-5: the epsilon (1e-6) changes the result by ~5 %
    kernel = (np.arange(2 * 3 * 3 * 3, dtype=np.float64).reshape(2, 3, 3, 3) - 27.0) / 50.0
    return beta, gamma, mean, var, kernel


@pytest.mark.parametrize(
    ("major", "minor", "seen", "header_bytes"),
    [(0, 2, 2**40 + 7, 20), (0, 1, 123_456, 16)],
    ids=["64-bit-seen", "32-bit-seen"],
)
def test_batchnorm_folding_against_hand_computation(major, minor, seen, header_bytes):
    """File order per convolution: biases (beta), scales (gamma), rolling mean, rolling
    variance, kernel (F, C, k, k); output gamma·(conv − mean)/sqrt(var + 1e-6) + beta."""
    beta, gamma, mean, var, kernel = bn_values()
    data = weights_file(
        [beta, gamma, mean, var, kernel, *head_zeros(2)], major=major, minor=minor, seen=seen
    )
    assert read_weights_header(data) == ((major, minor, 0), seen, header_bytes)
    assert len(data) == header_bytes + 4 * (4 * 2 + 2 * 3 * 9 + 6 + 6 * 2)

    built = build(BN_BODY, width=5, height=5, channels=3)
    load_weights(built, data)
    x = np.random.default_rng(1).normal(size=(1, 5, 5, 3)).astype(np.float32)
    ours = layer_outputs(built, ["conv_0"], x)["conv_0"][0]

    raw = darknet_conv(x[0].astype(np.float64), kernel, np.zeros(2), stride=1, pad=1)
    expected = gamma * (raw - mean) / np.sqrt(var + 1e-6) + beta
    assert BN_EPSILON == 1e-6
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)
    # Keras' BatchNormalization default epsilon (1e-3) would be far off:
    keras_eps = gamma * (raw - mean) / np.sqrt(var + 1e-3) + beta
    assert np.abs(keras_eps - expected).max() > 1.0


@pytest.mark.parametrize("change", ["truncated", "too long"])
def test_weights_size_mismatch_reports_expected_and_actual_bytes(change):
    beta, gamma, mean, var, kernel = bn_values()
    data = weights_file([beta, gamma, mean, var, kernel, *head_zeros(2)])
    expected = 20 + 4 * (4 * 2 + 2 * 3 * 9 + 6 + 6 * 2)
    bad = data[:-4] if change == "truncated" else data + b"\0\0\0\0"
    built = build(BN_BODY, width=5, height=5, channels=3)
    with pytest.raises(WeightsError) as info:
        load_weights(built, bad)
    message = str(info.value).replace(",", "")
    assert f"expected {expected} bytes" in message
    assert f"got {len(bad)} bytes" in message
    assert ("too short" if change == "truncated" else "too long") in message


def test_weights_header_too_short():
    with pytest.raises(WeightsError) as info:
        read_weights_header(b"\0" * 8)
    assert "8 bytes" in str(info.value)


def test_load_darknet_from_files(tmp_path):
    beta, gamma, mean, var, kernel = bn_values()
    cfg = tmp_path / "tiny-bn.cfg"
    cfg.write_text(tiny_cfg(BN_BODY, width=5, height=5, channels=3))
    weights = tmp_path / "tiny-bn.weights"
    weights.write_bytes(weights_file([beta, gamma, mean, var, kernel, *head_zeros(2)]))
    built = load_darknet(cfg, weights)
    assert built.model.name == "tiny_bn"
    folded = built.model.get_layer("conv_0").get_weights()
    np.testing.assert_allclose(folded[1], beta - mean * gamma / np.sqrt(var + 1e-6), rtol=1e-5)
    with pytest.raises(ModelNotFoundError) as info:
        load_darknet(tmp_path / "missing.cfg")
    assert "missing.cfg: no such file" in str(info.value)


# -- section types ----------------------------------------------------------------------


ROUTE_INPUTS = (
    "[convolutional]\nfilters=4\nsize=1\nactivation=linear\n"  # 0
    "[convolutional]\nfilters=6\nsize=1\nactivation=linear\n"  # 1
    "[maxpool]\nsize=1\nstride=1\n"  # 2: identity, so that -3 / -2 reach conv 0 / 1
)


@pytest.mark.parametrize(
    ("route", "name", "expected"),
    [
        ("layers=-2,-3", "route_3", lambda c0, c1: np.concatenate([c1, c0], -1)),
        ("layers=0, 1", "route_3", lambda c0, c1: np.concatenate([c0, c1], -1)),
        ("layers=-2\ngroups=2\ngroup_id=1", "route_3_slice0", lambda c0, c1: c1[..., 3:]),
        (
            "layers=0,1\ngroups=2\ngroup_id=0",
            "route_3",
            lambda c0, c1: np.concatenate([c0[..., :2], c1[..., :3]], -1),
        ),
        ("layers=-2", "conv_1", lambda c0, c1: c1),
    ],
    ids=["relative", "absolute", "group-1-of-2", "groups-of-two-layers", "single"],
)
def test_route_concatenates_in_order_and_selects_groups(route, name, expected):
    built = build(ROUTE_INPUTS + f"[route]\n{route}\n", width=4, height=3, channels=2)
    # The route is the last layer before the head's 1×1 convolution.
    assert built.heads[0].cam_layer == name
    x = np.random.default_rng(2).normal(size=(1, 3, 4, 2)).astype(np.float32)
    out = layer_outputs(built, ["conv_0", "conv_1", name], x)
    want = expected(out["conv_0"], out["conv_1"])
    np.testing.assert_array_equal(out[name], want)
    assert built.convs[-1].in_channels == want.shape[-1]


@pytest.mark.parametrize("activation", ["linear", "leaky"])
def test_shortcut_adds_and_activates(activation):
    body = (
        "[convolutional]\nfilters=4\nsize=1\nactivation=linear\n"
        "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=linear\n"
        f"[shortcut]\nfrom=-2\nactivation={activation}\n"
    )
    built = build(body, width=4, height=4, channels=3)
    x = np.random.default_rng(3).normal(size=(1, 4, 4, 3)).astype(np.float32)
    last = built.heads[0].cam_layer
    assert last == ("shortcut_2" if activation == "linear" else "shortcut_2_leaky")
    out = layer_outputs(built, ["conv_0", "conv_1", last], x)
    total = out["conv_0"] + out["conv_1"]
    expected = total if activation == "linear" else np.where(total > 0, total, 0.1 * total)
    np.testing.assert_allclose(out[last], expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("size", "stride", "hw", "out_hw"),
    [
        (2, 2, (6, 8), (3, 4)),  # plain halving
        (2, 2, (7, 5), (4, 3)),  # odd input: the extra (size - 1) padding goes after
        (2, 1, (5, 6), (5, 6)),  # yolov3-tiny's size keeper: pads only after
        (5, 1, (7, 7), (7, 7)),  # SPP
        (9, 1, (7, 7), (7, 7)),
        (13, 1, (7, 7), (7, 7)),
    ],
)
def test_maxpool_matches_darknet_loop(size, stride, hw, out_hw):
    body = f"[maxpool]\nsize={size}\nstride={stride}\n"
    built = build(body, width=hw[1], height=hw[0], channels=2)
    # All negative: padding with zeros instead of -inf would show at the borders.
    x = -np.random.default_rng(size).uniform(1.0, 2.0, size=(1, *hw, 2)).astype(np.float32)
    ours = layer_outputs(built, ["maxpool_0"], x)["maxpool_0"][0]
    expected = darknet_maxpool(x[0], size, stride, padding=size - 1)
    assert ours.shape[:2] == expected.shape[:2] == out_hw
    np.testing.assert_array_equal(ours, expected)


def test_spp_block_shapes_and_values():
    """yolov3-spp's block: maxpools 5/9/13 with stride 1 routed back together."""
    body = (
        "[maxpool]\nsize=1\nstride=1\n"  # 0: identity (size 1, padding 0)
        "[maxpool]\nstride=1\nsize=5\n"  # 1
        "[route]\nlayers=-2\n"  # 2
        "[maxpool]\nstride=1\nsize=9\n"  # 3
        "[route]\nlayers=-4\n"  # 4
        "[maxpool]\nstride=1\nsize=13\n"  # 5
        "[route]\nlayers=-1,-3,-5,-6\n"  # 6
    )
    built = build(body, width=6, height=5, channels=1)
    x = np.random.default_rng(4).normal(size=(1, 5, 6, 1)).astype(np.float32)
    out = layer_outputs(built, ["route_6"], x)["route_6"][0]
    parts = [darknet_maxpool(x[0], s, 1, s - 1) for s in (13, 9, 5)] + [x[0]]
    np.testing.assert_array_equal(out, np.concatenate(parts, -1))


def test_upsample_is_nearest_neighbour():
    built = build("[upsample]\nstride=2\n", width=3, height=2, channels=2)
    x = np.random.default_rng(5).normal(size=(1, 2, 3, 2)).astype(np.float32)
    out = layer_outputs(built, ["upsample_0"], x)["upsample_0"]
    np.testing.assert_array_equal(out, x.repeat(2, axis=1).repeat(2, axis=2))
    assert built.heads[0].grid == (4, 6)


TWO_HEADS = """[net]
width=64
height=32
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask=1,2,3
anchors=10,14, 23,27, 37,58, 81,82
classes=2
num=4
scale_x_y=1.05

[route]
layers=-3

[upsample]
stride=2

[route]
layers=-1,0

[convolutional]
size=1
stride=1
pad=1
filters=14
activation=linear

[yolo]
mask=0,3
anchors=10,14, 23,27, 37,58, 81,82
classes=2
num=4
"""


def test_yolo_head_info():
    built = build_model(parse_cfg(TWO_HEADS))
    assert built.heads == [
        HeadInfo(
            index=0,
            output_name="conv_3",
            grid=(8, 16),
            stride=4,
            anchors=((23.0, 27.0), (37.0, 58.0), (81.0, 82.0)),
            num_classes=2,
            scale_x_y=1.05,
            cam_layer="conv_2_leaky",
        ),
        HeadInfo(
            index=1,
            output_name="conv_8",
            grid=(16, 32),
            stride=2,
            anchors=((10.0, 14.0), (81.0, 82.0)),
            num_classes=2,
            scale_x_y=1.0,
            cam_layer="route_7",
        ),
    ]
    assert [tuple(o.shape) for o in built.model.outputs] == [(None, 8, 16, 21), (None, 16, 32, 14)]
    assert built.heads[1].label == "16×32 · stride 2"
    assert HeadInfo.from_dict(built.heads[0].to_dict()) == built.heads[0]


def test_cam_layer_feeds_the_final_1x1_convolution():
    """Numerically: the head's raw output is the 1×1 convolution of cam_layer's output."""
    built = build_model(parse_cfg(TWO_HEADS))
    x = np.random.default_rng(6).uniform(size=(1, 32, 64, 3)).astype(np.float32)
    for head in built.heads:
        out = layer_outputs(built, [head.cam_layer, head.output_name], x)
        kernel, bias = built.model.get_layer(head.output_name).get_weights()
        expected = np.einsum("bhwc,cf->bhwf", out[head.cam_layer], kernel[0, 0]) + bias
        np.testing.assert_allclose(out[head.output_name], expected, rtol=1e-4, atol=1e-5)


def test_weights_file_order_over_several_convolutions():
    """Values go to convolutions in cfg order: write distinct constants and read them back."""
    built = build_model(parse_cfg(TWO_HEADS))
    values, expected = [], {}
    for n, conv in enumerate(built.convs):
        fan = conv.in_channels * conv.size * conv.size
        bias = np.full(conv.filters, float(n))
        kernel = np.full(conv.filters * fan, 0.01 * (n + 1))
        if conv.batch_normalize:
            ones, zeros = np.ones(conv.filters), np.zeros(conv.filters)
            values += [bias, ones, zeros, ones - 1e-6, kernel]  # var + eps = 1: no scaling
        else:
            values += [bias, kernel]
        expected[conv.layer_name] = (0.01 * (n + 1), float(n))
    load_weights(built, weights_file(values))
    assert [c.layer_name for c in built.convs] == ["conv_0", "conv_2", "conv_3", "conv_8"]
    for name, (k, b) in expected.items():
        kernel, bias = built.model.get_layer(name).get_weights()
        np.testing.assert_allclose(kernel, k, rtol=1e-6)
        np.testing.assert_allclose(bias, b, rtol=1e-6)


def test_num_values_per_convolution():
    built = build_model(parse_cfg(TWO_HEADS))
    counts = [c.num_values for c in built.convs]
    # conv_0: BN, 3 -> 8, 3×3; conv_2: BN, 8 -> 16, 3×3; conv_3: 16 -> 21, 1×1;
    # conv_8: (16 upsampled from conv_2 + 8 from conv_0) = 24 -> 14, 1×1.
    assert counts == [4 * 8 + 8 * 3 * 9, 4 * 16 + 16 * 8 * 9, 21 + 21 * 16, 14 + 14 * 24]
    assert re.fullmatch(r"conv_\d+", built.heads[1].output_name)


@pytest.mark.parametrize(
    ("width", "height", "message"),
    [
        (417, 416, "width=417 is not a multiple of 32, the network's stride (its largest "
         "downsampling); use e.g. width=416"),
        (416, 300, "height=300 is not a multiple of 32"),
    ],
)  # fmt: skip
def test_an_input_size_off_the_stride_is_named(default_model_files, width, height, message):
    cfg = Path(default_model_files[0]).read_text()
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        plan_model(parse_cfg(resize_cfg(cfg, width, height)))
    assert "[net] at line" in str(info.value) and "[route]" not in str(info.value)
