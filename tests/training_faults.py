"""The training side under faults (issue 31), one function a case.

Each case builds its layout under a fresh folder, runs `agscm zoo train`, `agscm train`,
`agscm evaluate` or `agscm reproduce` (any install: this checkout, or another commit's source on
the same dependencies), and says whether the principle held: no traceback, a one-line error that names
what is wrong and a non-zero exit for bad input, no silent use of bad state, no lost finished
work, and a killed run that resumes to the same result as an uninterrupted one (bit for bit:
on the CPU the trainers are seeded per epoch). tests/test_training_faults.py runs every case
against this checkout; benchmarks/fault_table.py runs them against two commits side by side
(the table in docs/RESULTS.md).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import numpy as np
from hostile_cases import Outcome, Unavailable, clean_exit, error_line, one_line_refusal, small_disk, snapshot
from PIL import Image

# Each epoch of `zoo train` checks the model on the test set: 256 images, not all 10,000, keep
# the zoo cases short (the check's accuracy is not what they compare)
ZOO_CHECK = ("--test-limit", "256")


@dataclass
class FaultEnv:
    """What a case gets: the command that runs agscm, a fresh folder, real MNIST and a zoo
    folder holding `tiny` (a natural MNIST CNN trained briefly by this checkout)."""

    agscm: list[str]
    work: Path
    mnist: Path
    zoo: Path
    env: dict[str, str]
    kills: int = 3  # SIGKILLs per killed-run case (the table's three; the test suite's one)
    zoo_check: tuple[str, ...] = ZOO_CHECK  # () for a version without `zoo train --test-limit`

    def run(self, *args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.agscm, *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, env=self.env, cwd=self.work)

    def start(self, *args: str | Path, stderr: int | IO[str] = subprocess.PIPE,
              ) -> subprocess.Popen[str]:
        return subprocess.Popen([*self.agscm, *map(str, args)], stdout=subprocess.DEVNULL,
                                stderr=stderr, text=True, env=self.env, cwd=self.work)


def tiny_zoo(agscm: list[str], env: dict[str, str], mnist: Path, zoo: Path,
             zoo_check: tuple[str, ...] = ZOO_CHECK) -> Path:
    """`tiny`: the MNIST CNN after one epoch on 1,024 digits (the cases' source)."""
    zoo.mkdir(parents=True, exist_ok=True)  # run there: `python -m` puts the cwd first on the
    # path, and a checkout's own folder would shadow the version that $PYTHONPATH names
    result = subprocess.run([*agscm, "zoo", "train", str(mnist), "--name", "tiny", "--zoo",
                             str(zoo), "--epochs", "1", "--train-limit", "1024", *zoo_check],
                            capture_output=True, text=True, env=env, timeout=600, cwd=zoo)
    assert result.returncode == 0, result.stderr
    return zoo


# --- the commands, small ----------------------------------------------------------------------

def zoo_args(env: FaultEnv, zoo: Path, *extra: str) -> list[str | Path]:
    return ["zoo", "train", env.mnist, "--name", "k", "--zoo", zoo, "--epochs", "2",
            "--train-limit", "256", *env.zoo_check, *extra]


def train_args(env: FaultEnv, out: Path, data: Path | None = None, *extra: str) -> list[str | Path]:
    return ["train", data or env.mnist, "--source", "tiny", "--zoo", env.zoo, "-o", out,
            "--epochs", "3", "--train-limit", "256", "--val-limit", "64", "--width", "4",
            "--residual-blocks", "1", "--batch-size", "64", *extra]


def tensors_of(path: Path) -> dict[str, np.ndarray]:
    """A checkpoint's tensors as numpy arrays, read with safetensors alone."""
    from safetensors.numpy import load_file

    return load_file(str(path))


def same_tensors(first: Path, second: Path) -> str | None:
    """None when both checkpoints hold the same tensors bit for bit; else the first difference."""
    a, b = tensors_of(first), tensors_of(second)
    if a.keys() != b.keys():
        return f"different tensors ({sorted(a.keys() ^ b.keys())[:3]})"
    for name in sorted(a):
        if a[name].shape != b[name].shape or not np.array_equal(a[name], b[name]):
            return f"tensor {name} differs"
    return None


# --- 1. kill -9 at random moments -------------------------------------------------------------

def _killed_and_resumed(env: FaultEnv, make_args: Callable[[Path], list[str | Path]],
                        resume_flag: tuple[str, ...], seed: int) -> Outcome:
    """Run once uninterrupted (timed); then `env.kills` times: start afresh, SIGKILL at a seeded
    moment within the reference's training (from its first file to its end), rerun to the end
    (the same command, plus `resume_flag`); each final checkpoint must equal the reference's
    bit for bit."""
    reference = env.work / "reference"
    reference.mkdir()
    done, began, duration = _timed_from_first_file(env, make_args(reference), reference)
    if done.returncode != 0:
        return Outcome(False, f"the uninterrupted run failed: {_last_line(done)}")
    expected = _checkpoint_in(reference)
    draws = random.Random(seed)
    moments = []
    for attempt in range(env.kills):
        folder = env.work / f"killed-{attempt}"
        folder.mkdir()
        moment = began + draws.uniform(0.1, 0.95) * (duration - began)
        moments.append(f"{moment:.1f}")
        process = env.start(*make_args(folder))
        time.sleep(moment)
        process.send_signal(signal.SIGKILL)
        process.wait()
        rerun = env.run(*make_args(folder), *resume_flag)
        problem = clean_exit(rerun)
        if problem or rerun.returncode != 0:
            return Outcome(False, f"rerun after a kill at {moment:.1f} s: "
                                  f"{problem or _last_line(rerun)}")
        found = _checkpoint_in(folder)
        difference = same_tensors(expected, found) if found else "no checkpoint"
        if difference:
            return Outcome(False, f"after a kill at {moment:.1f} s: {difference}")
        leftovers = [p.name for p in folder.iterdir() if ".agscm-tmp" in p.name]
        if leftovers:
            return Outcome(False, f"temp files left: {leftovers}")
    return Outcome(True, f"killed at {', '.join(moments)} s of {duration:.0f} (training "
                         f"from {began:.1f} s); every rerun ended bit for bit equal to the "
                         "uninterrupted run")


def _timed_from_first_file(env: FaultEnv, args: list[str | Path], folder: Path,
                           ) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run to the end; also when the first file appeared in `folder` (the output's lock, taken
    as training starts, after the interpreter's start and the data set's checks), so that
    kills can be drawn from the training itself. Seconds from the start: (run, began, end)."""
    errors = env.work / f"{folder.name}.stderr"
    with errors.open("w") as stream:
        start = time.perf_counter()
        process = env.start(*args, stderr=stream)
        began = None
        while process.poll() is None:
            if began is None and any(folder.iterdir()):
                began = time.perf_counter() - start
            time.sleep(0.02)
        duration = time.perf_counter() - start
    run = subprocess.CompletedProcess(process.args, process.returncode, "", errors.read_text())
    return run, began if began is not None else 0.0, duration


def _checkpoint_in(folder: Path) -> Path | None:
    found = sorted(p for p in folder.glob("*.safetensors"))
    return found[0] if found else None


def zoo_train_killed_at_random_moments(env: FaultEnv) -> Outcome:
    return _killed_and_resumed(env, lambda folder: zoo_args(env, folder), (), seed=31)


def generator_train_killed_at_random_moments(env: FaultEnv) -> Outcome:
    return _killed_and_resumed(env, lambda folder: train_args(env, folder / "g.safetensors"),
                               ("--resume",), seed=32)


# --- 2. full disk while saving ----------------------------------------------------------------

def checkpoint_on_a_full_disk(env: FaultEnv) -> Outcome:
    """Room for one generator checkpoint and its log, not for the next epoch's temp copy
    beside it: one line, exit non-zero, and the last finished epoch's checkpoint intact
    (it resumes to the end once there is room)."""
    probe = env.work / "probe"
    probe.mkdir()
    if env.run(*train_args(env, probe / "g.safetensors", None, "--epochs", "1")).returncode:
        return Outcome(False, "the probe run failed")
    size = (probe / "g.safetensors").stat().st_size
    disk = env.work / "disk"
    with small_disk(disk, int(size * 1.5)):
        first = env.run(*train_args(env, disk / "g.safetensors"))
        saved = env.work / "saved"
        shutil.copytree(disk, saved)
    problem = clean_exit(first)
    if problem:
        return Outcome(False, problem)
    if first.returncode == 0:
        return Outcome(False, "exit 0 on a full disk")
    checkpoint = saved / "g.safetensors"
    if not checkpoint.is_file():
        return Outcome(False, "no checkpoint of a finished epoch left")
    temps = [p.name for p in saved.iterdir() if ".agscm-tmp" in p.name]
    rerun = env.run(*train_args(env, checkpoint), "--resume")
    if rerun.returncode != 0 or temps:
        return Outcome(False, f"temp files {temps}; resume: {_last_line(rerun)}")
    return Outcome(True, f"exit {first.returncode}: {error_line(first)}; the kept checkpoint "
                         "resumed to the end")


# --- 3. corrupt or truncated state ------------------------------------------------------------

def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def truncated_generator_checkpoint(env: FaultEnv) -> Outcome:
    out = env.work / "g.safetensors"
    if env.run(*train_args(env, out, None, "--epochs", "1")).returncode:
        return Outcome(False, "the first run failed")
    _truncate(out)
    before = out.read_bytes()
    result = env.run(*train_args(env, out), "--resume")
    outcome = one_line_refusal(result, str(out.name))
    if outcome.held and out.read_bytes() != before:
        return Outcome(False, "the corrupt checkpoint was overwritten")
    return outcome


def truncated_zoo_checkpoint(env: FaultEnv) -> Outcome:
    zoo = env.work / "zoo"
    if env.run(*zoo_args(env, zoo, "--epochs", "1")).returncode:
        return Outcome(False, "the first run failed")
    _truncate(zoo / "k.safetensors")
    return one_line_refusal(env.run(*zoo_args(env, zoo)), "k.safetensors")


def source_weights_with_a_wrong_sha256(env: FaultEnv) -> Outcome:
    """A catalogued zoo whose weight file no longer matches its catalog entry."""
    zoo = env.work / "zoo"
    shutil.copytree(env.zoo, zoo)
    weights = zoo / "tiny.safetensors"
    import hashlib

    catalog = {"format": 1, "models": {"tiny": {
        "file": weights.name, "size_bytes": weights.stat().st_size,
        "sha256": hashlib.sha256(weights.read_bytes() + b"other").hexdigest()}}}
    (zoo / "catalog.json").write_text(json.dumps(catalog))
    result = env.run("train", env.mnist, "--source", "tiny", "--zoo", zoo, "-o",
                     env.work / "g.safetensors", "--epochs", "1", "--train-limit", "64")
    outcome = one_line_refusal(result, "sha256")
    if outcome.held and (env.work / "g.safetensors").exists():
        return Outcome(False, "trained anyway")
    return outcome


FAST_METHODS = ("--method", "fgsm", "--method", "noise")
# how a table's cells and a report's stages were made (and how fast), not what they hold; a
# crafted set's cache file is named by its checkpoints' bytes, which record their seconds
HOW_MADE = {"seconds", "images_per_second", "run_seconds", "scoring_seconds", "cached",
            "cache_file"}


def evaluate_args(env: FaultEnv, cache: Path, out: Path,
                  *methods: str) -> list[str | Path]:
    """`evaluate` on 64 test images, `tiny` against itself; `methods`: the method flags and
    their settings (FAST_METHODS unless given)."""
    return ["evaluate", "--data", env.mnist, "--zoo", env.zoo, "--source", "tiny", "--target",
            "tiny", *(methods or FAST_METHODS), "--limit", "64", "--cache", cache, "--out", out]


def _evaluate(env: FaultEnv, cache: Path, out: Path,
              *methods: str) -> subprocess.CompletedProcess[str]:
    return env.run(*evaluate_args(env, cache, out, *methods))


def _spoiled_cache_recomputed(env: FaultEnv, find: Callable[[Path], list[Path]],
                              spoil: Callable[[Path], object], what: str,
                              done: str) -> Outcome:
    """Evaluate, spoil the cache files `find` picks, evaluate again: the spoiled files must
    be recomputed (`done` says what they were) and the table stay the same."""
    cache = env.work / "cache"
    first = _evaluate(env, cache, env.work / "first")
    if first.returncode != 0:
        return Outcome(False, f"the first run failed: {_last_line(first)}")
    spoiled = find(cache)
    if not spoiled:
        return Outcome(False, f"no {what} in the cache")
    for path in spoiled:
        spoil(path)
    second = _evaluate(env, cache, env.work / "second")
    problem = clean_exit(second)
    if problem or second.returncode != 0:
        return Outcome(False, problem or _last_line(second))
    if not _table(env.work / "first") or _table(env.work / "first") != _table(
            env.work / "second"):
        return Outcome(False, "the table changed")
    return Outcome(True, f"{len(spoiled)} {done} recomputed; the same table")


def corrupt_cached_crafted_set(env: FaultEnv) -> Outcome:
    """A crafted set in the cache cut short: detected, recomputed, the same table."""
    return _spoiled_cache_recomputed(env, lambda cache: sorted(cache.rglob("*.npz")), _truncate,
                                     "crafted set", "truncated file(s)")


def corrupt_cached_predictions(env: FaultEnv) -> Outcome:
    """The cached predictions of a model on a crafted set, cut short: recomputed, same table."""
    return _spoiled_cache_recomputed(
        env, lambda cache: sorted((cache / "predictions").glob("*.npz")),
        lambda path: path.write_bytes(b"PK\x03\x04 not a whole file"), "predictions",
        "corrupt prediction file(s)")


# A craft that saves its progress after every batch and is killed with SIGKILL right after the
# first save (tests/test_eval.py's way to a progress file, as a real kill -9); run as
# `python -c` in place of `python -m agscm`, so any version with these names can run it.
KILLED_AFTER_FIRST_SAVE = """
import os, signal
import agscm.attacks.craft as craft
from agscm.eval.cache import PartialSet
craft.SAVE_EVERY_SECONDS = 0.0
save = PartialSet.save
def save_then_die(store, state):
    save(store, state)
    os.kill(os.getpid(), signal.SIGKILL)
PartialSet.save = save_then_die
from agscm.cli import main
main()
"""
PGD_IN_BATCHES = ("--method", "pgd:steps=5", "--batch-size", "16")  # 4 batches of 64 images


def damaged_craft_progress(env: FaultEnv) -> Outcome:
    """A PGD craft killed after saving its progress (a `.partial.npz` beside the set), that
    file cut in half, the same command again: the file named in a line, the set crafted from
    the start (never resumed from the damaged file), the progress file gone, and the crafted
    images and table those of an uninterrupted run, bit for bit."""
    reference = _evaluate(env, env.work / "cache-reference", env.work / "reference",
                          *PGD_IN_BATCHES)
    if reference.returncode != 0:
        return Outcome(False, f"the uninterrupted run failed: {_last_line(reference)}")
    cache, out = env.work / "cache", env.work / "out"
    killer = replace(env, agscm=[env.agscm[0], "-c", KILLED_AFTER_FIRST_SAVE])
    killed = killer.run(*evaluate_args(env, cache, out, *PGD_IN_BATCHES))
    partials = sorted(cache.glob("*.partial.npz"))
    if killed.returncode != -signal.SIGKILL or len(partials) != 1:
        return Outcome(False, f"no progress file after the kill ({_last_line(killed)})")
    _truncate(partials[0])
    rerun = _evaluate(env, cache, out, *PGD_IN_BATCHES)
    problem = clean_exit(rerun)
    if problem or rerun.returncode != 0:
        return Outcome(False, problem or _last_line(rerun))
    named = [line for line in rerun.stderr.splitlines() if partials[0].name in line]
    if not named:
        return Outcome(False, "the damaged progress file went unmentioned")
    if partials[0].exists():
        return Outcome(False, "the damaged progress file was left")
    difference = _crafted_difference(env.work / "cache-reference", cache)
    if difference or _table(out) != _table(env.work / "reference"):
        return Outcome(False, difference or "another table")
    return Outcome(True, f"{named[0].strip()}; the same images and table as an "
                         "uninterrupted run")


def _crafted_difference(first: Path, second: Path) -> str | None:
    """None when both caches hold the same finished crafted sets bit for bit."""
    sets = [sorted(p for p in cache.glob("*.npz") if not p.name.endswith(".partial.npz"))
            for cache in (first, second)]
    if [p.name for p in sets[0]] != [p.name for p in sets[1]]:
        return f"other crafted sets ({[p.name for p in sets[1]]})"
    for a, b in zip(*sets, strict=True):
        with np.load(a) as left, np.load(b) as right:
            if not np.array_equal(left["adversarial"], right["adversarial"]):
                return f"{b.name}: other images"
    return None


def evaluate_killed_at_random_moments(env: FaultEnv) -> Outcome:
    """`evaluate` killed while crafting or scoring, each time with a fresh cache and output,
    then rerun: the same table as an uninterrupted run's (timings aside)."""
    start = time.perf_counter()
    reference = _evaluate(env, env.work / "cache-reference", env.work / "reference")
    duration = time.perf_counter() - start
    if reference.returncode != 0:
        return Outcome(False, f"the uninterrupted run failed: {_last_line(reference)}")
    expected = _table(env.work / "reference")
    draws = random.Random(33)
    moments = []
    for attempt in range(env.kills):
        cache, out = env.work / f"cache-{attempt}", env.work / f"out-{attempt}"
        moment = draws.uniform(0.3, 0.95) * duration
        moments.append(f"{moment:.1f}")
        process = env.start(*evaluate_args(env, cache, out))
        time.sleep(moment)
        process.send_signal(signal.SIGKILL)
        process.wait()
        rerun = _evaluate(env, cache, out)
        problem = clean_exit(rerun)
        if problem or rerun.returncode != 0:
            return Outcome(False, f"rerun after a kill at {moment:.1f} s: "
                                  f"{problem or _last_line(rerun)}")
        if _table(out) != expected:
            return Outcome(False, f"after a kill at {moment:.1f} s: another table")
    return Outcome(True, f"killed at {', '.join(moments)} s of {duration:.0f}; every rerun "
                         "gave the uninterrupted run's table")


def reproduce_quick_killed_at_random_moments(env: FaultEnv) -> Outcome:
    """`agscm reproduce mnist --quick` (every stage on a tiny budget) run once uninterrupted
    (timed); then `env.kills` times: start afresh, SIGKILL at a seeded moment, rerun the same
    command to the end. The report's JSON and CSV must equal the uninterrupted run's but for
    HOW_MADE (seconds, speeds, whether a set came from the cache and its cache file's name),
    and every checkpoint (zoo, sweep, generators) must hold its tensors bit for bit. Each run
    works in `run/` under the case's folder (moved aside afterwards), so every path they
    record is the same."""
    work = env.work / "run"
    args = ("reproduce", "mnist", "--quick", "--data", env.mnist, "--work", "run")
    start = time.perf_counter()
    done = env.run(*args, timeout=1800)
    duration = time.perf_counter() - start
    if done.returncode != 0:
        return Outcome(False, f"the uninterrupted run failed: {_last_line(done)}")
    expected = _report(work)
    if not expected:
        return Outcome(False, "the uninterrupted run wrote no report")
    work.rename(env.work / "reference")
    # kills at 54%, 86% and 22% of the run (the suite's one: the first); on a CPU those fall
    # in the generators, the transfer table and the zoo stage
    draws = random.Random(40)
    moments = []
    for attempt in range(env.kills):
        moment = draws.uniform(0.2, 0.95) * duration
        moments.append(f"{moment:.0f}")
        process = env.start(*args)
        time.sleep(moment)
        process.send_signal(signal.SIGKILL)
        process.wait()
        rerun = env.run(*args, timeout=1800)
        problem = clean_exit(rerun)
        if problem or rerun.returncode != 0:
            return Outcome(False, f"rerun after a kill at {moment:.0f} s: "
                                  f"{problem or _last_line(rerun)}")
        found = _report(work)
        differing = sorted(key for key in expected if found.get(key) != expected[key])
        for checkpoint in sorted((env.work / "reference").rglob("*.safetensors")):
            twin = work / checkpoint.relative_to(env.work / "reference")
            difference = same_tensors(checkpoint, twin) if twin.is_file() else "missing"
            if difference:
                differing.append(f"{twin.relative_to(work)}: {difference}")
        if differing:
            return Outcome(False, f"after a kill at {moment:.0f} s: other {differing[:3]}")
        work.rename(env.work / f"killed-{attempt}")
    return Outcome(True, f"killed at {', '.join(moments)} s of {duration:.0f}; every rerun "
                         "wrote the uninterrupted run's report (JSON and CSV, how it was made "
                         "aside) and checkpoints (tensors bit for bit)")


def _report(work: Path) -> dict[str, Any]:
    """The reproduction's `mnist.json` and `mnist.csv` without HOW_MADE ({} when missing)."""
    report, rows = work / "mnist.json", work / "mnist.csv"
    if not (report.is_file() and rows.is_file()):
        return {}
    return {**_without_how_made(json.loads(report.read_text())), "csv": _csv_rows(rows)}


def _without_how_made(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_how_made(item) for key, item in value.items() if key not in HOW_MADE}
    return [_without_how_made(item) for item in value] if isinstance(value, list) else value


def cache_on_a_full_disk(env: FaultEnv) -> Outcome:
    """The crafted-set cache on a disk too small for it: one line, exit non-zero; with room,
    the same command finishes."""
    with small_disk(env.work / "disk", 16 * 1024) as disk:
        first = _evaluate(env, disk / "cache", env.work / "out")
    problem = clean_exit(first)
    if problem:
        return Outcome(False, problem)
    if first.returncode == 0:
        return Outcome(False, "exit 0 on a full disk")
    if "disk/cache" not in first.stderr:
        return Outcome(False, f"the error does not say where: {error_line(first)}")
    second = _evaluate(env, env.work / "cache", env.work / "out")
    if second.returncode != 0 or not _table(env.work / "out"):
        return Outcome(False, f"with room: {_last_line(second)}")
    return Outcome(True, f"exit {first.returncode}: {error_line(first)}; with room it "
                         "finished")


def table_on_a_full_disk(env: FaultEnv) -> Outcome:
    """`evaluate --out` on a disk with room for the finished table's files but not for a
    temp copy beside the earlier version the table rewrites after each set: one line naming
    the file, exit non-zero, no temp file and no file that claims more than it holds; the
    crafted sets stay in the cache and the same command with room reads them back into the
    uninterrupted run's table."""
    cache, reference = env.work / "cache", env.work / "reference"
    done = _evaluate(env, cache, reference)
    if done.returncode != 0:
        return Outcome(False, f"the uninterrupted run failed: {_last_line(done)}")
    cache.rename(env.work / "cache-reference")  # the next run crafts afresh into the same path
    page = os.sysconf("SC_PAGE_SIZE")
    size = page * sum(-(-path.stat().st_size // page) for path in reference.iterdir())
    saved = env.work / "saved"
    saved.mkdir()
    with small_disk(env.work / "disk", size) as disk:
        first = _evaluate(env, cache, disk / "out")
        for path in (disk / "out").glob("*"):  # whatever it left
            shutil.copyfile(path, saved / path.name)
    problem = clean_exit(first)
    if problem or first.returncode == 0:
        return Outcome(False, problem or "exit 0 on a full disk")
    said = error_line(first)
    if "disk/out/transfer." not in said:
        return Outcome(False, f"the error does not name the file: {said}")
    left = sorted(path.name for path in saved.iterdir())
    torn = _claims_more_than_it_holds(saved, reference)
    if torn:
        return Outcome(False, torn)
    rerun = _evaluate(env, cache, saved)  # the files the full disk left, now with room
    if rerun.returncode != 0:
        return Outcome(False, f"with room: {_last_line(rerun)}")
    if _table(saved) != _table(reference):
        return Outcome(False, "with room: another table")
    if not all(crafted["cached"] for crafted in
               json.loads((saved / "transfer.json").read_text())["sets"]):
        return Outcome(False, "with room, the cached sets were crafted again")
    return Outcome(True, f"exit {first.returncode}: {said}; left {', '.join(left)}, none "
                         "claiming more than it holds; with room, every set from the cache "
                         "and the same table")


def _claims_more_than_it_holds(left: Path, reference: Path) -> str | None:
    """None when every file in `left` is whole and either says it is partial or equals the
    uninterrupted run's (timings aside; a CSV says it in every row's `table_complete`, and its
    rows must be a prefix of the reference's)."""
    temps = [p.name for p in left.iterdir() if ".agscm-tmp" in p.name]
    if temps:
        return f"temp files left: {temps}"
    markdown = left / "transfer.md"
    if markdown.is_file():
        text, whole = markdown.read_text(), (reference / "transfer.md").read_text()
        cut = "### Perturbation size"  # what follows it times the crafts
        if "Partial table" not in text and text.split(cut)[0] != whole.split(cut)[0]:
            return "transfer.md: another table, not marked partial"
    table = left / "transfer.json"
    if table.is_file():
        try:
            stored = json.loads(table.read_text())
        except ValueError:
            return "transfer.json: torn"
        if stored.get("complete", True) and stored.get("cells") != json.loads(
                (reference / "transfer.json").read_text())["cells"]:
            return "transfer.json: other cells, not marked partial"
    rows, expected = _table(left), _table(reference)
    marks = {row.pop("table_complete") for row in rows}
    if len(rows) < len(expected) and marks - {"False"}:
        return "transfer.csv: a partial table's rows, not marked partial"
    if [{**row, "table_complete": "True"} for row in rows] != expected[:len(rows)]:
        return "transfer.csv: rows that are not the table's"
    return None


def _table(folder: Path) -> list[dict[str, str]]:
    """The transfer table's cells without the columns that time them."""
    files = sorted(folder.rglob("*.csv"))
    return _csv_rows(files[0]) if files else []


def _csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as handle:
        return [{key: value for key, value in row.items() if key not in HOW_MADE}
                for row in csv.DictReader(handle)]


# --- 4. two processes on one output -----------------------------------------------------------

def _wait_until_locked_by(lock: Path, process: subprocess.Popen[str],
                          timeout: float = 300) -> bool:
    """Whether `process` came to hold a flock on `lock` (read from /proc/locks, which takes no
    lock itself) before it ended or `timeout` passed."""
    locks = Path("/proc/locks")
    if not locks.is_file():
        raise Unavailable("no /proc/locks on this machine")
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if lock.exists():
            inode = f":{lock.stat().st_ino} "
            if any(" FLOCK " in line and f" {process.pid} " in line and inode in line
                   for line in locks.read_text().splitlines()):
                return True
        time.sleep(0.05)
    return False


def two_trainings_into_one_checkpoint(env: FaultEnv) -> Outcome:
    """The second run starts while the first holds the output's lock: the first is stopped
    (SIGSTOP) as soon as /proc/locks shows its lock, so the overlap does not depend on how
    fast either runs, and continued once the second has answered."""
    out = env.work / "g.safetensors"
    first = env.start(*train_args(env, out))
    if not _wait_until_locked_by(out.with_name(f".{out.name}.lock"), first):
        first.kill()
        first.wait()
        return Outcome(False, "the first run never held the checkpoint's lock")
    first.send_signal(signal.SIGSTOP)
    try:
        second = env.run(*train_args(env, out), "--resume")
    finally:
        first.send_signal(signal.SIGCONT)
    if first.wait() != 0:
        return Outcome(False, "the first run failed")
    if second.returncode == 0:
        return Outcome(False, "both ran into one checkpoint")
    return one_line_refusal(second, "another agscm process")


def two_evaluations_on_one_cache(env: FaultEnv) -> Outcome:
    cache = env.work / "cache"
    runs = [env.start(*evaluate_args(env, cache, env.work / f"out-{index}"))
            for index in range(2)]
    codes = [process.wait() for process in runs]
    errors = [process.stderr.read() if process.stderr else "" for process in runs]
    if any("Traceback" in text for text in errors):
        return Outcome(False, "traceback")
    if codes != [0, 0]:
        return Outcome(False, f"exit codes {codes}")
    if _table(env.work / "out-0") != _table(env.work / "out-1"):
        return Outcome(False, "different tables")
    return Outcome(True, "both finished with the same table")


# --- 5. bad data sets -------------------------------------------------------------------------

def _png(path: Path, size: tuple[int, int] = (28, 28), mode: str = "L", seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], len(mode)))
    Image.fromarray(pixels.astype(np.uint8).squeeze()).convert(mode).save(path)


def _train_refused(env: FaultEnv, data: Path, words: str) -> Outcome:
    out = env.work / "g.safetensors"
    outcome = one_line_refusal(env.run(*train_args(env, out, data)), words)
    if outcome.held and out.exists():
        return Outcome(False, "a checkpoint was written")
    return outcome


def empty_data_folder(env: FaultEnv) -> Outcome:
    (env.work / "empty").mkdir()
    return _train_refused(env, env.work / "empty", "empty")


def data_folder_with_one_class(env: FaultEnv) -> Outcome:
    for index in range(20):
        _png(env.work / "one" / "train" / "7" / f"{index}.png", seed=index)
        _png(env.work / "one" / "test" / "7" / f"{index}.png", seed=100 + index)
    return _train_refused(env, env.work / "one", "class")


def zoo_data_folder_with_one_class(env: FaultEnv) -> Outcome:
    for index in range(20):
        _png(env.work / "one" / "train" / "7" / f"{index}.png", seed=index)
        _png(env.work / "one" / "test" / "7" / f"{index}.png", seed=100 + index)
    zoo = env.work / "zoo"
    outcome = one_line_refusal(env.run("zoo", "train", env.work / "one", "--name", "one",
                                       "--zoo", zoo), "class")
    if outcome.held and zoo.exists():
        return Outcome(False, "the zoo folder was written")
    return outcome


def images_of_mixed_sizes(env: FaultEnv) -> Outcome:
    for split in ("train", "test"):
        for label in ("0", "1"):
            for index in range(10):
                size = (28, 28) if index % 2 else (32, 30)
                _png(env.work / "mixed" / split / label / f"{index}.png", size, seed=index)
    return _train_refused(env, env.work / "mixed", "size")


def a_corrupt_jpeg_among_many(env: FaultEnv) -> Outcome:
    root = env.work / "jpegs"
    for split, count in (("train", 600), ("test", 100)):
        for index in range(count):
            path = root / split / str(index % 10) / f"{index:04d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.random.default_rng(index).integers(0, 256, (28, 28)).astype(
                np.uint8)).save(path)
    broken = root / "train" / "3" / "0123.jpg"
    broken.write_bytes(broken.read_bytes()[:40])
    return _train_refused(env, root, "0123.jpg")


