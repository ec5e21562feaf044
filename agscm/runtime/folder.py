"""A folder tree in, the same tree of adversarial images out (the engine of `agscm perturb`).

A thread pool decodes ahead and encodes behind while the calling thread runs the model
(Pillow's codecs, numpy and onnxruntime release the GIL); images of one size are batched;
every output is written atomically; every file gets one JSON line in the manifest, appended
as soon as it is known, so a killed run keeps the record of what it finished.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import TypeVar

import numpy as np

from agscm.errors import AgscmError
from agscm.runtime.arrays import distortion, quantize, to_float
from agscm.runtime.files import atomic_path, check_destination, output_names, walk
from agscm.runtime.images import (
    DEFAULT_MAX_PIXELS,
    FORMATS,
    IMAGE_SUFFIXES,
    ImageError,
    NotAnImage,
    Pixels,
    read_image,
    write_image,
)
from agscm.runtime.model import GeneratorModel
from agscm.runtime.session import ORT_ERRORS

STATUSES = ("ok", "exists", "ignored", "failed")
BATCH_PIXELS = 2**20  # a batch stops growing here, so big images do not hold big batches
HOLD_PIXELS = 2 * BATCH_PIXELS  # most pixels waiting in unfinished batches of other sizes
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class FolderOptions:
    """How a folder run writes its outputs; the CLI options of `agscm perturb`."""

    format: str = "png"
    quality: int = 95  # JPEG and WebP only
    batch_size: int = 64
    workers: int | None = None  # decode/encode threads; None: one per core, at least 2
    overwrite: bool = False
    shard: tuple[int, int] = (0, 1)  # (i, n): this run takes every n-th file from the i-th
    max_pixels: int = DEFAULT_MAX_PIXELS
    manifest: Path | None = None  # None: OUT/manifest.jsonl (manifest-IofN.jsonl for a shard)
    allow_inside_input: bool = False

    def validate(self) -> None:
        if self.format not in FORMATS:
            raise AgscmError(f"unknown format {self.format!r}; choose one of {', '.join(FORMATS)}")
        if not 1 <= self.quality <= 100:
            raise AgscmError(f"quality must be in 1..100, got {self.quality}")
        if self.batch_size < 1 or (self.workers is not None and self.workers < 1):
            raise AgscmError("batch size and workers must be >= 1")
        if self.max_pixels < 1:
            raise AgscmError(f"max pixels must be >= 1, got {self.max_pixels}")


@dataclass
class FileRecord:
    """One manifest line. size is [width, height]; L-inf and L2 on the [0,1] scale, measured
    between the 8-bit input (in the model's mode) and the 8-bit output as saved."""

    input: str
    output: str | None
    status: str
    size: list[int] | None = None
    linf: float | None = None
    l2: float | None = None
    psnr: float | None = None
    error: str | None = None


@dataclass
class FolderSummary:
    """What a run did: counts per status, speed, distortion, and the failures to show."""

    counts: dict[str, int]
    seconds: float
    provider: str
    manifest: Path
    max_linf: float | None = None
    mean_psnr: float | None = None
    failures: list[FileRecord] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return self.counts["failed"]

    @property
    def images_per_second(self) -> float:
        return self.counts["ok"] / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Job:
    source: Path
    output: Path


def plan_folder(source: Path, destination: Path, options: FolderOptions
                ) -> list[Job | FileRecord]:
    """Jobs to run and records already known (problems, outputs that exist), in input order."""
    check_destination(source, destination, options.allow_inside_input)
    entries = walk(source)
    suffix = FORMATS[options.format][0]
    names = output_names([e.relative for e in entries if e.problem is None], suffix)
    inputs = {e.identity for e in entries if e.identity is not None}
    index, count = options.shard
    plan: list[Job | FileRecord] = []
    for entry in entries[index::count]:
        src = source / entry.relative
        if entry.problem is not None:
            status = "failed" if entry.failed else "ignored"
            plan.append(FileRecord(str(src), None, status, error=entry.problem))
            continue
        out = destination / names[entry.relative]
        try:
            info = os.stat(out)
        except FileNotFoundError:
            plan.append(Job(src, out))
            continue
        if (info.st_dev, info.st_ino) in inputs:
            plan.append(FileRecord(str(src), str(out), "failed",
                                   error="the output path is an input file; not overwriting it"))
        elif options.overwrite:
            plan.append(Job(src, out))
        else:
            plan.append(FileRecord(str(src), str(out), "exists"))
    return plan


def perturb_folder(model: GeneratorModel, source: Path, destination: Path,
                   options: FolderOptions | None = None,
                   on_start: Callable[[int], None] | None = None,
                   on_record: Callable[[FileRecord], None] | None = None) -> FolderSummary:
    """Perturb every image under `source` into the mirrored tree under `destination`.

    `on_start(total)` and `on_record(record)` (called from this thread) drive a progress bar.
    """
    options = options or FolderOptions()
    options.validate()
    start = time.perf_counter()
    plan = plan_folder(source, destination, options)
    destination.mkdir(parents=True, exist_ok=True)
    manifest = options.manifest or destination / _manifest_name(options.shard)
    if on_start is not None:
        on_start(len(plan))
    run = _FolderRun(model, options, manifest, on_record)
    try:
        run.execute(plan)
    finally:
        run.close()
    return run.summary(time.perf_counter() - start)


def _manifest_name(shard: tuple[int, int]) -> str:
    index, count = shard
    return "manifest.jsonl" if count == 1 else f"manifest-{index}of{count}.jsonl"


class _FolderRun:
    """The state of one run: the pool, the batches waiting for the model, the tallies."""

    def __init__(self, model: GeneratorModel, options: FolderOptions, manifest: Path,
                 on_record: Callable[[FileRecord], None] | None) -> None:
        self.model = model
        self.options = options
        self.manifest = manifest
        self.on_record = on_record
        # More threads than cores only fight over the GIL (measured: 2 beat 4 on 2 cores).
        self.workers = options.workers or max(2, os.cpu_count() or 1)
        self.counts = dict.fromkeys(STATUSES, 0)
        self.linf: list[float] = []
        self.psnr: list[float] = []
        self.failures: list[FileRecord] = []
        self.made_dirs: set[Path] = set()
        manifest.parent.mkdir(parents=True, exist_ok=True)
        self.manifest_fd = os.open(manifest, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def close(self) -> None:
        os.close(self.manifest_fd)

    def execute(self, plan: list[Job | FileRecord]) -> None:
        jobs = [item for item in plan if isinstance(item, Job)]
        for item in plan:
            if isinstance(item, FileRecord):
                self.emit(item)
        groups: dict[tuple[int, int], list[tuple[Job, Pixels]]] = {}
        encodes: deque[Future[FileRecord]] = deque()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="agscm-io") as pool:
            for job, decoded in _ordered_map(pool, self.decode, jobs, ahead=4 * self.workers):
                if isinstance(decoded, FileRecord):
                    self.emit(decoded)
                    continue
                key = decoded.values.shape[:2]
                group = groups.setdefault(key, [])
                group.append((job, decoded))
                if len(group) >= self.options.batch_size or _pixels(key, group) >= BATCH_PIXELS:
                    encodes.extend(self.infer(pool, groups.pop(key)))
                elif sum(_pixels(k, g) for k, g in groups.items()) > HOLD_PIXELS:
                    # Many sizes, none filling a batch: run the biggest rather than hold them all.
                    largest = max(groups, key=lambda k: _pixels(k, groups[k]))
                    encodes.extend(self.infer(pool, groups.pop(largest)))
                while encodes and (encodes[0].done() or len(encodes) > 2 * self.options.batch_size):
                    self.emit(encodes.popleft().result())
            for group in groups.values():
                encodes.extend(self.infer(pool, group))
            while encodes:
                self.emit(encodes.popleft().result())

    def decode(self, job: Job) -> Pixels | FileRecord:
        try:
            return read_image(job.source, self.model.mode, self.options.max_pixels)
        except NotAnImage as exc:
            status = "failed" if job.source.suffix.lower() in IMAGE_SUFFIXES else "ignored"
            return FileRecord(str(job.source), None, status, error=str(exc))
        except ImageError as exc:
            return FileRecord(str(job.source), None, "failed", error=str(exc))

    def infer(self, pool: ThreadPoolExecutor, group: list[tuple[Job, Pixels]]
              ) -> list[Future[FileRecord]]:
        """Run one batch; its encodes go to the pool. A batch the model cannot run (out of
        memory on a huge image, say) fails its own files, not the whole run."""
        clean = np.stack([pixels.values for _, pixels in group])
        try:
            adversarial = quantize(self.model.run(to_float(clean)), clean, self.model.linf_eps)
        except (*ORT_ERRORS, MemoryError) as exc:
            for job, _ in group:
                self.emit(FileRecord(str(job.source), None, "failed",
                                     error=f"the model failed on this image ({exc})"))
            return []
        return [pool.submit(self.encode, job, pixels, values)
                for (job, pixels), values in zip(group, adversarial, strict=True)]

    def encode(self, job: Job, clean: Pixels, values: np.ndarray) -> FileRecord:
        height, width = values.shape[:2]
        try:
            if job.output.parent not in self.made_dirs:
                job.output.parent.mkdir(parents=True, exist_ok=True)
                self.made_dirs.add(job.output.parent)
            with atomic_path(job.output) as temp:
                write_image(Pixels(values, clean.alpha), temp, self.options.format,
                            self.options.quality)
                if FORMATS[self.options.format][2]:  # lossy: measure what was saved
                    values = read_image(temp, self.model.mode).values
        except (OSError, ValueError, ImageError) as exc:
            return FileRecord(str(job.source), str(job.output), "failed", [width, height],
                              error=f"cannot write the output ({exc})")
        return FileRecord(str(job.source), str(job.output), "ok", [width, height],
                          **distortion(clean.values, values))

    def emit(self, record: FileRecord) -> None:
        os.write(self.manifest_fd, (json.dumps(asdict(record)) + "\n").encode())
        self.counts[record.status] += 1
        if record.status == "ok":
            self.linf.append(record.linf or 0.0)
            if record.psnr is not None:
                self.psnr.append(record.psnr)
        elif record.status == "failed":
            self.failures.append(record)
        if self.on_record is not None:
            self.on_record(record)

    def summary(self, seconds: float) -> FolderSummary:
        return FolderSummary(
            counts=self.counts, seconds=seconds, provider=self.model.provider,
            manifest=self.manifest, max_linf=max(self.linf) if self.linf else None,
            mean_psnr=sum(self.psnr) / len(self.psnr) if self.psnr else None,
            failures=self.failures)


def _pixels(key: tuple[int, int], group: list[tuple[Job, Pixels]]) -> int:
    return len(group) * key[0] * key[1]


def _ordered_map(pool: ThreadPoolExecutor, function: Callable[[T], R], items: Iterable[T],
                 ahead: int) -> Iterator[tuple[T, R]]:
    """pool.map that keeps only `ahead` calls in flight, so decoded images do not pile up."""
    iterator = iter(items)
    pending = deque((item, pool.submit(function, item)) for item in islice(iterator, ahead))
    while pending:
        item, future = pending.popleft()
        for following in islice(iterator, 1):
            pending.append((following, pool.submit(function, following)))
        yield item, future.result()
