"""``run_batch``: list, skip what is complete, run an engine, write the summary."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from yolocam_core.batch.engines import load_explainer, run_local, run_ray
from yolocam_core.batch.folders import image_dir, list_images, read_marker
from yolocam_core.batch.image import error_row, fail_image, resolve_targets
from yolocam_core.batch.settings import (
    ENGINES,
    METRIC_COLUMNS,
    RAY_LOG,
    SUMMARY_COLUMNS,
    SUMMARY_CSV,
    SUMMARY_PARQUET,
    BatchReport,
    BatchSettings,
    ImageItem,
    source_stat,
)
from yolocam_core.errors import YolocamError
from yolocam_core.files import ensure_output_folder, file_problem, shown
from yolocam_core.runtime import available_cpus


def run_batch(
    input_dir: str | Path,
    out_dir: str | Path,
    settings: BatchSettings,
    *,
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> BatchReport:
    """Explain every image under ``input_dir`` into ``out_dir`` and write the summary.

    Args:
        input_dir: folder of images (searched recursively).
        out_dir: output folder (created; not the input folder itself); a previous
            run's output is resumed.
        settings: what to compute; its model is loaded with ``settings.model.load()``
            here and in every worker, only when there is work to do.
        engine: ``"local"`` or ``"ray"``.
        workers: local processes, or Ray actors.
        address: a Ray cluster's address (``engine="ray"``); None starts a local Ray.
        progress: show a progress bar (None: only on a terminal).
        log: called with one line per failed image, and per image with a note (too
            small or elongated for the network, detections left out); default: stderr.

    Returns:
        A :class:`BatchReport`. The summary has every listed image: its rows from its
        marker, or one error row. Files that are not regular files (a named pipe, a
        device, a symbolic-link loop) are error rows, never opened.

    Raises:
        YolocamError: bad input or output folder, bad settings, engine problems (one line).
    """
    start = time.perf_counter()
    _check_run(input_dir, out_dir, settings, engine, workers, address)
    out = Path(out_dir)
    items = list_images(input_dir, exclude=out)
    ensure_output_folder(out)
    results, pending = _resume(items, out, settings)
    report = BatchReport(total=len(items), skipped=len(results))
    explainer = None
    if pending:  # the model is loaded only when there is work; it checks the settings
        explainer = load_explainer(settings)
        _check_against_model(settings, explainer.detector)
    with contextlib.ExitStack() as stack:
        stream = sys.stderr
        if pending and engine == "ray":
            stream = _ray_output_to_log(stack, out)
        bar = _progress_bar(len(items), len(results), progress, stream)
        say = log or (lambda line: print(line, file=stream, flush=True))

        def tell(line: str) -> None:
            """One line for the user, above the progress bar when there is one."""
            if bar is not None and not bar.disable and log is None:
                bar.write(line, file=stream)
            else:
                say(line)

        def on_result(item: ImageItem, marker: dict) -> None:
            results[item.rel] = marker
            report.computed += 1
            if marker.get("status") != "ok":
                line = f"yolocam: error: {marker.get('error')}"
            else:  # a photo the network sees badly, detections left out: said, not failed
                first = (marker.get("rows") or [{}])[0]
                line = (
                    f"yolocam: note: {first['image']}: {first['note']}"
                    if first.get("note")
                    else None
                )
            if line is not None:
                tell(line)
            if bar is not None:
                bar.update(1)

        cpus = available_cpus()
        if engine == "local" and workers > cpus and len(pending) > 1:
            # Each worker holds its own model (about 0.4 GB); past the CPUs they only
            # compete (15 workers on 2 CPUs: 8× slower, 6 GB more memory).
            tell(
                f"yolocam: note: {workers} workers asked for, {cpus} CPU(s) available to "
                f"this process; using {cpus}"
            )
            workers = cpus
        try:
            pending = _refuse_special_files(pending, out, settings, on_result)
            if pending and engine == "local":
                run_local(pending, out, settings, workers, explainer, on_result)
            elif pending:
                run_ray(pending, Path(input_dir), out, settings, workers, address, on_result)
        except KeyboardInterrupt:
            report.interrupted = True
        except YolocamError:
            # The engine failed part-way: keep what finished in the summary, then report.
            _finish(report, items, results, out, interrupted=True)
            raise
        finally:
            if bar is not None:
                bar.close()
    _finish(report, items, results, out, interrupted=report.interrupted)
    report.seconds = time.perf_counter() - start
    return report


def _check_run(input_dir, out_dir, settings, engine, workers, address) -> None:
    """What is wrong with the call itself, before anything is listed or loaded."""
    if engine not in ENGINES:
        raise YolocamError(f"--engine {engine!r}: use one of {', '.join(ENGINES)}")
    if workers < 1:
        raise YolocamError(f"--workers {workers}: must be at least 1")
    if address and engine != "ray":
        raise YolocamError("--address is for --engine ray")
    settings.check()
    if Path(out_dir).resolve() == Path(input_dir).resolve():
        raise YolocamError(
            f"--out {shown(out_dir)}: is the input folder; the overlays written there would "
            "be read as images by the next run: name another folder (inside it is fine)"
        )


def _resume(items, out: Path, settings: BatchSettings) -> tuple[dict[str, dict], list]:
    """The markers of the images already complete, and the images left to do."""
    fingerprint = settings.fingerprint()
    results: dict[str, dict] = {}
    pending: list[ImageItem] = []
    for item in items:
        marker = read_marker(image_dir(out, item.rel), fingerprint, source_stat(item.path))
        if marker is not None:
            results[item.rel] = marker
        else:
            pending.append(item)
    return results, pending


def _refuse_special_files(pending, out, settings, on_result) -> list[ImageItem]:
    """Record the items that are not regular files as failed (never opened: a named
    pipe would block for ever); return the others."""
    readable = []
    for item in pending:
        problem = file_problem(item.path)
        if problem is None:
            readable.append(item)
        else:
            on_result(item, fail_image(item, out, settings, problem))
    return readable


def _ray_output_to_log(stack: contextlib.ExitStack, out: Path):
    """Ray's C++ core writes warnings straight to file descriptor 2, and its driver
    prints the raylet's warnings on stdout; keep both in a log file so that the terminal
    has only the bar and our one-line messages. Returns the stream for those."""
    stream = stack.enter_context(_native_stderr_to(out / RAY_LOG))
    log_file = stack.enter_context(open(out / RAY_LOG, "a", encoding="utf-8"))
    stack.enter_context(contextlib.redirect_stdout(log_file))
    return stream


@contextlib.contextmanager
def _native_stderr_to(path: Path):
    """Send file descriptor 2 (native libraries' output) to ``path`` for a while; yield a
    stream for our own messages that still reaches the real stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    own = None
    try:
        own = sys.stderr
        if _fileno(sys.stderr) == 2:  # a terminal or a pipe, not a capture object
            own = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
        os.dup2(target, 2)
        yield own
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(target)
        if own is not None and own is not sys.stderr:
            own.close()


def _fileno(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _check_against_model(settings: BatchSettings, detector) -> None:
    """The settings that need the model: the scales' range and a class name."""
    resolve_targets(settings.targets, detector.class_names)
    detector.check_scales(settings.scales, "--scales")


def _progress_bar(total: int, initial: int, progress: bool | None, stream):
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a nicety; never a reason to fail
        return None
    return tqdm(
        total=total,
        initial=initial,
        unit="img",
        desc="yolocam batch",
        disable=None if progress is None else not progress,
        file=stream,
        dynamic_ncols=True,
    )


def _finish(report, items, results, out, interrupted: bool) -> None:
    rows: list[dict] = []
    for item in items:
        marker = results.get(item.rel)
        if marker is None:
            if interrupted:
                continue  # not reached before the interruption; the next run does it
            message = f"{item.rel}: not processed (the engine returned no result)"
            marker = {"status": "error", "error": message, "rows": [error_row(item.rel, message)]}
        if marker.get("status") != "ok":
            report.failures.append((item.rel, str(marker.get("error"))))
        rows.extend(marker["rows"])
    report.failed = len(report.failures)
    report.summary_csv, report.summary_parquet = write_summary(rows, out)


def summary_frame(rows: Iterable[dict]):
    """The summary rows as a pandas DataFrame with the columns of :data:`SUMMARY_COLUMNS`
    (then any metric columns), typed, in a deterministic order."""
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    extra = [c for c in METRIC_COLUMNS if c in frame.columns]
    extra += sorted(c for c in frame.columns if c not in SUMMARY_COLUMNS and c not in extra)
    for column in SUMMARY_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    frame = frame[[*SUMMARY_COLUMNS, *extra]]
    dtypes = dict(SUMMARY_COLUMNS) | {c: METRIC_COLUMNS.get(c, "Float64") for c in extra}
    frame = frame.astype(dtypes)
    return frame.reset_index(drop=True)


def write_summary(rows: Sequence[dict], out_dir: Path) -> tuple[Path, Path]:
    """Write ``summary.csv`` and ``summary.parquet`` (each by atomic rename)."""
    frame = summary_frame(rows)
    csv_path, parquet_path = out_dir / SUMMARY_CSV, out_dir / SUMMARY_PARQUET
    for path, write in (
        (csv_path, lambda p: frame.to_csv(p, index=False)),
        (parquet_path, lambda p: frame.to_parquet(p, index=False)),
    ):
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        write(tmp)
        os.replace(tmp, path)
    return csv_path, parquet_path
