"""The Ray engine's three stages, as functions of column batches (dicts of numpy arrays).

Each stage is the local engine's own step (agscm.runtime.workers: `decode`, the batched model
call, `encode`) applied row by row, so outputs and records are the same bytes whichever engine
made them. Rows carry plain columns that Arrow stores without conversion: strings, bytes
(pixels as raw uint8 with their shape beside them) and JSON text (a record, the conversions);
an empty `record` means the file is still on its way. Nothing here imports Ray.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from agscm.runtime.batches import perturb_images
from agscm.runtime.images import Pixels
from agscm.runtime.manifest import FileRecord
from agscm.runtime.model import GeneratorModel
from agscm.runtime.workers import (
    Job,
    WorkerConfig,
    decode,
    encode,
    model_failure,
    output_folders,
)

Batch = dict[str, np.ndarray]


def job_rows(jobs: Iterable[Job]) -> list[dict[str, object]]:
    """The dataset's rows: one per job, what `decode_batch` needs to rebuild it."""
    return [{"source": job.source, "output": job.output, "folder": str(job.folder),
             "name": job.name, "fingerprint": list(job.input_fingerprint)} for job in jobs]


def decode_batch(batch: Batch, config: WorkerConfig) -> Batch:
    """Read each file (in a Ray task); a file that cannot be used gets its record here."""
    pixels, shapes, alphas, converted, records = [], [], [], [], []
    for job in _jobs(batch):
        result = decode(job, config)
        if isinstance(result, FileRecord):
            pixels.append(b"")
            shapes.append([0, 0, 0])
            alphas.append(b"")
            converted.append("[]")
            records.append(result.to_json())
        else:
            pixels.append(result.values.tobytes())
            shapes.append(list(result.values.shape))
            alphas.append(b"" if result.alpha is None else result.alpha.tobytes())
            converted.append(json.dumps(result.converted))
            records.append("")
    return {**batch, "pixels": _objects(pixels), "shape": np.array(shapes, np.int64),
            "alpha": _objects(alphas), "converted": _objects(converted),
            "record": _objects(records)}


class Generate:
    """One onnxruntime session per Ray actor: the model runs on every decoded image.

    With `write`, the actor also encodes and writes (its batch becomes records): on CPU
    workers that keeps the pixels in one process, as the local engine's workers do.
    """

    def __init__(self, config: WorkerConfig, write: bool = False) -> None:
        self.config = config
        self.write = write
        self.model = GeneratorModel(config.model, config.device, threads=config.threads)

    def __call__(self, batch: Batch) -> Batch:
        rows = [index for index, record in enumerate(batch["record"]) if not record]
        images = [_values(batch["pixels"][index], batch["shape"][index]) for index in rows]
        outputs = perturb_images(self.model, images, self.config.tile, self.config.batch_size)
        adversarial = [b""] * len(batch["record"])
        records = list(batch["record"])
        jobs = _jobs(batch)
        for index, output in zip(rows, outputs, strict=True):
            if isinstance(output, str):
                records[index] = model_failure(jobs[index], output).to_json()
            else:
                adversarial[index] = output.tobytes()
        batch = {**batch, "adversarial": _objects(adversarial), "record": _objects(records)}
        return encode_batch(batch, self.config) if self.write else batch


def encode_batch(batch: Batch, config: WorkerConfig) -> Batch:
    """Encode and write each output atomically (in a Ray task); every row becomes its record."""
    folders = output_folders(config)
    records = []
    try:
        for index, job in enumerate(_jobs(batch)):
            record = batch["record"][index]
            if not record:
                shape = batch["shape"][index]
                alpha = batch["alpha"][index]
                clean = Pixels(_values(batch["pixels"][index], shape),
                               _values(alpha, shape[:2]) if alpha else None,
                               json.loads(batch["converted"][index]))
                values = _values(batch["adversarial"][index], shape)
                record = encode(job, clean, values, config, folders).to_json()
            records.append(record)
    finally:
        folders.close()
    return {"record": _objects(records)}


def _jobs(batch: Batch) -> list[Job]:
    return [Job(str(source), str(output), Path(folder), str(name), [int(v) for v in stamp])
            for source, output, folder, name, stamp in zip(
                batch["source"], batch["output"], batch["folder"], batch["name"],
                batch["fingerprint"], strict=True)]


def _values(data: bytes, shape: Iterable[int]) -> np.ndarray:
    return np.frombuffer(data, np.uint8).reshape(tuple(int(side) for side in shape))


def _objects(values: list) -> np.ndarray:
    """A column of Python objects (bytes, str) that numpy must not turn into fixed widths."""
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column