def idx_labels_out_of_range(env: FaultEnv) -> Outcome:
    folder = env.work / "idx"
    folder.mkdir()
    for prefix in ("train", "t10k"):
        for suffix in ("images-idx3-ubyte.gz", "labels-idx1-ubyte.gz"):
            shutil.copyfile(env.mnist / f"{prefix}-{suffix}", folder / f"{prefix}-{suffix}")
    labels = folder / "train-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(labels.read_bytes()))
    data[8 + 5] = 42  # the sixth label, out of 0..9
    labels.write_bytes(gzip.compress(bytes(data)))
    return _train_refused(env, folder, "label")


def truncated_archive(env: FaultEnv) -> Outcome:
    archive = env.work / "digits.tar.gz"
    source = env.work / "tree"
    for split in ("train", "test"):
        for index in range(40):
            _png(source / split / str(index % 2) / f"{index}.png", seed=index)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="digits")
    _truncate(archive, 0.6)
    return _train_refused(env, archive, "digits.tar.gz")


def images_the_source_cannot_read(env: FaultEnv) -> Outcome:
    for split in ("train", "test"):
        for index in range(20):
            _png(env.work / "colour" / split / str(index % 2) / f"{index}.png", (32, 32),
                 "RGB", seed=index)
    return _train_refused(env, env.work / "colour", "channel")


