"""A folder tree in, the same tree of adversarial images out (the engine of `agscm perturb`).

Worker processes decode and encode (agscm.runtime.workers) while this process runs the
model on batches of equal-sized tiles (agscm.runtime.tiles): large images in tiles, so memory
is bounded by the batch, not by the largest photo. Every output is written atomically and
then recorded in the manifest; resume trusts only the manifest (agscm.runtime.manifest).
Every queue between the stages is bounded in pixels.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agscm.errors import AgscmError
from agscm.runtime import workers
from agscm.runtime.arrays import quantize, to_float
from agscm.runtime.files import InputTree, check_destination, identity, output_name, walk
from agscm.runtime.images import (
    ALPHA_DROPPED,
    COLOUR_TO_GREY,
    DEFAULT_MAX_PIXELS,
    DEFAULT_PNG_LEVEL,
    FORMATS,
    SIXTEEN_TO_EIGHT,
    Pixels,
)
from agscm.runtime.manifest import FileRecord, Manifest, fingerprint
from agscm.runtime.model import GeneratorModel
from agscm.runtime.png import LEVELS
from agscm.runtime.session import ORT_ERRORS
from agscm.runtime.tiles import DEFAULT_TILE, MARGIN, Tile, tile_grid
from agscm.runtime.workers import Job, WorkerConfig

STATUSES = ("ok", "skipped", "ignored", "failed")
BATCH_PIXELS = 2**18  # a model call stops growing here (a 512x512 tile, 256 CIFAR images)
HOLD_PIXELS = 2 * BATCH_PIXELS  # most pixels waiting in unfinished batches of other sizes
TASK_PIXELS = 2**16  # pixels per decode or encode task sent to a worker
TASK_FILES = 64  # files per task at most
ENCODE_HOLD_PIXELS = 2**22  # pixels sent to the encoders and not yet written
WARNINGS = {
    COLOUR_TO_GREY: "colour images are converted to grey for this 1-channel model (first: {}); "
                    "outputs are grey and their L-inf is measured against the grey image; "
                    "--channels strict refuses them instead",
    SIXTEEN_TO_EIGHT: "16-bit images are reduced to 8 bits (first: {}); outputs are 8-bit",
    ALPHA_DROPPED: "this format has no alpha channel: transparency is dropped (first: {})",
}


@dataclass
class FolderOptions:
    """How a folder run reads and writes; the CLI options of `agscm perturb`."""

    format: str = "png"
    quality: int = 95  # JPEG and WebP only
    png_level: int = DEFAULT_PNG_LEVEL  # 0 (stored) .. 9 (smallest, slowest)
    batch_size: int = 256
    workers: int | None = None  # decode/encode processes; None: one per core; 0: none
    overwrite: bool = False
    shard: tuple[int, int] = (0, 1)  # (i, n): this run takes every n-th file from the i-th
    max_pixels: int = DEFAULT_MAX_PIXELS
    manifest: Path | None = None  # None: OUT/manifest.jsonl (manifest-IofN.jsonl for a shard)
    allow_inside_input: bool = False
    tile: int = DEFAULT_TILE  # largest tile side; 0: whole images (memory grows with size)
    strict_channels: bool = False  # refuse images whose colour does not match the model

    def validate(self) -> None:
        if self.format not in FORMATS:
            raise AgscmError(f"unknown format {self.format!r}; choose one of {', '.join(FORMATS)}")
        if not 1 <= self.quality <= 100:
            raise AgscmError(f"quality must be in 1..100, got {self.quality}")
        if self.png_level not in LEVELS:
            raise AgscmError(f"PNG level must be in 0..9, got {self.png_level}")
        if self.batch_size < 1 or (self.workers is not None and self.workers < 0):
            raise AgscmError("batch size must be >= 1 and workers >= 0")
        if self.max_pixels < 1:
            raise AgscmError(f"max pixels must be >= 1, got {self.max_pixels}")
        if self.tile != 0 and self.tile < 4 * MARGIN:
            raise AgscmError(f"tile must be 0 (off) or >= {4 * MARGIN}, got {self.tile}")


@dataclass
class FolderSummary:
    """What a run did: counts per status, speed, distortion, warnings, and the failures."""

    counts: dict[str, int]
    seconds: float
    provider: str
    manifest: Path
    max_linf: float | None = None
    mean_psnr: float | None = None
    failures: list[FileRecord] = field(default_factory=list)
    converted: dict[str, int] = field(default_factory=dict)  # conversion -> files
    over_eps: int = 0  # saved files past an L-inf model's eps (lossy formats)
    repaired: str | None = None  # what was cut from a torn manifest on start

    @property
    def failed(self) -> int:
        return self.counts["failed"]

    @property
    def images_per_second(self) -> float:
        return self.counts["ok"] / self.seconds if self.seconds > 0 else 0.0


def settings_key(model: GeneratorModel, options: FolderOptions) -> str:
    """A short hash of what decides an output's pixels: the model file and output options."""
    lossy = FORMATS[options.format][2]
    settings = {"model": hashlib.sha256(model.path.read_bytes()).hexdigest(),
                "format": options.format, "quality": options.quality if lossy else None,
                "tile": options.tile}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def plan_folder(tree: InputTree, source: Path, destination: Path, options: FolderOptions,
                manifest: Manifest, settings: str) -> list[Job | FileRecord]:
    """Jobs to run and records already known (problems, outputs done), in input order.

    An output counts as done only if the manifest's latest record for its input is `ok` with
    the same input fingerprint, output name, settings, and an output file that still has the
    size and mtime recorded: existence alone proves nothing.
    """
    suffix = FORMATS[options.format][0]
    index, count = options.shard
    plan: list[Job | FileRecord] = []
    for entry in tree.entries[index::count]:
        src = source / entry.relative
        if entry.problem is not None:
            status = "failed" if entry.failed else "ignored"
            plan.append(FileRecord(str(src), None, status, error=entry.problem))
            continue
        relative = output_name(entry.relative, suffix)
        out = destination / relative
        try:
            input_fingerprint = fingerprint(os.stat(src))
            current = os.lstat(out)
        except FileNotFoundError:
            current = None
        except OSError as exc:
            plan.append(FileRecord(str(src), str(out), "failed", error=f"unreadable ({exc})"))
            continue
        if current is not None and identity(current) in tree.files:
            plan.append(FileRecord(str(src), str(out), "failed",
                                   error="the output path is an input file; not overwriting it"))
            continue
        record = manifest.latest.get(str(src))
        done = (current is not None and not options.overwrite and record is not None
                and record.status == "ok" and record.output == str(out)
                and record.settings == settings
                and record.input_fingerprint == input_fingerprint
                and record.output_fingerprint == fingerprint(current))
        plan.append(FileRecord(str(src), str(out), "skipped") if done
                    else Job(src, relative, input_fingerprint))
    return plan


