"""`agscm perturb` used as a careless or hostile operator would (issue 12), one function a case.

Each case builds its layout under a fresh folder, runs an `agscm` command line (any install:
this checkout, or another version in its own venv), and says whether the principle held:
inputs never modified, nothing written inside IN, no traceback, a one-line error and a
non-zero exit for bad input, a manifest that never lies. tests/test_perturb_hostile.py runs
every case against this checkout; benchmarks/hostile_table.py runs them against two installs
side by side (the before/after table in docs/RESULTS.md).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

EPS_STEPS = 8  # the RGB test model's eps is 8/255


class Unavailable(Exception):
    """This machine cannot build the case's layout (no mount, no chattr); reported as skipped."""


@dataclass(frozen=True)
class Outcome:
    held: bool
    detail: str


@dataclass
class CaseEnv:
    """What a case gets: the command that runs agscm, a fresh folder, models and real images."""

    agscm: list[str]
    work: Path
    models: dict[str, Path]  # rgb, grey, eps_nan, eps_negative, norm_unknown
    jpegs: list[Path]  # real CIFAR-10 test JPEGs, `class/NNNN.jpg` below `jpeg_root`
    jpeg_root: Path

    def run(self, *args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.agscm, *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "AGSCM_THREADS": "1"})

    def input_tree(self, count: int = 6, name: str = "in") -> Path:
        """IN with `count` real JPEGs in their class folders."""
        root = self.work / name
        for path in self.jpegs[:count]:
            target = root / path.relative_to(self.jpeg_root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        return root


def extract_jpegs(archive: Path, target: Path, per_class: int = 30) -> list[Path]:
    """The first `per_class` CIFAR-10 test JPEGs of each class, as `target/class/NNNN.jpg`,
    ordered so that any prefix mixes classes."""
    wanted = {f"{index:04d}.jpg" for index in range(per_class)}
    with tarfile.open(archive) as tar:
        members = [m for m in tar if m.isfile() and m.name.startswith("test/")
                   and Path(m.name).name in wanted]
        tar.extractall(target, members=members, filter="data")
    paths = sorted((target / "test").rglob("*.jpg"))
    return sorted(paths, key=lambda path: (path.name, path.parent.name))


# --- what "held" means ------------------------------------------------------------------------

def snapshot(root: Path) -> dict[str, tuple[str, bytes]]:
    """Every entry under `root` (not following links): kind and content or link target."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            key = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[key] = ("link", os.readlink(path).encode())
            elif path.is_file():
                found[key] = ("file", path.read_bytes())
            else:
                found[key] = ("dir", b"")
    return found


def clean_exit(result: subprocess.CompletedProcess[str]) -> str | None:
    """None when the run ended without a traceback; else what went wrong."""
    text = result.stdout + result.stderr
    if "Traceback" in text:
        lines = [line for line in text.splitlines() if line.strip()]
        return f"traceback ({lines[-1][:120] if lines else ''})"
    return None


def one_line_refusal(result: subprocess.CompletedProcess[str], words: str) -> Outcome:
    problem = clean_exit(result)
    if problem:
        return Outcome(False, problem)
    if result.returncode == 0:
        return Outcome(False, "exit 0: accepted")
    if words.lower() not in result.stderr.lower():
        return Outcome(False, f"exit {result.returncode} without saying {words!r}")
    return Outcome(True, f"exit {result.returncode}: {error_line(result)}")


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The run's first `error:` line (else its last line), cut to fit a table cell."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return (lines[0] if lines else result.stderr.strip().splitlines()[-1])[:160]


def manifest_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def latest_records(path: Path) -> dict[str, dict]:
    return {row["input"]: row for row in manifest_records(path)}


def within_eps(input_path: Path, output_path: Path, steps: int = EPS_STEPS) -> bool:
    clean = np.asarray(Image.open(input_path).convert("RGB"), np.int16)
    saved = np.asarray(Image.open(output_path).convert("RGB"), np.int16)
    return clean.shape == saved.shape and int(np.abs(saved - clean).max()) <= steps


# --- 1. inputs modified ---------------------------------------------------------------------

def manifest_is_an_input_file(env: CaseEnv) -> Outcome:
    src = env.input_tree()
    before = snapshot(src)
    result = env.run("perturb", src, env.work / "out", "-m", env.models["rgb"],
                     "--manifest", src / "cat" / "0000.jpg")
    if snapshot(src) != before:
        return Outcome(False, f"exit {result.returncode}; the input JPEG was written to")
    return one_line_refusal(result, "manifest")


def manifest_inside_the_input(env: CaseEnv) -> Outcome:
    src = env.input_tree()
    before = snapshot(src)
    result = env.run("perturb", src, env.work / "out", "-m", env.models["rgb"],
                     "--manifest", src / "manifest.jsonl")
    if snapshot(src) != before:
        return Outcome(False, f"exit {result.returncode}; a file was created inside IN")
    return one_line_refusal(result, "manifest")


def planted_temp_symlink(env: CaseEnv) -> Outcome:
    """A symlink into IN at every temp name a version might use for OUT/cat/0000.*."""
    src = env.input_tree()
    out = env.work / "out"
    (out / "cat").mkdir(parents=True)
    victim = src / "cat" / "0000.jpg"
    names = [".0000.png.agscm-tmp", ".0000.jpg.png.agscm-tmp"]
    try:
        from agscm.runtime.files import temp_name

        names.append(temp_name("0000.jpg.png"))
    except ImportError:  # the harness may not have this checkout
        pass
    for name in names:
        os.symlink(victim, out / "cat" / name)
    before = snapshot(src)
    result = env.run("perturb", src, out, "-m", env.models["rgb"])
    if snapshot(src) != before:
        return Outcome(False, f"exit {result.returncode}; {victim.name} was overwritten "
                              "through the planted link")
    problem = clean_exit(result)
    if problem or result.returncode != 0:
        return Outcome(False, problem or f"exit {result.returncode}")
    return Outcome(True, "input untouched; the planted links were replaced, never followed")


def output_subfolder_links_into_input(env: CaseEnv) -> Outcome:
    src = env.input_tree()
    out = env.work / "out"
    out.mkdir()
    os.symlink(src / "cat", out / "cat")
    before = snapshot(src)
    result = env.run("perturb", src, out, "-m", env.models["rgb"])
    if snapshot(src) != before:
        added = sorted(set(snapshot(src)) - set(before))
        return Outcome(False, f"exit {result.returncode}; written inside IN: {added[:2]}")
    problem = clean_exit(result)
    if problem or result.returncode == 0:
        return Outcome(False, problem or "exit 0 although files were not written")
    return Outcome(True, f"exit {result.returncode}; IN untouched, the cat files failed")


def input_links_to_output(env: CaseEnv) -> Outcome:
    src = env.input_tree()
    out = env.work / "out"
    out.mkdir()
    os.symlink(out, src / "link-to-out")
    counts = []
    for _ in range(3):
        result = env.run("perturb", src, out, "-m", env.models["rgb"])
        problem = clean_exit(result)
        if problem:
            return Outcome(False, problem)
        counts.append(sum(1 for path in out.rglob("*") if path.is_file()))
    if len(set(counts)) != 1:
        return Outcome(False, f"OUT grows with every rerun: {counts} files")
    return Outcome(True, f"OUT stays at {counts[0]} files over 3 runs")


# --- 2. exit 0 with a wrong result ----------------------------------------------------------

def new_input_takes_an_old_output_name(env: CaseEnv) -> Outcome:
    src, out = env.work / "in", env.work / "out"
    src.mkdir()
    shutil.copyfile(env.jpegs[0], src / "a.jpg")
    first = env.run("perturb", src, out, "-m", env.models["rgb"])
    Image.open(env.jpegs[1]).save(src / "a.png")  # a different image, named like a's output
    second = env.run("perturb", src, out, "-m", env.models["rgb"])
    problem = clean_exit(first) or clean_exit(second)
    if problem:
        return Outcome(False, problem)
    rows = latest_records(out / "manifest.jsonl")
    for name in ("a.jpg", "a.png"):
        row = rows.get(str(src / name))
        if row is None or row["output"] is None or not Path(row["output"]).is_file():
            return Outcome(False, f"{name}: no output recorded")
        if not within_eps(src / name, Path(row["output"])):
            return Outcome(False, f"exit {second.returncode}; {Path(row['output']).name} "
                                  f"(recorded for {name}) is another image's result")
    return Outcome(True, "each input has its own output, within eps of it")


def failed_output_reported_done_on_rerun(env: CaseEnv) -> Outcome:
    src, out = env.input_tree(2), env.work / "out"
    blocked = env.jpegs[0].relative_to(env.jpeg_root)
    for name in (blocked.with_suffix(".png"), Path(f"{blocked}.png")):  # old and new naming
        (out / name).mkdir(parents=True)
    codes = [env.run("perturb", src, out, "-m", env.models["rgb"]).returncode for _ in range(2)]
    if codes[1] == 0:
        return Outcome(False, f"exits {codes}: the rerun reports success for a file that "
                              "never got an output")
    return Outcome(True, f"exits {codes}: the blocked file fails on every run")


# --- 3. the manifest is the truth -----------------------------------------------------------

def killed_run_manifest_matches_outputs(env: CaseEnv, images: int = 300,
                                        rounds: int = 3) -> Outcome:
    """kill -9 at a random moment, rerun: ok records match the outputs one to one; `rounds`
    times, each into a fresh OUT, since one kill may land where nothing is in flight."""
    src = env.input_tree(images)
    details = []
    for round_ in range(rounds):
        outcome = _kill_and_rerun(env, src, env.work / f"out{round_}")
        if not outcome.held:
            return Outcome(False, f"round {round_ + 1}: {outcome.detail}")
        details.append(outcome.detail)
    return Outcome(True, "; ".join(details))


def _kill_and_rerun(env: CaseEnv, src: Path, out: Path) -> Outcome:
    command = [*env.agscm, "perturb", str(src), str(out), "-m", str(env.models["rgb"]),
               "--batch-size", "8"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "AGSCM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not list(out.glob("*/*.png")) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(random.uniform(0, 1.5))  # a random moment of the run
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(0.2)  # workers of the killed run, if any survive it, finish their file
    lies = _ok_without_output(out / "manifest.jsonl")
    if lies:
        return Outcome(False, f"after the kill, {len(lies)} ok record(s) without their output")
    rerun = env.run("perturb", src, out, "-m", env.models["rgb"])
    problem = clean_exit(rerun)
    if problem or rerun.returncode != 0:
        return Outcome(False, problem or f"rerun exit {rerun.returncode}")
    ok = [row["output"] for row in manifest_records(out / "manifest.jsonl")
          if row["status"] == "ok"]
    outputs = sorted(str(path) for path in out.rglob("*.png"))
    if sorted(ok) != outputs:
        missing = len(set(outputs) - set(ok))
        return Outcome(False, f"{missing} output(s) without an ok record, {len(ok)} ok records "
                              f"for {len(outputs)} outputs")
    return Outcome(True, f"{len(outputs)} outputs, one ok record each")


def _ok_without_output(manifest: Path) -> list[str]:
    if not manifest.exists():
        return []
    data = manifest.read_bytes().split(b"\n")
    rows = []
    for line in data[:-1]:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return [row["output"] for row in rows
            if row.get("status") == "ok" and not Path(row["output"]).is_file()]


@contextmanager
def small_disk(folder: Path, size: int) -> Iterator[Path]:
    """`folder`, made here, as a file system of `size` bytes while the block runs, so that
    writes into it fill the disk; Unavailable where this machine cannot mount one."""
    folder.mkdir(parents=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        raise Unavailable("cannot mount a small tmpfs here (needs root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)


def full_disk(env: CaseEnv) -> Outcome:
    """OUT on a 256 KiB file system: a one-line error, and a rerun with room repairs the
    manifest (no invalid JSON left in the middle)."""
    src = env.input_tree(120)
    out = env.work / "small"
    with small_disk(out, 256 * 1024):
        first = env.run("perturb", src, out, "-m", env.models["rgb"])
        saved = env.work / "saved"
        shutil.copytree(out, saved)
    problem = clean_exit(first)
    if problem:
        return Outcome(False, problem)
    if first.returncode == 0:
        return Outcome(False, "exit 0 on a full disk")
    shutil.rmtree(out)
    shutil.copytree(saved, out)  # the same files, now on a disk with room
    second = env.run("perturb", src, out, "-m", env.models["rgb"])
    problem = clean_exit(second)
    if problem:
        return Outcome(False, f"rerun: {problem}")
    lines = (out / "manifest.jsonl").read_text().splitlines()
    broken = 0
    for line in lines:
        try:
            json.loads(line)
        except ValueError:
            broken += 1
    if broken or second.returncode != 0:
        return Outcome(False, f"rerun exit {second.returncode}; {broken} invalid manifest "
                              "line(s)")
    return Outcome(True, f"exit {first.returncode}: {error_line(first)}; the rerun "
                         "finished with a valid manifest")


# --- 4. tracebacks instead of one line ------------------------------------------------------

def output_under_proc(env: CaseEnv) -> Outcome:
    result = env.run("perturb", env.input_tree(2), "/proc/agscm-out", "-m", env.models["rgb"])
    return one_line_refusal(result, "/proc/agscm-out")


def output_on_a_read_only_mount(env: CaseEnv) -> Outcome:
    base, mount = env.work / "ro-base", env.work / "ro"
    base.mkdir()
    mount.mkdir()
    steps = [["mount", "--bind", str(base), str(mount)],
             ["mount", "-o", "remount,ro,bind", str(mount)]]
    for step in steps:
        if subprocess.run(step, capture_output=True).returncode != 0:
            subprocess.run(["umount", str(mount)], capture_output=True)
            raise Unavailable("cannot make a read-only bind mount here (needs root)")
    try:
        result = env.run("perturb", env.input_tree(2), mount / "out", "-m",
                         env.models["rgb"])
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
    return one_line_refusal(result, "out")


def output_under_a_folder_without_write_permission(env: CaseEnv) -> Outcome:
    locked = env.work / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes through permissions; an immutable folder stops it
        if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode:
            raise Unavailable("running as root and chattr +i is not available")
        undo = ["chattr", "-i", str(locked)]
    else:
        locked.chmod(0o555)
        undo = ["chmod", "755", str(locked)]
    try:
        result = env.run("perturb", env.input_tree(2), locked / "out", "-m",
                         env.models["rgb"])
    finally:
        subprocess.run(undo, capture_output=True)
    return one_line_refusal(result, "out")


def deeply_nested_input(env: CaseEnv, depth: int = 1000) -> Outcome:
    src = env.input_tree(2)
    folder = src
    for _ in range(depth):  # not mkdir(parents=True): it recurses once per level
        folder = folder / "d"
        folder.mkdir()
    shutil.copyfile(env.jpegs[0], folder / "deep.jpg")
    try:
        result = env.run("perturb", src, env.work / "out", "-m", env.models["rgb"])
    finally:  # shutil.rmtree (and pytest's clean-up) recurse once per level too
        for root in (src / "d", env.work / "out" / "d"):
            _remove_chain(root)
    problem = clean_exit(result)
    if problem:
        return Outcome(False, problem)
    rows = manifest_records(env.work / "out" / "manifest.jsonl")
    done = sum(row["status"] == "ok" for row in rows)
    if done < 2:
        return Outcome(False, f"exit {result.returncode}; only {done} ok")
    return Outcome(True, f"exit {result.returncode}; {done} ok (the file {depth} folders "
                         "deep reported, not a crash)")


def _remove_chain(top: Path) -> None:
    """Remove a chain of single folders (and their files) from the bottom up, iteratively."""
    chain = [top]
    while chain[-1].is_dir() and (chain[-1] / "d").is_dir():
        chain.append(chain[-1] / "d")
    for folder in reversed(chain):
        if folder.is_dir():
            for path in folder.iterdir():
                if not path.is_dir():
                    path.unlink()
            folder.rmdir()


def _bad_model_case(key: str, words: str) -> Callable[[CaseEnv], Outcome]:
    def case(env: CaseEnv) -> Outcome:
        out = env.work / "out"
        result = env.run("perturb", env.input_tree(2), out, "-m", env.models[key])
        outcome = one_line_refusal(result, words)
        if outcome.held and list(out.rglob("*.png")):
            return Outcome(False, "refused, but outputs were written")
        return outcome

    case.__name__ = f"model_with_{key}"
    return case


# --- 5. nonsense accepted -------------------------------------------------------------------

model_with_eps_nan = _bad_model_case("eps_nan", "eps")
model_with_eps_negative = _bad_model_case("eps_negative", "eps")
model_with_norm_unknown = _bad_model_case("norm_unknown", "norm")


# --- 6. names -------------------------------------------------------------------------------

def long_file_names(env: CaseEnv) -> Outcome:
    src = env.work / "in"
    src.mkdir()
    for length in range(245, 256):
        shutil.copyfile(env.jpegs[length % len(env.jpegs)],
                        src / ("n" * (length - 4) + ".jpg"))
    result = env.run("perturb", src, env.work / "out", "-m", env.models["rgb"])
    problem = clean_exit(result)
    if problem:
        return Outcome(False, problem)
    rows = manifest_records(env.work / "out" / "manifest.jsonl")
    failed = [row for row in rows if row["status"] != "ok"]
    if failed or result.returncode != 0:
        return Outcome(False, f"exit {result.returncode}; {len(failed)} of 11 failed "
                              f"({(failed[0]['error'] or '')[:60] if failed else ''})")
    return Outcome(True, "names of 245-255 bytes: all 11 ok")


# --- 7. silent conversions ------------------------------------------------------------------

def colour_images_to_a_grey_model(env: CaseEnv) -> Outcome:
    src = env.input_tree(3)
    result = env.run("perturb", src, env.work / "out", "-m", env.models["grey"])
    problem = clean_exit(result)
    if problem:
        return Outcome(False, problem)
    rows = manifest_records(env.work / "out" / "manifest.jsonl")
    said = "grey" in result.stderr.lower() and "warning" in result.stderr.lower()
    marked = all("grey" in json.dumps(row.get("converted")) for row in rows
                 if row["status"] == "ok")
    if not (said and marked):
        return Outcome(False, f"exit {result.returncode}; converted to grey without a word "
                              f"(warning: {said}, manifest field: {marked})")
    strict = env.run("perturb", src, env.work / "strict", "-m", env.models["grey"],
                     "--channels", "strict")
    if clean_exit(strict) or strict.returncode == 0 or "strict" not in strict.stderr:
        return Outcome(False, f"warned, but --channels strict did not refuse (exit "
                              f"{strict.returncode})")
    return Outcome(True, "a warning and a manifest field; --channels strict refuses")


def lossy_format_breaks_the_bound(env: CaseEnv) -> Outcome:
    src = env.input_tree(6)
    result = env.run("perturb", src, env.work / "out", "-m", env.models["rgb"], "--format",
                     "jpeg", "--quality", "50")
    problem = clean_exit(result)
    if problem:
        return Outcome(False, problem)
    rows = manifest_records(env.work / "out" / "manifest.jsonl")
    over = [row for row in rows if row["status"] == "ok" and row["linf"] > EPS_STEPS / 255]
    warned = "warning" in result.stderr.lower() and "eps" in result.stderr.lower()
    if over and not warned:
        return Outcome(False, f"{len(over)} saved JPEGs past eps (up to "
                              f"{max(row['linf'] for row in over) * 255:.0f}/255), no warning")
    if not warned:
        return Outcome(False, "no warning that JPEG may break eps")
    return Outcome(True, f"warned; {len(over)} of {len(rows)} saved files past eps, each "
                         "marked in the manifest")


# --- 8. bad options -------------------------------------------------------------------------

def max_pixels_zero(env: CaseEnv) -> Outcome:
    result = env.run("perturb", env.input_tree(2), env.work / "out", "-m", env.models["rgb"],
                     "--max-pixels", "0")
    return one_line_refusal(result, "max")


CASES: list[Callable[[CaseEnv], Outcome]] = [
    manifest_is_an_input_file, manifest_inside_the_input, planted_temp_symlink,
    output_subfolder_links_into_input, input_links_to_output,
    new_input_takes_an_old_output_name, failed_output_reported_done_on_rerun,
    killed_run_manifest_matches_outputs, full_disk,
    output_under_proc, output_on_a_read_only_mount,
    output_under_a_folder_without_write_permission, deeply_nested_input,
    model_with_eps_nan, model_with_eps_negative, model_with_norm_unknown,
    long_file_names, colour_images_to_a_grey_model, lossy_format_breaks_the_bound,
    max_pixels_zero,
]


def make_models(folder: Path) -> dict[str, Path]:
    """The untrained test generators, and copies whose metadata breaks the contract."""
    import onnx
    from runtime_helpers import export_random_generator

    models = {"rgb": export_random_generator(folder / "rgb.onnx", 3),
              "grey": export_random_generator(folder / "grey.onnx", 1, eps=0.3)}
    for key, field, value in (("eps_nan", "eps", "nan"), ("eps_negative", "eps", "-0.9"),
                              ("norm_unknown", "norm", "l7")):
        model = onnx.load(models["rgb"])
        for prop in model.metadata_props:
            if prop.key == field:
                prop.value = value
        models[key] = folder / f"{key}.onnx"
        onnx.save(model, models[key])
    return models