# --- 6. bad settings --------------------------------------------------------------------------

def _setting_refused(env: FaultEnv, words: str, *extra: str,
                     command: str = "train") -> Outcome:
    out = env.work / "g.safetensors"
    args = (train_args(env, out, None, *extra) if command == "train"
            else zoo_args(env, env.work / "zoo", *extra))
    before = snapshot(env.work)
    outcome = one_line_refusal(env.run(*args), words)
    if outcome.held and snapshot(env.work) != before:
        return Outcome(False, "something was written")
    return outcome


def eps_zero(env: FaultEnv) -> Outcome:
    return _setting_refused(env, "eps", "--eps", "0")


def eps_negative(env: FaultEnv) -> Outcome:
    return _setting_refused(env, "eps", "--eps", "-0.1")


def eps_nan(env: FaultEnv) -> Outcome:
    return _setting_refused(env, "eps", "--eps", "nan")


def zoo_eps_nan(env: FaultEnv) -> Outcome:
    return _setting_refused(env, "eps", "--kind", "adv", "--eps", "nan", command="zoo")


def a_train_limit_of_zero(env: FaultEnv) -> Outcome:
    return _setting_refused(env, "train limit", "--train-limit", "0")


def zoo_negative_train_limit(env: FaultEnv) -> Outcome:
    return _setting_refused(env, "train limit", "--train-limit", "-5", command="zoo")