def perturb_folder(model: GeneratorModel, source: Path, destination: Path,
                   options: FolderOptions | None = None,
                   on_start: Callable[[int], None] | None = None,
                   on_record: Callable[[FileRecord], None] | None = None,
                   on_warning: Callable[[str], None] | None = None) -> FolderSummary:
    """Perturb every image under `source` into the mirrored tree under `destination`.

    `on_start(total)`, `on_record(record)` and `on_warning(text)` (called from this thread)
    drive a progress bar and the run's warnings.
    """
    options = options or FolderOptions()
    options.validate()
    start = time.perf_counter()
    check_destination(source, destination, options.allow_inside_input)
    try:
        destination.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AgscmError(f"{destination}: cannot create the output folder "
                         f"({exc.strerror or exc})") from None
    if not os.access(destination, os.W_OK | os.X_OK):
        raise AgscmError(f"{destination}: the output folder is not writable")
    tree = walk(source, os.path.realpath(destination))
    input_real = os.path.realpath(source)
    manifest = Manifest.open(options.manifest or destination / _manifest_name(options.shard),
                             input_real, tree.files, options.allow_inside_input)
    warn = on_warning or (lambda text: None)
    try:
        if manifest.repaired:
            warn(f"repaired the manifest {manifest.path}: {manifest.repaired}, cut off")
        settings = settings_key(model, options)
        plan = plan_folder(tree, source, destination, options, manifest, settings)
        if on_start is not None:
            on_start(len(plan))
        if FORMATS[options.format][2] and model.linf_eps is not None:
            warn(f"--format {options.format} is lossy: compression can move pixels past eps "
                 f"({model.linf_eps * 255:.3g}/255); each saved file is measured (manifest: "
                 "within_eps)")
        config = WorkerConfig(model.mode, options.max_pixels, options.strict_channels,
                              options.format, options.quality, options.png_level,
                              model.linf_eps, settings, destination, input_real,
                              frozenset(tree.folders), options.allow_inside_input)
        run = _FolderRun(model, options, manifest, on_record, warn)
        run.execute(plan, config)
        manifest.compact()
    finally:
        manifest.close()
    return run.summary(time.perf_counter() - start)


