"""`agscm perturb --engine ray`: the local engine's run, with the work spread over a Ray cluster.

This process (the driver) does what the local engine's parent does (agscm.runtime.folder:
walk IN, decide from the manifest what is left, tally, summarise) and appends every record
to the one manifest as results stream back, so a killed run resumes like a local one. Ray
Data does the scheduling: the jobs become a dataset of blocks of TASK_FILES files; decoding
runs in tasks, the generator in an actor pool (one onnxruntime session per actor; with
`--device cuda` each actor holds a GPU), encoding and the atomic write in tasks, or, on
CPUs, in the actors (agscm.runtime.ray.stages). Workers read IN and write OUT by the same
paths as the driver, so on a cluster both live on storage every node mounts at the same
place (docs/RAY.md).
Ray itself is imported only here, when a run starts: the base install works without it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

from agscm.errors import AgscmError
from agscm.runtime.folder import TASK_FILES, FolderOptions, FolderSummary, open_run
from agscm.runtime.manifest import FileRecord
from agscm.runtime.model import GeneratorModel
from agscm.runtime.ray.stages import Generate, decode_batch, encode_batch, job_rows
from agscm.runtime.session import THREADS_ENV
from agscm.runtime.workers import Job, WorkerConfig

INSTALL_HINT = 'the Ray engine needs Ray: pip install "agscm[ray]"'


@dataclass
class RayOptions:
    """Where the run goes and how wide the model stage is; the rest is FolderOptions."""

    address: str | None = None  # None: $RAY_ADDRESS, else a local instance started here
    device: str = "auto"  # each actor's device; cuda gives each actor one GPU
    threads: int | None = None  # onnxruntime threads per actor (default: $AGSCM_THREADS, else 1)
    actors: int | None = None  # model actors (default: one per CPU, or per GPU with cuda)
    split: bool | None = None  # encode in tasks apart from the actors (default: with GPUs)


def import_ray() -> ModuleType:
    """Ray and Ray Data, or the one-line error that says how to install them."""
    try:
        import ray
        import ray.data  # noqa: F401  (the engine's API, imported with the package)
    except ImportError:
        raise AgscmError(INSTALL_HINT) from None
    return ray


def perturb_dataset(model: str | Path, source: str | Path, destination: str | Path,
                    options: FolderOptions | None = None, ray_options: RayOptions | None = None,
                    on_start: Callable[[int], None] | None = None,
                    on_record: Callable[[FileRecord], None] | None = None,
                    on_warning: Callable[[str], None] | None = None) -> FolderSummary:
    """`agscm perturb --engine ray`: like `perturb_folder`, with Ray doing the work.

    Connects to the cluster at `ray_options.address` (or uses the Ray session this process
    already has, or starts a local one and stops it afterwards). Outputs, manifest and
    summary are those of the local engine.
    """
    ray = import_ray()
    ray_options = ray_options or RayOptions()
    start = time.perf_counter()
    # The driver only plans and checks the model: its session is on the CPU whatever
    # the actors use, so a head node without a GPU can drive GPU workers.
    checked = GeneratorModel(model, "cpu", threads=1)
    with open_run(checked, Path(source), Path(destination), options, on_start, on_record,
                  on_warning) as (run, plan, config):
        run.emit(*(item for item in plan if isinstance(item, FileRecord)))
        jobs = [item for item in plan if isinstance(item, Job)]
        if jobs:
            joined = not ray.is_initialized()  # else: this process's own Ray session
            if joined:
                _connect(ray, ray_options.address)
            try:
                for records in _records(ray, jobs, _actor_config(config, ray_options),
                                        ray_options):
                    run.emit(*records)
            finally:
                if joined:
                    ray.shutdown()  # stops a local instance started here; leaves a cluster up
    summary = run.summary(time.perf_counter() - start)
    return replace(summary, provider=f"Ray actors (--device {ray_options.device})")


def _connect(ray: ModuleType, address: str | None) -> None:
    """Join the cluster at `address` (None: $RAY_ADDRESS, else start a local instance)."""
    try:
        ray.init(address=address, include_dashboard=False, configure_logging=False,
                 log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = address or os.environ.get("RAY_ADDRESS") or "a local instance"
        raise AgscmError(f"cannot start or reach Ray at {where} ({_first_line(exc)})") from None


def _actor_config(config: WorkerConfig, ray_options: RayOptions) -> WorkerConfig:
    """The workers' config: the requested device; one thread per actor unless asked."""
    threads = ray_options.threads
    if threads is None and THREADS_ENV not in os.environ:
        threads = 1  # one actor per core fills the cores; more threads would fight
    return replace(config, device=ray_options.device, threads=threads)


def _records(ray: ModuleType, jobs: list[Job], config: WorkerConfig,
             ray_options: RayOptions) -> Iterator[list[FileRecord]]:
    """Run the jobs through decode -> model -> encode; yield records as blocks finish.

    With GPUs (split), decoding and encoding run in CPU tasks around GPU actors, which only
    run the model. Without, Ray fuses the decode tasks into the actors and the actors encode
    and write too, so the pixels never leave the process (measured in docs/RAY.md).
    """
    resources = ray.cluster_resources()
    gpu = ray_options.device == "cuda" or (ray_options.device == "auto" and "GPU" in resources)
    split = gpu if ray_options.split is None else ray_options.split
    actors = ray_options.actors or max(1, int(resources.get("GPU" if gpu else "CPU", 1)))
    # Blocks of at most TASK_FILES files, and at least four per actor: the actors share the
    # work evenly, and records stream back (into the manifest) from early on.
    blocks = max(-(-len(jobs) // TASK_FILES), min(len(jobs), 4 * actors))
    dataset = ray.data.from_items(job_rows(jobs), override_num_blocks=blocks)
    dataset = dataset.map_batches(decode_batch, fn_kwargs={"config": config}, batch_size=None)
    dataset = dataset.map_batches(Generate, fn_constructor_kwargs={"config": config,
                                                                   "write": not split},
                                  batch_size=None, num_gpus=1 if gpu else 0,
                                  compute=ray.data.ActorPoolStrategy(size=actors))
    if split:
        dataset = dataset.map_batches(encode_batch, fn_kwargs={"config": config},
                                      batch_size=None)
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            yield [FileRecord.from_json(json.loads(text)) for text in batch["record"]]
    except (ray.exceptions.RayError, ray.data.exceptions.SystemException) as exc:
        raise AgscmError(f"the Ray run failed ({_first_line(exc)}); the files recorded so "
                         "far are safe, rerun to resume") from None


def _first_line(exc: BaseException) -> str:
    cause = exc
    while cause.__cause__ is not None:  # Ray wraps the worker's own exception
        cause = cause.__cause__
    text = str(cause).strip().splitlines()
    return text[0] if text else type(cause).__name__
