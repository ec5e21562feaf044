"""A folder tree in, the same tree of adversarial images out (the engine of `agscm perturb`).

This process walks IN, decides from the manifest what is left to do, and hands out tasks
(lists of files holding about TASK_PIXELS pixels) to worker processes and to itself; each
task is decoded, perturbed in tiles and batches, encoded and written by whoever takes it
(agscm.runtime.workers). Memory is bounded per process by one task and one batch, not by the
size of the largest photo. Resume trusts only the manifest (agscm.runtime.manifest).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from queue import SimpleQueue

import numpy as np

from agscm.digest import file_digest
from agscm.errors import AgscmError
from agscm.runtime import workers
from agscm.runtime.files import InputTree, check_destination, identity, output_name, walk
from agscm.runtime.images import (
    ALPHA_DROPPED,
    COLOUR_TO_GREY,
    DEFAULT_MAX_PIXELS,
    DEFAULT_PNG_LEVEL,
    FORMATS,
    SIXTEEN_TO_EIGHT,
)
from agscm.runtime.manifest import FileRecord, Manifest, fingerprint
from agscm.runtime.model import GeneratorModel
from agscm.runtime.png import LEVELS
from agscm.runtime.tiles import DEFAULT_TILE, MARGIN
from agscm.runtime.workers import Job, WorkerConfig

STATUSES = ("ok", "skipped", "ignored", "failed")
TASK_PIXELS = 2**18  # pixels per task: 256 CIFAR images, or one photo
TASK_FILES = 256  # files per task at most
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
    workers: int | None = None  # processes beside this one; None: one per extra core
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


def processes(workers: int | None) -> int:
    """Processes that do the work: this one plus `workers` (default: one per extra core)."""
    return 1 + (max(1, os.cpu_count() or 1) - 1 if workers is None else workers)


def settings_key(model: GeneratorModel, options: FolderOptions) -> str:
    """A short hash of what decides an output's pixels: the model file and output options."""
    lossy = FORMATS[options.format][2]
    settings = {"model": file_digest(model.path),
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
                    else Job(str(src), str(out), relative.parent, relative.name,
                             input_fingerprint))
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
    start = time.perf_counter()
    with open_run(model, source, destination, options, on_start, on_record,
                  on_warning) as (run, plan, config):
        run.execute(plan, config)
    return run.summary(time.perf_counter() - start)


@contextmanager
def open_run(model: GeneratorModel, source: Path, destination: Path,
             options: FolderOptions | None = None,
             on_start: Callable[[int], None] | None = None,
             on_record: Callable[[FileRecord], None] | None = None,
             on_warning: Callable[[str], None] | None = None,
             ) -> Iterator[tuple[FolderRun, list[Job | FileRecord], WorkerConfig]]:
    """Check the folders, lock the manifest and plan the run; yield (run, plan, config).

    Every engine starts here, so what is left to do is decided the same way whoever does
    it; the body feeds the run its records (`run.execute`, or `run.emit` as they come in),
    and on a clean exit the manifest is compacted.
    """
    options = options or FolderOptions()
    options.validate()
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
        config = WorkerConfig(model.path, model.device, model.threads, options.max_pixels,
                              options.strict_channels, options.format, options.quality,
                              options.png_level, options.tile, options.batch_size, settings,
                              destination, input_real, frozenset(tree.folders),
                              options.allow_inside_input, manifest.path, model.mode,
                              model.linf_eps)
        yield FolderRun(model, options, manifest, on_record, warn), plan, config
        manifest.compact()
    finally:
        manifest.close()


def _manifest_name(shard: tuple[int, int]) -> str:
    index, count = shard
    return "manifest.jsonl" if count == 1 else f"manifest-{index}of{count}.jsonl"


