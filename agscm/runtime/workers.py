"""Decoding and encoding, the per-file work of a folder run, in worker processes.

Pillow's codecs, zlib and the file system calls cost more than the generator on small
images, and Python threads serialise much of that work on the GIL; processes do not. This
module imports no onnxruntime, so workers stay small; the same functions run in the calling
process when a run asks for no workers. A worker dies with its parent (Linux), so a killed
run leaves no process still writing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agscm.runtime.arrays import distortion
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
from agscm.runtime.manifest import FileRecord, Fingerprint, fingerprint

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Job:
    """One input to perturb: where it is, what its output is called (relative to OUT)."""

    source: Path
    output: Path  # relative to the output root
    input_fingerprint: Fingerprint


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs, sent once when it starts."""

    mode: str  # Pillow mode of the model: L or RGB
    max_pixels: int
    strict_channels: bool
    format: str
    quality: int
    png_level: int
    linf_eps: float | None
    settings: str
    output_root: Path
    input_real: str
    input_folders: frozenset[Identity]
    allow_inside_input: bool


class Worker:
    """Decode and encode for one process; output folders stay open between files."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.folders = OutputFolders(config.output_root, config.input_real,
                                     set(config.input_folders), config.allow_inside_input)

    def decode(self, jobs: list[Job]) -> list[Pixels | FileRecord]:
        return [self._decode(job) for job in jobs]

    def _decode(self, job: Job) -> Pixels | FileRecord:
        config = self.config
        try:
            return read_image(job.source, config.mode, config.max_pixels, config.strict_channels)
        except NotAnImage as exc:
            status = "failed" if job.source.suffix.lower() in IMAGE_SUFFIXES else "ignored"
            return FileRecord(str(job.source), None, status, error=str(exc))
        except ImageError as exc:
            return FileRecord(str(job.source), None, "failed", error=str(exc))

    def encode(self, items: list[tuple[Job, Pixels, np.ndarray]]) -> list[FileRecord]:
        return [self._encode(job, clean, values) for job, clean, values in items]

    def _encode(self, job: Job, clean: Pixels, values: np.ndarray) -> FileRecord:
        config = self.config
        height, width = values.shape[:2]
        output = str(config.output_root / job.output)
        converted = list(clean.converted)
        if clean.alpha is not None and config.format in DROPS_ALPHA:
            converted.append(ALPHA_DROPPED)
        try:
            data = encode_image(values, clean.alpha, config.format, config.quality,
                                config.png_level)
            if FORMATS[config.format][2]:  # lossy: measure what the file holds
                values = decode_values(data, config.mode)
            folder = self.folders.descriptor(job.output.parent)
            info = write_atomic(folder, job.output.name, data)
        except UnsafeOutput as exc:
            return FileRecord(str(job.source), output, "failed", [width, height], error=str(exc),
                              input_fingerprint=job.input_fingerprint)
        except (OSError, ValueError, ImageError) as exc:
            return FileRecord(str(job.source), output, "failed", [width, height],
                              error=f"cannot write the output ({exc})",
                              input_fingerprint=job.input_fingerprint)
        measures = distortion(clean.values, values)
        within = None if config.linf_eps is None else bool(
            measures["linf"] <= np.floor(config.linf_eps * 255 + 1e-6) / 255 + 1e-12)
        return FileRecord(str(job.source), output, "ok", [width, height], **measures,
                          within_eps=within, converted=converted or None,
                          input_fingerprint=job.input_fingerprint,
                          output_fingerprint=fingerprint(info), settings=config.settings)

    def close(self) -> None:
        self.folders.close()


_worker: Worker | None = None  # this process's worker, set by `start`


def start(config: WorkerConfig, parent: int) -> None:
    """Process-pool initializer: build this process's Worker; die with `parent` (its pid)."""
    global _worker
    _worker = Worker(config)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)


def decode(jobs: list[Job]) -> list[Pixels | FileRecord]:
    assert _worker is not None, "worker not started"
    return _worker.decode(jobs)


def encode(items: list[tuple[Job, Pixels, np.ndarray]]) -> list[FileRecord]:
    assert _worker is not None, "worker not started"
    return _worker.encode(items)
