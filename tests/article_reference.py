"""The article's Grad-CAM snippet, transcribed as written (eager; a new gradient model
on every call). The reference that the `seed` method is tested against, and the
"article's loop" of bench/bench_explain.py."""

from __future__ import annotations

import cv2
import numpy as np
import tensorflow as tf


def article_heatmap(model, layer_name, s, img, W, H):  # noqa: N803 - the article's names
    """Heatmap (H, W) in [0, 1] of head ``s`` at ``layer_name`` for ``img`` (h, w, 3)."""
    grad_model = tf.keras.models.Model(
        [model.inputs], [model.get_layer(layer_name).output, model.outputs[s]]
    )
    with tf.GradientTape() as tape:
        conv_outputs, predictions = grad_model(np.array([img]))
        loss = predictions
    grads = tape.gradient(loss, conv_outputs)
    output = conv_outputs[0]
    grads = grads[0]
    guided_grads = tf.cast(output > 0, "float32") * tf.cast(grads > 0, "float32") * grads
    weights = tf.reduce_mean(guided_grads, axis=(0, 1))
    cam = np.ones(output.shape[0:2], dtype=np.float32)
    for i, w in enumerate(weights):
        cam += w * output[:, :, i]
    cam = cv2.resize(cam.numpy(), (W, H))
    heatmap = (cam - cam.min()) / (cam.max() - cam.min())
    return heatmap
