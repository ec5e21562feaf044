"""The per-file work of a folder run: decode, perturb, encode, write, record.

Pillow's codecs, zlib and the file system cost as much as the generator on small images,
and Python threads serialise much of that work on the GIL; processes do not. So each worker
process takes a task (a list of files) and does everything for it with its own one-thread
onnxruntime session: nothing but file names and records crosses between processes. The same
class runs tasks in the calling process. Each output's manifest line is appended (one
`write` on an O_APPEND descriptor) right after the output is renamed into place. A worker
dies with its parent (Linux), so a killed run leaves no process still writing. `decode` and
`encode` are the per-file steps, shared with the Ray engine (agscm.runtime.ray).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agscm.contract import linf_steps
from agscm.errors import AgscmError
from agscm.runtime.arrays import distortion
from agscm.runtime.batches import perturb_images
from agscm.runtime.files import Identity, OutputFolders, UnsafeOutput, write_atomic
from agscm.runtime.images import (
    ALPHA_DROPPED,
    DROPS_ALPHA,
    FORMATS,
    IMAGE_SUFFIXES,
    ImageError,
    NotAnImage,
    Pixels,
    decode_values,
    encode_image,
    read_image,
)
from agscm.runtime.manifest import FileRecord, Fingerprint, append_lines, fingerprint
from agscm.runtime.model import GeneratorModel

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Job:
    """One input to perturb: where it is, and where its output goes (plain strings: a task
    crosses to a worker process, and paths cost more to build and send)."""

    source: str
    output: str  # OUT/folder/name, as the manifest shows it
    folder: Path  # the output's folder, relative to OUT
    name: str  # the output's file name
    input_fingerprint: Fingerprint


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs, sent once when it starts."""

    model: Path
    device: str
    threads: int | None
    max_pixels: int
    strict_channels: bool
    format: str
    quality: int
    png_level: int
    tile: int
    batch_size: int
    settings: str
    output_root: Path
    input_real: str
    input_folders: frozenset[Identity]
    allow_inside_input: bool
    manifest: Path
    mode: str  # the model's Pillow mode (L or RGB)
    linf_eps: float | None  # the model's L-inf budget, checked on every saved file


class Worker:
    """Runs tasks for one process; output folders and the manifest stay open between them."""

    def __init__(self, config: WorkerConfig, model: GeneratorModel | None = None) -> None:
        self.config = config
        self.model = model or GeneratorModel(config.model, config.device, threads=config.threads)
        self.folders = output_folders(config)
        self.manifest = os.open(config.manifest, os.O_WRONLY | os.O_APPEND)

    def process(self, jobs: list[Job]) -> list[FileRecord]:
        """Perturb `jobs`; every file gets its record, in the manifest and returned."""
        decoded = [decode(job, self.config) for job in jobs]
        pending = [(job, pixels) for job, pixels in zip(jobs, decoded, strict=True)
                   if isinstance(pixels, Pixels)]
        records = [record for record in decoded if isinstance(record, FileRecord)]
        self._record(records)
        outputs = perturb_images(self.model, [pixels.values for _, pixels in pending],
                                 self.config.tile, self.config.batch_size)
        for (job, pixels), output in zip(pending, outputs, strict=True):
            if isinstance(output, str):
                record = model_failure(job, output)
            else:
                record = encode(job, pixels, output, self.config, self.folders)
            self._record([record])
            records.append(record)
        return records

    def _record(self, records: list[FileRecord]) -> None:
        if records:
            append_lines(self.manifest, self.config.manifest, records)

    def close(self) -> None:
        self.folders.close()
        os.close(self.manifest)


def output_folders(config: WorkerConfig) -> OutputFolders:
    """The run's output folders, checked against the input tree as every writer must."""
    return OutputFolders(config.output_root, config.input_real, set(config.input_folders),
                         config.allow_inside_input)


def decode(job: Job, config: WorkerConfig) -> Pixels | FileRecord:
    """The file's pixels in the model's mode, or the record of why it cannot be used."""
    try:
        return read_image(job.source, config.mode, config.max_pixels, config.strict_channels)
    except NotAnImage as exc:
        suffix = os.path.splitext(job.source)[1].lower()
        status = "failed" if suffix in IMAGE_SUFFIXES else "ignored"
        return FileRecord(job.source, None, status, error=str(exc))
    except ImageError as exc:
        return FileRecord(job.source, None, "failed", error=str(exc))


def model_failure(job: Job, reason: str) -> FileRecord:
    """The record of a file the model could not run (agscm.runtime.batches gives the reason)."""
    return FileRecord(job.source, None, "failed", error=reason,
                      input_fingerprint=job.input_fingerprint)


def encode(job: Job, clean: Pixels, values: np.ndarray, config: WorkerConfig,
           folders: OutputFolders) -> FileRecord:
    """Encode the adversarial `values`, write them atomically as the job's output, measure."""
    height, width = values.shape[:2]
    output = job.output
    converted = list(clean.converted)
    if clean.alpha is not None and config.format in DROPS_ALPHA:
        converted.append(ALPHA_DROPPED)
    try:
        data = encode_image(values, clean.alpha, config.format, config.quality,
                            config.png_level)
        if FORMATS[config.format][2]:  # lossy: measure what the file holds
            values = decode_values(data, config.mode)
        folder = folders.descriptor(job.folder)
        info = write_atomic(folder, job.name, data)
    except UnsafeOutput as exc:
        return FileRecord(job.source, output, "failed", [width, height], error=str(exc),
                          input_fingerprint=job.input_fingerprint)
    except (OSError, ValueError, ImageError) as exc:
        return FileRecord(job.source, output, "failed", [width, height],
                          error=f"cannot write the output ({exc})",
                          input_fingerprint=job.input_fingerprint)
    measures = distortion(clean.values, values)
    eps = config.linf_eps
    within = None if eps is None else bool(
        measures["linf"] <= linf_steps(eps) / 255 + 1e-12)
    return FileRecord(job.source, output, "ok", [width, height], **measures,
                      within_eps=within, converted=converted or None,
                      input_fingerprint=job.input_fingerprint,
                      output_fingerprint=fingerprint(info), settings=config.settings)


_worker: Worker | None = None  # this process's worker, set by `start`


def start(config: WorkerConfig, parent: int) -> None:
    """Process-pool initializer: build this process's Worker; die with `parent` (its pid)."""
    global _worker
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)
    _worker = Worker(config)


def process(jobs: list[Job]) -> list[FileRecord]:
    if _worker is None:
        raise AgscmError("worker not started")
    return _worker.process(jobs)
