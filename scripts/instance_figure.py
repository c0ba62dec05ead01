"""docs/screenshots/instance.png: Grad-CAM against ODAM for one detection among several
of its class, on a public-domain photo (citrus-fruits.jpg, US Department of
Agriculture; fetched from Debian into .cache/samples by scripts/fetch-samples.sh, which
this runs). Grad-CAM is class-discriminative and lights every orange; ODAM lights the
one asked about. Usage: ``.venv/bin/python scripts/instance_figure.py [--index K]``.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from yolocam_core import load_detector, load_image, render
from yolocam_core.explainer import Explainer
from yolocam_core.runtime import start_tensorflow
from yolocam_core.targets import DetectionTarget

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / ".cache" / "samples" / "citrus-fruits.jpg"
OUT = ROOT / "docs" / "screenshots" / "instance.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=int, default=None, help="detection index")
    args = parser.parse_args()
    subprocess.run(["bash", str(ROOT / "scripts" / "fetch-samples.sh")], check=True)
    start_tensorflow()
    explainer = Explainer(load_detector("yolov4-tiny"))
    image = load_image(str(PHOTO))
    fwd = explainer.forward(image)
    detections = explainer.detect(fwd, 0.5)
    index = args.index
    if index is None:  # the most confident orange, among several
        index = next(k for k, d in enumerate(detections) if d.class_name == "orange")
    target = DetectionTarget(detections[index])
    rows = []
    for method in ("gradcam", "odam"):
        explanation = explainer.explain(fwd, target, method)
        rows.append(render.sheet(image, explanation, height=300, model="yolov4-tiny"))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(np.concatenate(rows, axis=0))
    picture.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(OUT, optimize=True)
    print(OUT.relative_to(ROOT), f"{OUT.stat().st_size // 1024} KB, detection #{index}")


if __name__ == "__main__":
    main()
