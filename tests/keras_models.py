"""Keras YOLO models built the way the popular Keras YOLOv3 projects build them, for the
importer's tests.

- :func:`article_model`: the YOLOv3-MobileNetV2 Grad-CAM article's model, i.e.
  keras-YOLOv3-model-set's ``yolo3lite_mobilenetv2_body``: ``keras.applications``
  MobileNetV2 (weights=None here) with features at ``out_relu`` (13×13×1280),
  ``block_13_expand_relu`` (26×26×576) and ``block_6_expand_relu`` (52×52×192), and the
  "lite" head: depthwise-separable blocks named ``conv_dw_pred_*`` / ``conv_pw_pred_*``,
  the last of each head ``conv_pw_pred_{1,2,3}_3_leaky_relu``, then the 1×1 prediction
  convolutions ``predict_conv_{1,2,3}``. Written here from the project's description
  of its layers (names, filters), not copied.
- :func:`small_model`: a fast two- or three-head model with the same kind of head.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers


def conv_bn_leaky(x, filters: int, size: int, strides: int = 1):
    """DarknetConv2D_BN_Leaky: conv without bias, batch norm, LeakyReLU(0.1)."""
    x = layers.Conv2D(filters, size, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.LeakyReLU(negative_slope=0.1)(x)


def separable(x, filters: int, block: str):
    """Depthwise_Separable_Conv2D_BN_Leaky with the project's layer names."""
    x = layers.DepthwiseConv2D(3, padding="same", name=f"conv_dw_{block}")(x)
    x = layers.BatchNormalization(name=f"conv_dw_{block}_bn")(x)
    x = layers.LeakyReLU(negative_slope=0.1, name=f"conv_dw_{block}_leaky_relu")(x)
    x = layers.Conv2D(filters, 1, padding="same", use_bias=False, name=f"conv_pw_{block}")(x)
    x = layers.BatchNormalization(name=f"conv_pw_{block}_bn")(x)
    return layers.LeakyReLU(negative_slope=0.1, name=f"conv_pw_{block}_leaky_relu")(x)


def lite_last_layers(x, filters: int, out_filters: int, block: str, predict_id: str):
    """make_depthwise_separable_last_layers: (branch to the next scale, head output)."""
    x = conv_bn_leaky(x, filters, 1)
    x = separable(x, filters * 2, f"{block}_1")
    x = conv_bn_leaky(x, filters, 1)
    x = separable(x, filters * 2, f"{block}_2")
    x = conv_bn_leaky(x, filters, 1)
    y = separable(x, filters * 2, f"{block}_3")
    y = layers.Conv2D(out_filters, 1, padding="same", name=f"predict_conv_{predict_id}")(y)
    return x, y


def article_model(num_classes: int = 20, size: int = 416, seed: int = 5) -> keras.Model:
    """YOLOv3-Lite-MobileNetV2 (the article's model), random weights, VOC by default."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3), name="image_input")
    backbone = keras.applications.MobileNetV2(input_tensor=inputs, weights=None, include_top=False)
    f1 = backbone.get_layer("out_relu").output
    f2 = backbone.get_layer("block_13_expand_relu").output
    f3 = backbone.get_layer("block_6_expand_relu").output
    out = 3 * (num_classes + 5)
    x, y1 = lite_last_layers(f1, 1280 // 2, out, "pred_1", "1")
    x = layers.UpSampling2D(2)(conv_bn_leaky(x, 576 // 2, 1))
    x = layers.Concatenate()([x, f2])
    x, y2 = lite_last_layers(x, 576 // 2, out, "pred_2", "2")
    x = layers.UpSampling2D(2)(conv_bn_leaky(x, 192 // 2, 1))
    x = layers.Concatenate()([x, f3])
    _, y3 = lite_last_layers(x, 192 // 2, out, "pred_3", "3")
    model = keras.Model(inputs, [y1, y2, y3], name="yolo3lite_mobilenetv2")
    _randomise_batch_norm(model, np.random.default_rng(seed))
    return model


def _randomise_batch_norm(model: keras.Model, rng: np.random.Generator) -> None:
    """Trained-looking batch-norm statistics, so that saving and loading them is tested."""
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                    rng.normal(0.0, 0.1, beta.shape).astype("float32"),
                    rng.normal(0.0, 0.1, mean.shape).astype("float32"),
                    rng.uniform(0.5, 1.5, var.shape).astype("float32"),
                ]
            )


def small_model(
    num_classes: int = 20,
    size: int = 128,
    heads: int = 3,
    seed: int = 7,
    activation: str = "relu",
) -> keras.Model:
    """A fast model with ``heads`` raw YOLO heads (coarsest first), 3 anchors each.

    The grids are size/32, size/16 (and size/8). Head convolutions are named
    ``predict_conv_{1,2,3}`` and fed by ``pred_{k}`` layers.
    """
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3), name="image_input")
    x = layers.Conv2D(8, 3, strides=4, padding="same", activation=activation)(inputs)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation=activation)(x)
    f8 = x
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation=activation)(x)
    f16 = x
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation=activation)(x)
    out = 3 * (num_classes + 5)
    y1 = layers.Conv2D(out, 1, name="predict_conv_1")(separable(x, 32, "pred_1"))
    u = layers.Concatenate()([layers.UpSampling2D(2)(x), f16])
    y2 = layers.Conv2D(out, 1, name="predict_conv_2")(separable(u, 32, "pred_2"))
    outputs = [y1, y2]
    if heads == 3:
        u = layers.Concatenate()([layers.UpSampling2D(2)(u), f8])
        outputs.append(layers.Conv2D(out, 1, name="predict_conv_3")(separable(u, 16, "pred_3")))
    return keras.Model(inputs, outputs, name="small_yolo")


def make_one_class_fire(model: keras.Model, class_id: int) -> keras.Model:
    """Zero every head's kernel and set its biases so that, at the coarsest head only,
    anchor 0 of every cell predicts ``class_id`` (objectness and class ≈ 0.998) and
    nothing else passes a 0.25 threshold."""
    for k, name in enumerate(("predict_conv_1", "predict_conv_2", "predict_conv_3")):
        try:
            conv = model.get_layer(name)
        except ValueError:
            continue
        kernel, bias = conv.get_weights()
        bias = np.full_like(bias, -8.0)
        bias[0:4] = 0.0  # anchor 0: box at the cell, anchor-sized
        if k == 0:
            bias[4] = 6.0  # objectness
            bias[5 + class_id] = 6.0
        conv.set_weights([np.zeros_like(kernel), bias])
    return model
