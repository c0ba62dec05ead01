"""Which method answers "why this box?" best: metrics per method on a set of photos.

For every detection with score >= 0.5 (default model, or --model), at the detection's
own scale, per method:

    PG        pointing game: the map's peak lies in the detection's box
    inst      instance rate: ... and outside every other detected box of its class
    del/rnd   mean deletion AUC over the mean deletion AUC of a random map on the
              same grid (lower = more faithful; <= 0.5 is the issue's bar)
    ins/rnd   the same for insertion (higher = more faithful)
    ρ casc    Spearman ρ of the map with the map of a model whose every layer between
              the explained layer and the head output is re-initialised (Adebayo's
              cascade; near 0 passes)
    ρ c∪supp  ρ casc computed only over the cells where either map is above zero (a
              diagnostic: how much of ρ the shared zeros make)
    ρ last2   the same with the last two convolutions per head re-initialised
    ρ D-RISE  Spearman ρ with D-RISE's map of the same detection and head (area-
              averaged to the map's grid)
    support   share of the raw map's cells above zero

Deletion and insertion use the grey fill and 16 steps of yolocam_core.metrics. D-RISE
uses --masks masks (same seed for every photo). ODAM configurations to compare are
given as --odam NAME=SCALE:LAYER[+LAYER],SCALE:LAYER[,fuse=max][,sigma=1]
(e.g. --odam deep=0:route_16,1:route_16).

Usage:
    .venv/bin/python bench/eval_methods.py [photos ...] [--methods gradcam,odam,drise]
        [--masks 1000] [--odam NAME=SPEC ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from machine import cpu_model

from yolocam_core import load_detector, load_image, sample_images
from yolocam_core.cams import ODAM, DRise, get_method
from yolocam_core.explainer import Explainer
from yolocam_core.metrics import (
    PerturbationCurves,
    agreement,
    instance_hit,
    pointing_game,
    random_baseline,
    randomised_explainer,
    rank_correlation,
    same_class_others,
    support_fraction,
)
from yolocam_core.targets import DetectionTarget

CONFIDENT = 0.5


def parse_odam(text: str) -> tuple[str, ODAM]:
    """``NAME=0:layer+layer,1:layer,fuse=max,sigma=1`` -> (NAME, ODAM(...))."""
    name, _, spec = text.partition("=")
    layers: dict[int, tuple[str, ...]] = {}
    options: dict[str, object] = {}
    for part in filter(None, spec.split(",")):
        key, _, value = part.partition(":") if ":" in part else part.partition("=")
        if key == "fuse":
            options["fuse"] = value
        elif key == "sigma":
            options["sigma"] = float(value)
        else:
            layers[int(key)] = tuple(value.split("+"))
    return name, ODAM(layers=layers or None, **options)


def nanmean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def on_support(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman ρ over the cells where either map is above zero."""
    keep = (a > 0) | (b > 0)
    return rank_correlation(a[keep], b[keep]) if keep.sum() > 2 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="*", help="images (default: the two sample photos)")
    parser.add_argument("--methods", default="gradcam,hirescam,eigencam,odam,drise")
    parser.add_argument("--odam", action="append", default=[], help="NAME=SPEC (see above)")
    parser.add_argument("--masks", type=int, default=1000, help="D-RISE masks (1000)")
    parser.add_argument("--no-sanity", action="store_true", help="skip the ρ columns")
    parser.add_argument("--no-deletion", action="store_true", help="skip del/rnd, ins/rnd")
    parser.add_argument("--model", default="yolov4-tiny")
    args = parser.parse_args()

    detector = load_detector(args.model)
    explainer = Explainer(detector)
    photos = args.photos or [str(p) for p in sample_images().values()]
    methods: dict[str, object] = {}
    for name in filter(None, args.methods.split(",")):
        methods[name] = DRise(masks=args.masks) if name == "drise" else get_method(name)
    for text in args.odam:
        name, cam = parse_odam(text)
        methods[name] = cam
    last_two = None if args.no_sanity else randomised_explainer(explainer, mode="last-two")
    cascades: dict[str, Explainer] = {}
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in methods}
    timing: dict[str, float] = dict.fromkeys(methods, 0.0)
    n_dets = 0
    start_all = time.perf_counter()
    for path in photos:
        image = load_image(path)
        fwd = explainer.forward(image)
        detections = explainer.detect(fwd)
        chosen = [k for k, d in enumerate(detections) if d.score >= CONFIDENT]
        if not chosen:
            print(f"{Path(path).name}: no detection >= {CONFIDENT}", flush=True)
            continue
        n_dets += len(chosen)
        confident = [detections[k] for k in chosen]
        targets = [DetectionTarget(d) for d in confident]
        perturb = PerturbationCurves(detector, image, confident)

        def upsample(grid, fwd=fwd):
            return explainer.to_image(grid, fwd.letterbox)

        random = {}
        if not args.no_deletion:
            random = {
                s: random_baseline(perturb, (0, 1, 2), head.grid, upsample)
                for s, head in enumerate(detector.heads)
            }
        drise_cam = methods.get("drise") or DRise(masks=args.masks)
        t0 = time.perf_counter()
        reference = drise_cam.saliency(explainer, fwd, confident)
        drise_time = time.perf_counter() - t0
        for name, cam in methods.items():
            t0 = time.perf_counter()
            explained = explainer.explain_many(fwd, targets, cam, norm="per-map")
            timing[name] += drise_time if name == "drise" else time.perf_counter() - t0
            rho_c = rho_l = rho_s = [None] * len(targets)
            if not args.no_sanity and not cam.black_box:
                if name not in cascades:
                    cascades[name] = randomised_explainer(explainer, mode="cascade", method=cam)
                rc = cascades[name].explain_many(image, targets, cam)
                rl = last_two.explain_many(image, targets, cam)
                rho_c = [
                    rank_correlation(e.by_scale(d.scale).grid_map, r.by_scale(d.scale).grid_map)
                    for e, r, d in zip(explained, rc, confident, strict=True)
                ]
                rho_l = [
                    rank_correlation(e.by_scale(d.scale).grid_map, r.by_scale(d.scale).grid_map)
                    for e, r, d in zip(explained, rl, confident, strict=True)
                ]
                rho_s = [
                    on_support(e.by_scale(d.scale).grid_map, r.by_scale(d.scale).grid_map)
                    for e, r, d in zip(explained, rc, confident, strict=True)
                ]
            for i, (k, det, exp) in enumerate(zip(chosen, confident, explained, strict=True)):
                own = exp.by_scale(det.scale)
                deletion = insertion = rdel = rins = np.nan
                if not args.no_deletion:
                    curves = perturb.curves(own.heatmap).select(i)
                    deletion, insertion = curves.deletion_auc[0], curves.insertion_auc[0]
                    rdel = random[det.scale].deletion_auc[i]
                    rins = random[det.scale].insertion_auc[i]
                rows[name].append(
                    {
                        "pg": pointing_game(own.heatmap, det.box_xyxy),
                        "inst": instance_hit(
                            own.heatmap, det.box_xyxy, same_class_others(detections, k)
                        ),
                        "del": float(deletion),
                        "ins": float(insertion),
                        "rdel": float(rdel),
                        "rins": float(rins),
                        "rho_c": np.nan if rho_c[i] is None else rho_c[i],
                        "rho_l": np.nan if rho_l[i] is None else rho_l[i],
                        "rho_s": np.nan if rho_s[i] is None else rho_s[i],
                        "drise": np.nan
                        if cam.black_box
                        else agreement(own.grid_map, reference.per_head[i, det.scale]),
                        "support": support_fraction(own.grid_map),
                    }
                )
        print(f"{Path(path).name}: {len(chosen)} detection(s) >= {CONFIDENT}", flush=True)

    print()
    print(f"machine : {cpu_model()}, {os.cpu_count()} logical cores ({platform.machine()})")
    print(
        f"model   : {args.model}; {len(photos)} photos, {n_dets} detections >= {CONFIDENT}, "
        f"own scale; D-RISE {args.masks} masks; {time.perf_counter() - start_all:.0f} s"
    )
    header = (
        f"{'method':<22}{'n':>4}{'PG':>6}{'inst':>6}{'del/rnd':>9}{'ins/rnd':>9}"
        f"{'ρ casc':>8}{'ρ c∪supp':>9}{'ρ last2':>8}{'ρ D-RISE':>9}{'support':>9}"
        f"{'s/img':>7}"
    )
    print(header)
    for name, values in rows.items():
        if not values:
            continue

        def col(key, values=values):
            return np.array([v[key] for v in values], np.float64)

        print(
            f"{name:<22}{len(values):>4}{col('pg').mean():>6.2f}{col('inst').mean():>6.2f}"
            f"{col('del').mean() / col('rdel').mean():>9.2f}"
            f"{col('ins').mean() / col('rins').mean():>9.2f}"
            f"{nanmean(col('rho_c')):>8.2f}{nanmean(col('rho_s')):>9.2f}"
            f"{nanmean(col('rho_l')):>8.2f}{nanmean(col('drise')):>9.2f}"
            f"{col('support').mean():>9.2f}{timing[name] / max(1, len(photos)):>7.2f}"
        )
    print(
        "PG/inst: rates; del/rnd, ins/rnd: mean AUC over the random map's; ρ: mean Spearman; "
        "support: share of cells > 0; s/img: seconds per photo for all its detections"
    )


if __name__ == "__main__":
    sys.exit(main())
