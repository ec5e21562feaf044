"""agscm.eval.parallel: jobs in their own processes, results in order, cores shared."""

from __future__ import annotations

import os

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
