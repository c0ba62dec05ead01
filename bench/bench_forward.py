"""Forward-pass speed of our converted model against OpenCV DNN's Darknet importer.

Both run the default model (yolov4-tiny, 416×416) on the same preprocessed bus.jpg:
ours is ``Detector.predict`` (compiled forward + decode of both heads, results as
numpy), OpenCV's is ``net.forward`` of its [yolo] outputs (which decode too). After a
warm-up, the two are timed alternately, so that load from other processes on a shared
machine hits both alike; the ratio of medians is the number to compare.

Usage:
    .venv/bin/python bench/bench_forward.py [--repeats 30] [--warmup 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np
import tensorflow as tf
from machine import cpu_model

from yolocam_core import load_detector, load_image, sample_images
from yolocam_core.models.zoo import zoo_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed runs of each (30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs of each first (5)")
    args = parser.parse_args()

    detector = load_detector("yolov4-tiny")
    files = zoo_files("yolov4-tiny")
    cfg, weights = files.cfg, files.weights
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    out_names = net.getUnconnectedOutLayersNames()

    image = load_image(sample_images()["bus.jpg"])
    tensor, _ = detector.preprocess(image)  # (1, 416, 416, 3) float32 in [0, 1]
    blob = np.ascontiguousarray(tensor.transpose(0, 3, 1, 2))  # the same numbers, NCHW

    def ours():
        return detector.predict(tensor)

    def opencv():
        net.setInput(blob)
        return net.forward(out_names)

    # Same input, same answer (a benchmark of a wrong model would mean nothing).
    for (_, obj, _), theirs in zip(ours(), opencv(), strict=True):
        assert np.abs(obj.reshape(-1) - theirs[:, 4]).max() < 1e-3

    for _ in range(args.warmup):
        ours()
        opencv()
    times: dict[str, list[float]] = {"ours": [], "opencv": []}
    for _ in range(args.repeats):
        for name, run in (("ours", ours), ("opencv", opencv)):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)

    med = {name: statistics.median(values) * 1000 for name, values in times.items()}
    spread = {name: (min(values) * 1000, max(values) * 1000) for name, values in times.items()}
    print(f"machine : {cpu_model()}, {os.cpu_count()} logical cores ({platform.machine()})")
    print(
        f"versions: python {platform.python_version()}, tensorflow {tf.__version__}, "
        f"opencv {cv2.__version__} (cv2 threads {cv2.getNumThreads()})"
    )
    print(
        f"model   : yolov4-tiny {detector.input_size[1]}×{detector.input_size[0]}, "
        f"bus.jpg, {args.warmup} warm-up + {args.repeats} interleaved runs each"
    )
    for name, label in (("ours", "ours (Detector.predict)"), ("opencv", "OpenCV net.forward")):
        low, high = spread[name]
        print(f"{label:<24}: median {med[name]:7.1f} ms  (min {low:.1f}, max {high:.1f})")
    print(f"ratio ours / OpenCV     : {med['ours'] / med['opencv']:.2f}")


if __name__ == "__main__":
    main()
