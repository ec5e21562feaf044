"""agscm.eval.parallel: jobs in their own processes, results in order, cores shared."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from agscm.eval.parallel import run_jobs


def _square_and_threads(value: int) -> tuple[int, int, int]:
    print(f"job {value}")
    return value * value, torch.get_num_threads(), os.getpid()


def test_jobs_run_in_other_processes_share_the_cores_and_keep_the_input_order(tmp_path):
    logs = [tmp_path / "logs" / f"job-{value}.log" for value in range(3)]
    results = run_jobs(_square_and_threads, [(value,) for value in range(3)], logs, jobs=2)
    assert [square for square, _, _ in results] == [0, 1, 4]
    assert {threads for _, threads, _ in results} == {max(1, (os.cpu_count() or 1) // 2)}
    assert os.getpid() not in {pid for _, _, pid in results}
    assert [log.read_text() for log in logs] == [f"job {value}\n" for value in range(3)]


def test_one_job_runs_in_this_process(tmp_path):
    results = run_jobs(_square_and_threads, [(3,)], [tmp_path / "job.log"], jobs=2)
    assert results == [(9, torch.get_num_threads(), os.getpid())]
    assert not (tmp_path / "job.log").exists()


def _report_pid_then_sleep(path: str) -> None:
    Path(path).write_text(str(os.getpid()))
    time.sleep(120)


def _alive(pid: int) -> bool:
    """Running, or asleep: not gone and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_workers_exit_when_their_parent_is_killed(tmp_path):
    """`kill -9` of a run (pkill matches the parent's command line only) leaves no worker."""
    pids = [tmp_path / f"pid-{index}" for index in range(2)]
    script = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
              "from test_parallel import _report_pid_then_sleep\n"
              "from agscm.eval.parallel import run_jobs\n"
              f"run_jobs(_report_pid_then_sleep, [({str(pids[0])!r},), ({str(pids[1])!r},)], "
              f"[{str(tmp_path / 'a.log')!r}, {str(tmp_path / 'b.log')!r}], jobs=2)\n")
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        while not all(path.exists() and path.read_text() for path in pids):
            assert parent.poll() is None and time.monotonic() < deadline, "workers never started"
            time.sleep(0.1)
        workers = [int(path.read_text()) for path in pids]
        assert all(_alive(pid) for pid in workers)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), "a worker outlived its killed parent"
