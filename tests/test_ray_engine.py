"""`agscm perturb --engine ray` on a local Ray instance: the local engine's bytes, records, resume.

One Ray instance (2 CPUs) serves the module; the CLI runs in subprocesses that join it by
address, as a job joins a cluster. Its workers cannot import torch (a blocker on their
PYTHONPATH), so the engine is proven torch-free where the work happens too.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_helpers import REPO, run_agscm, tree_bytes
from typer.testing import CliRunner

from agscm.cli import app
from agscm.runtime import FolderOptions, Perturber
from agscm.runtime.files import TEMP_SUFFIX

ray = pytest.importorskip("ray", reason="the Ray engine's tests need Ray: pip install -e '.[ray]' "
                          "(CI runs them in a venv of their own: .ci/ray_venv.sh)")

PER_CLASS = 30  # real CIFAR-10 test JPEGs per class: 300 in all


@pytest.fixture(scope="module")
def cifar_folder(cifar_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 real CIFAR-10 test JPEGs in their class folders, plus a corrupt JPEG and a text file."""
    root = tmp_path_factory.mktemp("cifar") / "in"
    pattern = re.compile(rf"test/[a-z]+/00[0-{PER_CLASS // 10 - 1}]\d\.jpg")
    with tarfile.open(cifar_archive) as tar:
        members = [member for member in tar if pattern.fullmatch(member.name)]
        tar.extractall(root, members=members, filter="data")
    (root / "test" / "cat" / "corrupt.jpg").write_bytes(
        (root / "test" / "cat" / "0000.jpg").read_bytes()[:300])
    (root / "test" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def ray_model(request: pytest.FixtureRequest) -> Path:
    """The 3-channel generator the tests perturb with: $AGSCM_RGB_MODEL where set (CI's Ray venv
    has no torch, so .ci/ray_venv.sh exports it beforehand), else exported here (`rgb_model`)."""
    given = os.environ.get("AGSCM_RGB_MODEL")
    return Path(given) if given else request.getfixturevalue("rgb_model")


@pytest.fixture(scope="module")
def local_run(ray_model: Path, cifar_folder: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local engine's outputs: what the Ray engine must reproduce byte for byte."""
    out = tmp_path_factory.mktemp("local") / "out"
    summary = Perturber(ray_model, device="cpu").perturb_folder(
        cifar_folder, out, FolderOptions(workers=0))
    assert summary.counts == {"ok": 10 * PER_CLASS, "skipped": 0, "ignored": 1, "failed": 1}
    return out


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    blocker = tmp_path_factory.mktemp("blocker")
    (blocker / "torch").mkdir()
    (blocker / "torch" / "__init__.py").write_text("raise ImportError('torch is blocked')\n")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(blocker)}})
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def pngs(root: Path) -> dict[str, bytes]:
    return {name: data for name, data in tree_bytes(root).items() if name.endswith(".png")}


def records(root: Path) -> dict[str, dict]:
    """Manifest rows by input, less what differs between any two runs (paths, mtimes)."""
    rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    varying = ("output", "output_fingerprint")
    return {row["input"]: {k: v for k, v in row.items() if k not in varying} for row in rows}


@pytest.mark.parametrize("split", [False, True], ids=["cpu-layout", "gpu-layout"])
def test_ray_outputs_and_records_equal_the_local_engines(
        ray_model: Path, cifar_folder: Path, local_run: Path, ray_address: str,
        tmp_path: Path, split: bool) -> None:
    """Both layouts: actors that write (CPUs), and decode/encode tasks around the model
    actors (what GPUs get, here on CPUs)."""
    from agscm.runtime.ray import RayOptions, perturb_dataset

    before = tree_bytes(cifar_folder)
    out = tmp_path / "out"
    seen = []
    summary = perturb_dataset(ray_model, cifar_folder, out, on_record=seen.append,
                              ray_options=RayOptions(device="cpu", split=split))
    assert summary.counts == {"ok": 10 * PER_CLASS, "skipped": 0, "ignored": 1, "failed": 1}
    assert len(seen) == 10 * PER_CLASS + 2
    assert [record.input for record in summary.failures] == [
        str(cifar_folder / "test" / "cat" / "corrupt.jpg")]
    assert "corrupt" in (summary.failures[0].error or "")
    assert pngs(out) == pngs(local_run) and len(pngs(out)) == 10 * PER_CLASS
    assert (out / "test" / "cat" / "0000.jpg.png").is_file()  # the local engine's names
    assert records(out) == records(local_run)  # one manifest, the same records
    assert tree_bytes(cifar_folder) == before  # inputs untouched
    assert ray.is_initialized()  # a session it did not start is left running


def test_a_killed_ray_run_resumes_to_the_local_engines_bytes(
        ray_model: Path, cifar_folder: Path, local_run: Path, ray_address: str,
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    options = ["-m", str(ray_model), "--engine", "ray", "--address", ray_address,
               "--device", "cpu"]
    command = [sys.executable, "-c", "from agscm.cli import main; main()", "perturb",
               str(cifar_folder), str(out), *options]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    manifest = out / "manifest.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None and not (
            manifest.exists() and len(manifest.read_bytes().splitlines()) >= 10):
        time.sleep(0.01)  # until some records are in
    process.send_signal(signal.SIGKILL)
    process.wait()
    recorded = len(manifest.read_bytes().splitlines())
    assert 0 < recorded < 10 * PER_CLASS, "the run was not interrupted mid-way"

    again = run_agscm("perturb", str(cifar_folder), str(out), *options)
    assert again.returncode == 1, again.stderr  # the corrupt file fails again
    counts = re.search(r"(\d+) ok, (\d+) skipped, (\d+) ignored, (\d+) failed", again.stderr)
    assert counts, again.stderr
    ok, skipped, _, failed = map(int, counts.groups())
    assert ok + skipped == 10 * PER_CLASS and skipped > 0 and failed == 1
    assert f"failed: {cifar_folder / 'test' / 'cat' / 'corrupt.jpg'}: corrupt" in again.stderr
    assert pngs(out) == pngs(local_run)
    assert records(out) == records(local_run)
    assert not list(out.rglob(f"*{TEMP_SUFFIX}"))


def test_without_ray_the_engine_is_one_line_with_the_install_command(
        ray_model: Path, cifar_folder: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker" / "ray"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('ray is blocked')\n")
    result = run_agscm("perturb", str(cifar_folder), str(tmp_path / "out"), "-m",
                       str(ray_model), "--engine", "ray",
                       env={"PYTHONPATH": str(blocker.parent)})
    assert result.returncode == 1
    assert result.stderr.strip() == ('error: the Ray engine needs Ray: '
                                      'pip install "agscm[ray]"')
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("args", "words"), [
    (["--engine", "spark"], "--engine 'spark': choose local or ray"),
    (["--address", "auto"], "--address is for --engine ray"),
    (["--engine", "ray", "--workers", "2"], "--workers is for --engine local")])
def test_engine_options_that_do_not_fit_are_one_line_errors(args: list[str], words: str,
                                                            tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    result = CliRunner().invoke(app, ["perturb", str(tmp_path / "in"), str(tmp_path / "out"),
                                      "-m", str(tmp_path / "G.onnx"), *args])
    assert result.exit_code == 1 and words in result.output
    assert "Traceback" not in result.output and os.listdir(tmp_path) == ["in"]