def a_layer_the_source_lacks(env: FaultEnv) -> Outcome:
    return _setting_refused(env, "nope", "--feature-weight", "1", "--feature-layer", "nope")


def an_unknown_recipe(env: FaultEnv) -> Outcome:
    return _setting_refused(env, "fast", "--recipe", "fast")


def an_unknown_objective(env: FaultEnv) -> Outcome:
    return _setting_refused(env, "loss", "--loss", "hinge")


def resume_with_changed_settings(env: FaultEnv) -> Outcome:
    out = env.work / "g.safetensors"
    if env.run(*train_args(env, out, None, "--epochs", "1")).returncode:
        return Outcome(False, "the first run failed")
    before = out.read_bytes()
    outcome = one_line_refusal(env.run(*train_args(env, out), "--resume", "--lr", "0.5"),
                               "different config")
    if outcome.held and out.read_bytes() != before:
        return Outcome(False, "the checkpoint changed")
    return outcome


# ----------------------------------------------------------------------------------------------

def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stderr or "").splitlines() if line.strip()]
    return f"exit {result.returncode}: {lines[-1][:160] if lines else ''}"


QUICK_CASES: list[Callable[[FaultEnv], Outcome]] = [
    truncated_generator_checkpoint, truncated_zoo_checkpoint,
    source_weights_with_a_wrong_sha256, corrupt_cached_crafted_set, corrupt_cached_predictions,
    damaged_craft_progress,
    two_trainings_into_one_checkpoint, two_evaluations_on_one_cache,
    empty_data_folder, data_folder_with_one_class, zoo_data_folder_with_one_class,
    images_of_mixed_sizes,
    a_corrupt_jpeg_among_many, idx_labels_out_of_range, truncated_archive,
    images_the_source_cannot_read,
    eps_zero, eps_negative, eps_nan, zoo_eps_nan, a_train_limit_of_zero, zoo_negative_train_limit,
    a_layer_the_source_lacks, an_unknown_recipe,
    an_unknown_objective, resume_with_changed_settings,
]
SLOW_CASES: list[Callable[[FaultEnv], Outcome]] = [
    zoo_train_killed_at_random_moments, generator_train_killed_at_random_moments,
    evaluate_killed_at_random_moments, checkpoint_on_a_full_disk, cache_on_a_full_disk,
    table_on_a_full_disk, reproduce_quick_killed_at_random_moments,
]
CASES = QUICK_CASES + SLOW_CASES