def _manifest_name(shard: tuple[int, int]) -> str:
    index, count = shard
    return "manifest.jsonl" if count == 1 else f"manifest-{index}of{count}.jsonl"


class _InlineExecutor(Executor):
    """Runs each task at once in this process (a run with no worker processes)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


@dataclass
class _Image:
    """An image between decoding and encoding: its tiles come back one batch at a time."""

    job: Job
    pixels: Pixels
    output: np.ndarray
    remaining: int
    error: str | None = None


class _FolderRun:
    """The state of one run: the batches waiting for the model, the encodes, the tallies."""

    def __init__(self, model: GeneratorModel, options: FolderOptions, manifest: Manifest,
                 on_record: Callable[[FileRecord], None] | None,
                 warn: Callable[[str], None]) -> None:
        self.model = model
        self.options = options
        self.manifest = manifest
        self.on_record = on_record
        self.warn = warn
        self.workers = (os.cpu_count() or 1) if options.workers is None else options.workers
        self.counts = dict.fromkeys(STATUSES, 0)
        self.linf: list[float] = []
        self.psnr: list[float] = []
        self.failures: list[FileRecord] = []
        self.converted: dict[str, int] = {}
        self.over_eps = 0
        self.groups: dict[tuple[int, int], list[tuple[_Image, Tile]]] = {}
        self.ready: list[tuple[Job, Pixels, np.ndarray]] = []
        self.encodes: deque[tuple[Future[list[FileRecord]], int]] = deque()
        self.task_files = 1  # then adapted to the image size seen: ~TASK_PIXELS a task

    def execute(self, plan: list[Job | FileRecord], config: WorkerConfig) -> None:
        jobs = [item for item in plan if isinstance(item, Job)]
        self.emit(*(item for item in plan if isinstance(item, FileRecord)))
        if not jobs:
            return
        if self.workers == 0:
            worker = workers.Worker(config)
            self.executor: Executor = _InlineExecutor()
            self.decode, self.encode = worker.decode, worker.encode
        else:
            self.executor = ProcessPoolExecutor(
                min(self.workers, len(jobs)), multiprocessing.get_context("spawn"),
                initializer=workers.start, initargs=(config, os.getpid()))
            self.decode, self.encode = workers.decode, workers.encode
        try:
            self._pipeline(jobs)
        except BrokenProcessPool as exc:
            raise AgscmError(f"a decode/encode worker process died ({exc}); the files "
                             "recorded so far are safe, rerun to resume") from None
        finally:
            self.executor.shutdown(wait=True, cancel_futures=True)
            if self.workers == 0:
                worker.close()

    def _pipeline(self, jobs: list[Job]) -> None:
        decodes: deque[tuple[list[Job], Future[list[Pixels | FileRecord]]]] = deque()
        ahead = max(2, self.workers + 1)  # decode tasks in flight
        position = 0
        while position < len(jobs) or decodes:
            while position < len(jobs) and len(decodes) < ahead:
                chunk = jobs[position:position + self.task_files]
                position += len(chunk)
                decodes.append((chunk, self.executor.submit(self.decode, chunk)))
            chunk, future = decodes.popleft()
            self._take(chunk, future.result())
            self._collect(wait=False)
        for key in list(self.groups):
            self._run_batch(self.groups.pop(key))
        self._send_ready()
        self._collect(wait=True)

    def _take(self, chunk: list[Job], decoded: list[Pixels | FileRecord]) -> None:
        """Tile the decoded images into the batches; run those that are full."""
        pixels = images = 0
        for job, result in zip(chunk, decoded, strict=True):
            if isinstance(result, FileRecord):
                self.emit(result)
                continue
            height, width = result.values.shape[:2]
            pixels, images = pixels + height * width, images + 1
            tiles = tile_grid(height, width, self.options.tile)
            image = _Image(job, result, np.empty_like(result.values), len(tiles))
            for tile in tiles:
                group = self.groups.setdefault(tile.shape, [])
                if (len(group) + 1) * tile.shape[0] * tile.shape[1] > BATCH_PIXELS and group:
                    self._run_batch(self.groups.pop(tile.shape))  # full: a batch never grows
                    group = self.groups.setdefault(tile.shape, [])  # past BATCH_PIXELS
                group.append((image, tile))
                if len(group) >= self.options.batch_size:
                    self._run_batch(self.groups.pop(tile.shape))
            held = {key: len(group) * key[0] * key[1] for key, group in self.groups.items()}
            if sum(held.values()) > HOLD_PIXELS:  # many sizes, none filling a batch
                self._run_batch(self.groups.pop(max(held, key=held.__getitem__)))
        if images:
            self.task_files = int(np.clip(TASK_PIXELS * images // pixels, 1, TASK_FILES))

    def _run_batch(self, group: list[tuple[_Image, Tile]]) -> None:
        """One model call; a batch the model cannot run (out of memory on a huge image, say)
        fails its own images, not the whole run."""
        crops = [image.pixels.values[top:bottom, left:right]
                 for image, (top, bottom, left, right) in ((i, t.region) for i, t in group)]
        clean = np.stack(crops)
        try:
            adversarial = quantize(self.model.run(to_float(clean)), clean, self.model.linf_eps)
        except (*ORT_ERRORS, MemoryError) as exc:
            adversarial = None
            for image, _ in group:
                image.error = f"the model failed on this image ({exc})"
        for index, (image, tile) in enumerate(group):
            if adversarial is not None:
                top, bottom, left, right = tile.core
                rows, cols = top - tile.region[0], left - tile.region[2]
                image.output[top:bottom, left:right] = adversarial[
                    index, rows:rows + bottom - top, cols:cols + right - left]
            image.remaining -= 1
            if image.remaining == 0:
                self._finish(image)

    def _finish(self, image: _Image) -> None:
        if image.error is not None:
            self.emit(FileRecord(str(image.job.source), None, "failed", error=image.error,
                                 input_fingerprint=image.job.input_fingerprint))
            return
        self.ready.append((image.job, image.pixels, image.output))
        pixels = sum(values.shape[0] * values.shape[1] for _, _, values in self.ready)
        if pixels >= TASK_PIXELS or len(self.ready) >= TASK_FILES:
            self._send_ready()

    def _send_ready(self) -> None:
        if self.ready:
            pixels = sum(values.shape[0] * values.shape[1] for _, _, values in self.ready)
            self.encodes.append((self.executor.submit(self.encode, self.ready), pixels))
            self.ready = []
            self._collect(wait=False)

    def _collect(self, wait: bool) -> None:
        """Record finished encodes in order; wait while too many pixels are in flight (or,
        with `wait`, until all are done)."""
        while self.encodes:
            future, _ = self.encodes[0]
            in_flight = sum(pixels for _, pixels in self.encodes)
            if not (future.done() or wait or in_flight > ENCODE_HOLD_PIXELS):
                return
            self.encodes.popleft()
            self.emit(*future.result())

    def emit(self, *records: FileRecord) -> None:
        """Record finished files: their manifest lines in one write, then the tallies."""
        self.manifest.append([record for record in records if record.status != "skipped"])
        for record in records:
            self._tally(record)

    def _tally(self, record: FileRecord) -> None:
        self.counts[record.status] += 1
        if record.status == "ok":
            self.linf.append(record.linf or 0.0)
            if record.psnr is not None:
                self.psnr.append(record.psnr)
            for change in record.converted or ():
                if change not in self.converted:
                    self.warn(WARNINGS[change].format(record.input))
                self.converted[change] = self.converted.get(change, 0) + 1
            if record.within_eps is False:
                if not self.over_eps:
                    self.warn(f"saved {self.options.format} files exceed eps after compression "
                              f"(first: {record.output}, L-inf {(record.linf or 0) * 255:.0f}/255);"
                              " a lossless format keeps the bound")
                self.over_eps += 1
        elif record.status == "failed":
            self.failures.append(record)
        if self.on_record is not None:
            self.on_record(record)

    def summary(self, seconds: float) -> FolderSummary:
        return FolderSummary(
            counts=self.counts, seconds=seconds, provider=self.model.provider,
            manifest=self.manifest.path, max_linf=max(self.linf) if self.linf else None,
            mean_psnr=sum(self.psnr) / len(self.psnr) if self.psnr else None,
            failures=self.failures, converted=self.converted, over_eps=self.over_eps,
            repaired=self.manifest.repaired)
