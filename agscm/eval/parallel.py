"""Train several models at once, one process each: small models leave a GPU mostly idle (and
one process uses one CPU core well), so side by side they finish several times sooner.

Every job resumes from its own checkpoint, so running a stage in parallel first and then
sequentially (which finds everything done) gives the same files as running it sequentially.
A worker whose parent is gone (killed, even by SIGKILL) exits within a second, so stopping a
run never leaves orphans training on, holding their checkpoints' locks.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

T = TypeVar("T")
PARENT_CHECK_SECONDS = 0.5


def _exit_with_parent(parent: int) -> None:
    """Pool initializer: a daemon thread ends this worker once `parent` is no longer its
    parent (the orphan is re-parented to init or a subreaper)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _logged(job: Callable[..., T], log: str, args: tuple[Any, ...], threads: int) -> T:
    torch.set_num_threads(threads)  # else every process starts one thread per core
    with open(log, "a") as stream:  # the worker's output goes to its own log file
        sys.stdout = sys.stderr = stream
        return job(*args)


def run_jobs(job: Callable[..., T], arguments: Sequence[tuple[Any, ...]], logs: Sequence[Path],
             jobs: int) -> list[T]:
    """`job(*args)` for every args, `jobs` processes at a time (1: in this process, with its
    progress bars); worker output goes to the matching log file. Results in input order.
    The processes share the cores: each gets torch threads = cores // processes (at least 1)."""
    if jobs <= 1 or len(arguments) <= 1:
        return [job(*args) for args in arguments]
    for log in logs:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
    processes = min(jobs, len(arguments))
    threads = max(1, (os.cpu_count() or 1) // processes)
    with multiprocessing.get_context("spawn").Pool(processes, initializer=_exit_with_parent,
                                                   initargs=(os.getpid(),)) as pool:
        pending = [pool.apply_async(_logged, (job, str(log), args, threads))
                   for args, log in zip(arguments, logs, strict=True)]
        return [result.get() for result in pending]