class FolderRun:
    """The state of one run: the tasks out with the workers, the tallies, the warnings."""

    def __init__(self, model: GeneratorModel, options: FolderOptions, manifest: Manifest,
                 on_record: Callable[[FileRecord], None] | None,
                 warn: Callable[[str], None]) -> None:
        self.model = model
        self.options = options
        self.manifest = manifest
        self.on_record = on_record
        self.warn = warn
        self.workers = processes(options.workers) - 1
        self.counts = dict.fromkeys(STATUSES, 0)
        self.linf: list[float] = []
        self.psnr: list[float] = []
        self.failures: list[FileRecord] = []
        self.converted: dict[str, int] = {}
        self.over_eps = 0
        self.task_files = 1  # then adapted to the image size seen: ~TASK_PIXELS a task

    def execute(self, plan: list[Job | FileRecord], config: WorkerConfig) -> None:
        jobs = deque(item for item in plan if isinstance(item, Job))
        self.emit(*(item for item in plan if isinstance(item, FileRecord)))
        if not jobs:
            return
        local = workers.Worker(config, self.model)
        pool = None
        if self.workers and len(jobs) > 1:
            pool = ProcessPoolExecutor(self.workers, multiprocessing.get_context("spawn"),
                                       initializer=workers.start,
                                       initargs=(config, os.getpid()))
        try:
            self._dispatch(jobs, local, pool)
        except BrokenProcessPool as exc:
            raise AgscmError(f"a worker process died ({exc}); the files recorded so far are "
                             "safe, rerun to resume. (From a Python script, call this under "
                             "`if __name__ == '__main__':` or use workers=0.)") from None
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            local.close()

    def _dispatch(self, jobs: deque[Job], local: workers.Worker,
                  pool: ProcessPoolExecutor | None) -> None:
        """Each worker holds one task and gets the next the moment it returns one (from the
        pool's own thread); this process takes a task whenever it is free. So no worker
        waits for this process to finish a photo, and no worker sits on a queued task at
        the end while this process has nothing left to do."""
        finished: SimpleQueue[Future[list[FileRecord]]] = SimpleQueue()
        lock = threading.Lock()  # guards `jobs` and `handed`, shared with the pool's thread
        handed, tallied = 0, 0

        def tally(future: Future[list[FileRecord]]) -> None:
            nonlocal tallied
            self._done(future.result())  # raises BrokenProcessPool if its worker died
            tallied += 1

        def hand_out() -> None:
            nonlocal handed
            with lock:
                task = self._task(jobs)
                if not task:
                    return
                try:
                    future = pool.submit(workers.process, task)
                except (RuntimeError, BrokenProcessPool):  # shutting down, or a worker died
                    jobs.extendleft(reversed(task))
                    return
                handed += 1
            future.add_done_callback(returned)

        def returned(future: Future[list[FileRecord]]) -> None:
            finished.put(future)
            if not future.cancelled() and future.exception() is None:
                hand_out()

        if pool is not None:
            for _ in range(self.workers):
                hand_out()
        while True:
            while not finished.empty():
                tally(finished.get())
            with lock:
                task = self._task(jobs)
                waiting = handed > tallied
            if task:
                self._done(local.process(task))
            elif waiting:
                tally(finished.get())
            else:
                return

    def _task(self, jobs: deque[Job]) -> list[Job]:
        return [jobs.popleft() for _ in range(min(self.task_files, len(jobs)))]

    def _done(self, records: list[FileRecord]) -> None:
        """Tally a finished task (its lines are in the manifest) and size the next ones."""
        self.manifest.update(records)
        self._tally(records)
        pixels = [record.size[0] * record.size[1] for record in records if record.size]
        if pixels:
            self.task_files = int(np.clip(TASK_PIXELS * len(pixels) // sum(pixels), 1,
                                          TASK_FILES))

    def emit(self, *records: FileRecord) -> None:
        """Record files decided here (problems, skips): their lines in one write, tallies."""
        self.manifest.append([record for record in records if record.status != "skipped"])
        self._tally(records)

    def _tally(self, records: Iterable[FileRecord]) -> None:
        for record in records:
            self._count(record)

    def _count(self, record: FileRecord) -> None:
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
