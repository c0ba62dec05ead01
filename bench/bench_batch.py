"""Batch throughput: images per second of ``yolocam batch`` by engine and workers.

A folder of N copies of the two sample photos (full size: bus 810×1080, zidane
1280×720) is generated under ``.cache/bench/batch-images``; each configuration then
explains it from scratch (Grad-CAM, every detection, every scale: one overlay PNG and
one raw map per detection × scale) into its own folder:

    local-1   in this process
    local-2   2 spawned processes, each loading the model once
    ray-2     Ray Data on a local Ray with 2 CPUs: parallel reads, 2 actors

Two figures per configuration:

    wall      N / wall time of the whole call, start-up included (model loads, process
              or Ray start, tracing of the compiled functions)
    steady    (N - 1) / (time between the first and the last finished image), from the
              images' done.json times: the rate once everything is running
    cpu/img   CPU seconds (user + system, this process and its child processes) per
              image, start-up included: what the work costs whatever else runs on a
              shared machine (not measurable for Ray, whose workers are not our children)

Usage:
    .venv/bin/python bench/bench_batch.py [--images 40] [--methods gradcam]
        [--only local-1,local-2,ray-2] [--keep]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

from machine import cpu_model

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".cache" / "bench"
CONFIGS = {"local-1": ("local", 1), "local-2": ("local", 2), "ray-2": ("ray", 2)}


def memory_gb() -> float:
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return float("nan")


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def cpu_times() -> list[int] | None:
    """The machine's CPU time counters (/proc/stat: user nice system idle iowait irq
    softirq steal), or None off Linux."""
    try:
        with open("/proc/stat", encoding="utf-8") as handle:
            return [int(v) for v in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None


def machine_share(before: list[int] | None, after: list[int] | None) -> str:
    """How busy the whole machine was and how much the hypervisor stole meanwhile."""
    if not before or not after:
        return "n/a"
    delta = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(delta) or 1
    idle = delta[3] + delta[4]
    return (
        f"busy {100 * (total - idle) / total:.0f}%, of which stolen {100 * delta[7] / total:.0f}%"
    )


def make_folder(count: int) -> Path:
    from yolocam_core import sample_images

    folder = BENCH / "batch-images"
    samples = sorted(sample_images().values())
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for k in range(count):
        source = samples[k % len(samples)]
        shutil.copy2(source, folder / f"{k:04d}-{source.name}")
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40, help="images in the folder (40)")
    parser.add_argument("--methods", default="gradcam", help="comma-separated (gradcam)")
    parser.add_argument("--only", default=",".join(CONFIGS), help="configurations to run")
    parser.add_argument("--keep", action="store_true", help="keep the outputs (~10 MB/image)")
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    from yolocam_core.batch import DONE_MARKER, BatchSettings, run_batch

    try:
        import ray

        ray_version = ray.__version__
    except ImportError:
        ray_version = "not installed"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {cpu_model()}, {cpus} CPUs available, {memory_gb():.0f} GB RAM")
    print("load average before: {:.1f} {:.1f} {:.1f} (shared machine?)".format(*os.getloadavg()))
    print(
        f"python {platform.python_version()}, tensorflow {tf.__version__}, "
        f"numpy {np.__version__}, ray {ray_version}"
    )
    folder = make_folder(args.images)
    settings = BatchSettings(methods=tuple(args.methods.split(",")))
    print(
        f"{args.images} images (copies of bus.jpg 810×1080 and zidane.jpg 1280×720), "
        f"methods {', '.join(settings.methods)}, targets: every detection, all scales\n"
    )
    print(
        f"{'config':<9} {'wall s':>7} {'img/s wall':>11} {'img/s steady':>13} {'cpu/img':>8}"
        "  rows  failed"
    )
    results = {}
    machine_before = cpu_times()
    for name in args.only.split(","):
        engine, workers = CONFIGS[name]
        out = BENCH / "batch-out" / name
        if out.exists():
            shutil.rmtree(out)
        cpu_start = cpu_seconds()
        start = time.perf_counter()
        report = run_batch(folder, out, settings, engine=engine, workers=workers, progress=False)
        wall = time.perf_counter() - start
        cpu = (cpu_seconds() - cpu_start) / args.images if engine == "local" else float("nan")
        times = sorted(p.stat().st_mtime for p in out.glob(f"images/*/{DONE_MARKER}"))
        steady = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
        import pandas as pd

        rows = len(pd.read_parquet(report.summary_parquet))
        if not args.keep:
            shutil.rmtree(out)
        results[name] = (wall, args.images / wall, steady)
        print(
            f"{name:<9} {wall:>7.1f} {args.images / wall:>11.2f} {steady:>13.2f} {cpu:>8.2f}"
            f"  {rows:>4}  {report.failed:>6}",
            flush=True,
        )
    print("load average after:  {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    print(f"all CPUs during the runs: {machine_share(machine_before, cpu_times())}")
    if "local-1" in results:
        base = results["local-1"]
        print()
        for name, (_, rate, steady) in results.items():
            if name != "local-1":
                print(
                    f"{name} / local-1: wall {rate / base[1]:.2f}×, steady {steady / base[2]:.2f}×"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
