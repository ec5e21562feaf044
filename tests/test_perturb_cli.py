"""`agscm perturb` end to end: bad inputs, safety of the input tree, resume, shards, SIGKILL."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image
from runtime_helpers import (
    REPO,
    GeneratorFiles,
    mnist_pngs,
    run_agscm,
    tree_bytes,
)
from typer.testing import CliRunner

from agscm.cli import app
from agscm.runtime import images as images_module
from agscm.runtime.files import TEMP_SUFFIX


def perturb(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["perturb", *map(str, args)])
    return result.exit_code, result.output


def manifest_rows(path: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {Path(row["input"]).name: row for row in rows}


def _bomb_png(path: Path) -> None:
    """An 8x8 PNG whose header claims 40000 x 40000 pixels."""
    Image.new("L", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", 40000, 40000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


def _bad_folder(root: Path, mnist_dir: Path) -> None:
    """Real digits plus every kind of awkward file `agscm perturb` must survive."""
    mnist_pngs(root / "digits" / "deep", mnist_dir, 6)
    noise = np.random.default_rng(0).integers(0, 256, (40, 40, 3), np.uint8)
    Image.fromarray(noise).save(root / "whole.png")
    (root / "corrupt.png").write_bytes((root / "whole.png").read_bytes()[:400])
    (root / "empty.png").write_bytes(b"")
    (root / "fake.jpg").write_text("<html>404</html>")
    (root / "notes.txt").write_text("not an image, and not named like one")
    Image.new("CMYK", (10, 6), (0, 255, 255, 0)).save(root / "cmyk.jpg")
    Image.fromarray(np.array([[0, 25700, 65535, 1000]] * 4, np.uint16)).save(root / "sixteen.png")
    palette = Image.new("P", (9, 7), 1)
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    palette.save(root / "palette.png", transparency=0)
    rgba = np.dstack([noise[:15, :21], np.tile(np.arange(21, dtype=np.uint8) * 12, (15, 1))])
    Image.fromarray(rgba, "RGBA").save(root / "rgba.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(noise[:20, :36]).save(root / "turned.jpg", exif=exif.tobytes())
    _bomb_png(root / "bomb.png")
    os.symlink("loop", root / "loop")
    os.symlink("..", root / "digits" / "up")


def test_bad_inputs_are_reported_and_the_rest_is_processed(rgb_model: Path, mnist_dir: Path,
                                                           tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    _bad_folder(src, mnist_dir)
    before = tree_bytes(src)
    code, output = perturb(src, out, "--model", rgb_model, "--batch-size", "4")
    assert code == 1
    rows = manifest_rows(out / "manifest.jsonl")
    expected = {"corrupt.png": ("failed", "corrupt"), "empty.png": ("failed", "empty file"),
                "fake.jpg": ("failed", "not an image"), "bomb.png": ("failed", "decompression"),
                "loop": ("failed", "symlink loop"), "up": ("failed", "symlink loop"),
                "notes.txt": ("ignored", "not an image")}
    for name, (status, reason) in expected.items():
        assert rows[name]["status"] == status and reason in rows[name]["error"]
        assert f"{status}: {src / (('digits/' if name == 'up' else '') + name)}: " in output
    ok = {name for name, row in rows.items() if row["status"] == "ok"}
    assert ok == {"cmyk.jpg", "sixteen.png", "palette.png", "rgba.png", "turned.jpg",
                  "whole.png"} | {f"{i:05d}.png" for i in range(6)}
    assert "12 ok, 0 skipped, 1 ignored, 6 failed" in output
    assert tree_bytes(src) == before  # inputs untouched
    assert not list(out.rglob(f"*{TEMP_SUFFIX}"))

    rgba_out = Image.open(out / "rgba.png.png")
    assert rgba_out.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(rgba_out)[..., 3],
                                  np.asarray(Image.open(src / "rgba.png"))[..., 3])
    assert Image.open(out / "palette.png.png").mode == "RGBA"
    assert Image.open(out / "turned.jpg.png").size == (20, 36)  # EXIF rotation applied
    assert Image.open(out / "sixteen.png.png").mode == "RGB"
    assert Image.open(out / "digits" / "deep" / "00000.png.png").mode == "RGB"
    for name in ok:
        assert rows[name]["linf"] <= 8 / 255 + 1e-9, name
    for name in ("whole.png", "rgba.png", "turned.jpg", "palette.png"):
        assert rows[name]["linf"] > 0 and rows[name]["l2"] > 0 and rows[name]["psnr"] > 30


def test_unreadable_file_is_reported_and_skipped(mnist_generator: GeneratorFiles,
                                                 mnist_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "in"
    mnist_pngs(src, mnist_dir, 3)
    locked = src / "locked.png"
    locked.write_bytes((src / "00000.png").read_bytes())
    locked.chmod(0)
    if os.access(locked, os.R_OK):
        # Running as root, which reads mode-000 files anyway: make opening it fail exactly as it
        # fails for any other user, and only for this file.
        real_open = images_module.Image.open

        def refuse(path: Path, *args: object, **kwargs: object) -> Image.Image:
            if Path(path) == locked:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(images_module.Image, "open", refuse)
    code, output = perturb(src, tmp_path / "out", "-m", mnist_generator.onnx, "--workers", "0")
    assert code == 1
    assert f"failed: {locked}: unreadable: permission denied" in output
    rows = manifest_rows(tmp_path / "out" / "manifest.jsonl")
    assert rows["locked.png"]["status"] == "failed"
    assert [rows[f"0000{i}.png"]["status"] for i in range(3)] == ["ok"] * 3


def test_output_inside_the_input_is_refused_unless_allowed(mnist_generator: GeneratorFiles,
                                                           mnist_dir: Path,
                                                           tmp_path: Path) -> None:
    src = tmp_path / "in"
    mnist_pngs(src, mnist_dir, 3)
    before = tree_bytes(src)
    for out in (src, src / "adv"):
        code, output = perturb(src, out, "-m", mnist_generator.onnx)
        assert code == 1 and "the input folder" in output
    code, output = perturb(src, src, "-m", mnist_generator.onnx, "--allow-inside-input")
    assert code == 1 and "is the input folder" in output  # never IN itself
    assert tree_bytes(src) == before
    for _ in range(2):  # allowed into a subfolder; the rerun does not read its outputs back
        code, output = perturb(src, src / "adv", "-m", mnist_generator.onnx,
                               "--allow-inside-input")
        assert code == 0
    assert sorted(p.name for p in (src / "adv").glob("*.png")) == [
        f"0000{i}.png.png" for i in range(3)]
    assert {k: v for k, v in tree_bytes(src).items() if not k.startswith("adv/")} == before


def test_resume_skips_existing_outputs_and_overwrite_redoes_them(
        mnist_generator: GeneratorFiles, mnist_dir: Path, tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    mnist_pngs(src, mnist_dir, 5)
    assert perturb(src, out, "-m", mnist_generator.onnx)[0] == 0
    first = tree_bytes(out)
    code, output = perturb(src, out, "-m", mnist_generator.onnx)
    assert code == 0 and "0 ok, 5 skipped" in output
    code, output = perturb(src, out, "-m", mnist_generator.onnx, "--overwrite")
    assert code == 0 and "5 ok, 0 skipped" in output
    assert {k: v for k, v in tree_bytes(out).items() if k.endswith(".png")} == {
        k: v for k, v in first.items() if k.endswith(".png")}


def test_shards_split_the_folder(mnist_generator: GeneratorFiles, mnist_dir: Path,
                                 tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    mnist_pngs(src, mnist_dir, 7)
    for shard in ("0/2", "1/2"):
        assert perturb(src, out, "-m", mnist_generator.onnx, "--shard", shard)[0] == 0
    first = manifest_rows(out / "manifest-0of2.jsonl")
    second = manifest_rows(out / "manifest-1of2.jsonl")
    assert len(first) == 4 and len(second) == 3 and not first.keys() & second.keys()
    assert len(list(out.glob("*.png"))) == 7
    assert "--shard '2/2'" in perturb(src, out, "-m", mnist_generator.onnx, "--shard", "2/2")[1]


def test_jpeg_output_is_measured_on_the_saved_file(mnist_generator: GeneratorFiles,
                                                   mnist_dir: Path, tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    mnist_pngs(src, mnist_dir, 3)
    code, _ = perturb(src, out, "-m", mnist_generator.onnx, "--format", "jpeg", "--quality", "70")
    assert code == 0
    for row in manifest_rows(out / "manifest.jsonl").values():
        assert row["output"].endswith(".jpg")
        saved = np.asarray(Image.open(row["output"]).convert("L"), np.int16)
        clean = np.asarray(Image.open(row["input"]), np.int16)
        assert row["linf"] == pytest.approx(np.abs(saved - clean).max() / 255)


def test_bad_models_and_devices_fail_with_one_line(mnist_generator: GeneratorFiles,
                                                   mnist_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    mnist_pngs(src, mnist_dir, 1)
    (tmp_path / "text.onnx").write_text("hello")
    foreign = onnx.load(mnist_generator.onnx)
    del foreign.metadata_props[:]
    onnx.save(foreign, tmp_path / "foreign.onnx")
    cases = [(tmp_path / "text.onnx", "not a loadable ONNX model"),
             (tmp_path / "foreign.onnx", "not an agscm generator (missing agscm metadata"),
             (mnist_generator.zoo / "tiny-natural.safetensors", "not a loadable ONNX model"),
             (tmp_path / "missing.onnx", "model file not found")]
    for model, message in cases:
        code, output = perturb(src, tmp_path / "out", "-m", model)
        assert code == 1 and message in output and "Traceback" not in output
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        code, output = perturb(src, tmp_path / "out", "-m", mnist_generator.onnx,
                               "--device", "cuda")
        assert code == 1 and "CUDAExecutionProvider is not available" in output
    assert not (tmp_path / "out").exists()


def test_a_killed_run_resumes_to_the_same_bytes(mnist_generator: GeneratorFiles,
                                                mnist_dir: Path, tmp_path: Path) -> None:
    """kill -9 mid-run, run again: no partial or temp files, outputs identical to a clean run."""
    src = tmp_path / "in"
    mnist_pngs(src / "a", mnist_dir, 200)
    mnist_pngs(src / "b", mnist_dir, 200, start=200)
    options = ["-m", str(mnist_generator.onnx), "--batch-size", "2", "--workers", "1"]
    clean = run_agscm("perturb", str(src), str(tmp_path / "clean"), *options)
    assert clean.returncode == 0, clean.stderr

    killed = tmp_path / "killed"
    command = [sys.executable, "-c", "from agscm.cli import main; main()", "perturb", str(src),
               str(killed), *options]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "AGSCM_THREADS": "1"})
    deadline = time.monotonic() + 60
    manifest = killed / "manifest.jsonl"
    while time.monotonic() < deadline and not (manifest.exists() and manifest.stat().st_size):
        time.sleep(0.005)  # until the first records are in
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = len(list(killed.glob("*/*.png")))
    assert 0 < done < 400, "the run was not interrupted mid-way"

    again = run_agscm("perturb", str(src), str(killed), *options)
    assert again.returncode == 0, again.stderr
    counts = re.search(r"(\d+) ok, (\d+) skipped", again.stderr)
    assert counts and int(counts[1]) + int(counts[2]) == 400 and int(counts[2]) > 0
    outputs = {k: v for k, v in tree_bytes(killed).items() if k.endswith(".png")}
    assert outputs == {k: v for k, v in tree_bytes(tmp_path / "clean").items()
                       if k.endswith(".png")}
    assert len(outputs) == 400 and not list(killed.rglob(f"*{TEMP_SUFFIX}"))
