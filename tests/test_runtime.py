"""The torch-free runtime's Python API: sessions, model checks, arrays, images, files, folders."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image
from runtime_helpers import GeneratorFiles, export_random_generator, mnist_pngs

from agscm.atomic import TEMP_SUFFIX, atomic_path
from agscm.errors import AgscmError
from agscm.runtime import FolderOptions, Perturber
from agscm.runtime.arrays import distortion, pad_to_multiple, quantize
from agscm.runtime.files import (
    NAME_MAX,
    check_destination,
    output_name,
    parse_shard,
    temp_name,
    walk,
    write_atomic,
)
from agscm.runtime.images import ImageError, NotAnImage, read_image
from agscm.runtime.session import (
    CPU,
    CUDA,
    THREADS_ENV,
    choose_providers,
    resolve_threads,
    session_options,
)

NO_CUDA = CUDA not in ort.get_available_providers()


# --- sessions -------------------------------------------------------------------------------

def test_device_cpu_and_auto_choose_available_providers() -> None:
    assert choose_providers("cpu") == [CPU]
    assert choose_providers("auto")[0] == (CPU if NO_CUDA else CUDA)


@pytest.mark.skipif(not NO_CUDA, reason="CUDA is available here, so it cannot be missing")
def test_device_cuda_without_cuda_fails_loudly(mnist_generator: GeneratorFiles) -> None:
    with pytest.raises(AgscmError, match="CUDAExecutionProvider is not available"):
        Perturber(mnist_generator.onnx, device="cuda")


def test_auto_reports_the_provider_it_got(mnist_generator: GeneratorFiles) -> None:
    perturber = Perturber(mnist_generator.onnx, device="auto")
    assert perturber.provider == (CPU if NO_CUDA else CUDA)


def test_bad_device_and_provider_names_are_errors() -> None:
    with pytest.raises(AgscmError, match="unknown device 'gpu'"):
        choose_providers("gpu")
    with pytest.raises(AgscmError, match="NoSuchExecutionProvider not available"):
        choose_providers(providers=["NoSuchExecutionProvider"])


def test_threads_come_from_argument_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THREADS_ENV, "3")
    assert resolve_threads() == 3
    assert session_options().intra_op_num_threads == 3
    assert session_options(2).intra_op_num_threads == 2
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(AgscmError, match="AGSCM_THREADS"):
        resolve_threads()


# --- model validation -----------------------------------------------------------------------

def test_a_file_that_is_not_onnx_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "G.onnx"
    path.write_text("this is not a model")
    with pytest.raises(AgscmError, match="not a loadable ONNX model"):
        Perturber(path)


def test_an_onnx_file_that_is_not_a_generator_is_a_clear_error(tmp_path: Path) -> None:
    tensor = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    output = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
                                   [tensor], [output])
    path = tmp_path / "identity.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]),
              path)
    with pytest.raises(AgscmError, match="not an agscm generator .*expected input 'image'"):
        Perturber(path)


def test_a_generator_without_metadata_is_refused(mnist_generator: GeneratorFiles,
                                                 tmp_path: Path) -> None:
    model = onnx.load(mnist_generator.onnx)
    del model.metadata_props[:]
    onnx.save(model, tmp_path / "bare.onnx")
    with pytest.raises(AgscmError, match="missing agscm metadata keys: agscm_version"):
        Perturber(tmp_path / "bare.onnx")


@pytest.mark.slow
def test_unsupported_channel_count_is_refused(tmp_path: Path) -> None:
    path = export_random_generator(tmp_path / "two.onnx", channels=2)
    with pytest.raises(AgscmError, match="2-channel generators are not supported"):
        Perturber(path)


# --- arrays and images through the model ----------------------------------------------------

def test_perturb_array_any_size_matches_pytorch(mnist_generator: GeneratorFiles,
                                               mnist_dir: Path) -> None:
    import torch

    from agscm.data import load_split
    from agscm.export.onnx_export import ContractModule
    from agscm.models.generator_checkpoint import load_generator

    images = load_split(mnist_dir, "test").subset(6).as_float()[..., :27, 2:24]  # 27 x 22
    adversarial = Perturber(mnist_generator.onnx, device="cpu").perturb_array(images)
    assert adversarial.shape == images.shape and adversarial.dtype == np.float32
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert np.abs(adversarial - images).max() <= 0.3 + 1e-6
    assert np.abs(adversarial - images).max() > 0.1  # it does perturb
    generator, _, _ = load_generator(mnist_generator.checkpoint)
    with torch.no_grad():
        expected = ContractModule(generator)(torch.from_numpy(pad_to_multiple(images, 4)))[0]
    np.testing.assert_allclose(adversarial, expected.numpy()[..., :27, :22], atol=1e-5)


def test_perturb_array_rejects_the_wrong_channel_count(mnist_generator: GeneratorFiles) -> None:
    with pytest.raises(AgscmError, match=r"expected a float32 batch \(N, 1, H, W\)"):
        Perturber(mnist_generator.onnx).perturb_array(np.zeros((1, 3, 8, 8), np.float32))


def test_perturb_image_keeps_alpha_untouched_and_stays_in_budget(rgb_model: Path) -> None:
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (30, 45, 4), dtype=np.uint8)
    result = Perturber(rgb_model).perturb_image(Image.fromarray(rgba, "RGBA"))
    assert result.mode == "RGBA" and result.size == (45, 30)
    out = np.asarray(result)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    assert np.abs(out[..., :3].astype(int) - rgba[..., :3]).max() <= 8  # eps 8/255


def test_grey_model_converts_colour_images(mnist_generator: GeneratorFiles) -> None:
    result = Perturber(mnist_generator.onnx).perturb_image(Image.new("RGB", (13, 9), "red"))
    assert result.mode == "L" and result.size == (13, 9)


def test_pad_reflects_to_the_multiple() -> None:
    batch = np.arange(2 * 1 * 5 * 6, dtype=np.float32).reshape(2, 1, 5, 6)
    padded = pad_to_multiple(batch, 4)
    assert padded.shape == (2, 1, 8, 8)
    np.testing.assert_array_equal(padded[..., :5, :6], batch)
    np.testing.assert_array_equal(padded[..., 5, :6], batch[..., 3, :])  # reflection, not edge
    assert pad_to_multiple(padded, 4) is padded


def test_quantize_keeps_the_linf_budget_in_8_bit_steps() -> None:
    clean = np.ones((1, 2, 2, 1), np.uint8)
    adversarial = np.full((1, 1, 2, 2), 1 / 255 + 0.3, np.float32)  # delta == eps (tanh = 1)
    assert quantize(adversarial, clean, None).max() == 78  # 77.5 rounds 77 steps past clean
    assert quantize(adversarial, clean, 0.3).max() == 1 + 76


def test_distortion_measures() -> None:
    clean = np.zeros((4, 4, 1), np.uint8)
    assert distortion(clean, clean) == {"linf": 0.0, "l2": 0.0, "psnr": None}
    stepped = clean + 51
    measures = distortion(clean, stepped)
    assert measures["linf"] == pytest.approx(0.2)
    assert measures["l2"] == pytest.approx(0.2 * 4)
    assert measures["psnr"] == pytest.approx(10 * np.log10(1 / 0.04))


# --- decoding -------------------------------------------------------------------------------

def test_cmyk_16_bit_palette_and_alpha_images_convert(tmp_path: Path) -> None:
    Image.new("CMYK", (6, 4), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=95)
    cmyk = read_image(tmp_path / "cmyk.jpg", "RGB")
    assert cmyk.values.shape == (4, 6, 3) and cmyk.alpha is None
    assert cmyk.values[..., 0].min() > 200 and cmyk.values[..., 1].max() < 60  # red

    wide = np.array([[0, 257 * 100, 65535]], np.uint16)
    Image.fromarray(wide).save(tmp_path / "sixteen.png")
    assert Image.open(tmp_path / "sixteen.png").mode.startswith("I")
    np.testing.assert_array_equal(read_image(tmp_path / "sixteen.png", "L").values[..., 0],
                                  [[0, 100, 255]])

    palette = Image.new("P", (5, 3), 1)
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    palette.putpixel((0, 0), 0)
    palette.save(tmp_path / "palette.png", transparency=0)
    pixels = read_image(tmp_path / "palette.png", "RGB")
    assert pixels.alpha is not None and pixels.alpha[0, 0] == 0 and pixels.alpha[1, 1] == 255
    assert tuple(pixels.values[1, 1]) == (200, 100, 50)

    Image.new("LA", (3, 2), (90, 17)).save(tmp_path / "la.png")
    grey = read_image(tmp_path / "la.png", "L")
    assert grey.values.shape == (2, 3, 1) and grey.values.max() == 90 and grey.alpha.max() == 17


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    Image.new("RGB", (40, 20), "white").save(tmp_path / "turned.jpg", exif=exif.tobytes())
    assert read_image(tmp_path / "turned.jpg", "RGB").values.shape == (40, 20, 3)


def _png_claiming_size(path: Path, width: int, height: int) -> None:
    """A small PNG whose header claims `width` x `height`: a decompression bomb's signature."""
    Image.new("L", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    header = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    path.write_bytes(bytes(data))


def test_decompression_bombs_are_refused_from_the_header(tmp_path: Path) -> None:
    _png_claiming_size(tmp_path / "bomb.png", 40000, 40000)
    with pytest.raises(ImageError, match="decompression bomb"):
        read_image(tmp_path / "bomb.png", "L")
    Image.new("L", (28, 28)).save(tmp_path / "small.png")
    with pytest.raises(ImageError, match="28x28 = 784 pixels is over the limit of 500"):
        read_image(tmp_path / "small.png", "L", max_pixels=500)


def test_empty_truncated_and_foreign_files(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(NotAnImage, match="empty file"):
        read_image(tmp_path / "empty.png", "L")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)).save(
        tmp_path / "whole.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:300])
    with pytest.raises(ImageError, match="corrupt"):
        read_image(tmp_path / "cut.png", "L")
    (tmp_path / "text.png").write_text("<html>not found</html>")
    with pytest.raises(NotAnImage, match="not an image"):
        read_image(tmp_path / "text.png", "L")


# --- the file system ------------------------------------------------------------------------

def test_output_names_are_injective_and_fit() -> None:
    inputs = [Path("a.jpg"), Path("a.png"), Path("a"), Path("a.jpg.png"), Path("b.JPG"),
              Path("d/c.tif")]
    names = [output_name(path, ".png") for path in inputs]
    assert names == [Path("a.jpg.png"), Path("a.png.png"), Path("a.png"),
                     Path("a.jpg.png.png"), Path("b.JPG.png"), Path("d/c.tif.png")]
    long_names = [Path("x" * length + ".jpg") for length in range(240, 252)]
    outputs = [output_name(path, ".png") for path in long_names]
    assert len(set(outputs)) == len(outputs)  # still injective where the hash takes over
    assert all(len(out.name.encode()) <= NAME_MAX and out.suffix == ".png" for out in outputs)
    assert all(len(temp_name(out.name)) < len(out.name) for out in outputs)


def test_parse_shard() -> None:
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "1", "a/b", "0/0"):
        with pytest.raises(AgscmError, match="--shard"):
            parse_shard(bad)


def test_output_inside_or_equal_to_input_is_refused(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    for out in (tmp_path / "in" / "out", tmp_path / "in" / "a" / ".."/ "b"):
        with pytest.raises(AgscmError, match="inside the input folder"):
            check_destination(tmp_path / "in", out)
        check_destination(tmp_path / "in", out, allow_inside=True)
    for out in (tmp_path / "in", tmp_path / "in" / "."):  # never, even when allowed
        with pytest.raises(AgscmError, match="is the input folder"):
            check_destination(tmp_path / "in", out, allow_inside=True)
    os.symlink(tmp_path / "in", tmp_path / "alias")
    with pytest.raises(AgscmError, match="is the input folder"):
        check_destination(tmp_path / "in", tmp_path / "alias")
    check_destination(tmp_path / "in", tmp_path / "out")
    with pytest.raises(AgscmError, match="input folder not found"):
        check_destination(tmp_path / "missing", tmp_path / "out")


def test_walk_reports_loops_broken_links_and_special_files(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.png").write_bytes(b"x")
    os.symlink("..", tmp_path / "a" / "b" / "up")  # a folder loop
    os.symlink("self", tmp_path / "self")  # a link to itself
    os.symlink("missing", tmp_path / "gone")
    os.symlink("a/b", tmp_path / "alias")  # a plain folder link is followed
    os.mkfifo(tmp_path / "pipe")
    found = {entry.relative.as_posix(): entry for entry in walk(tmp_path).entries}
    assert found["a/b/x.png"].problem is None and found["alias/x.png"].problem is None
    assert found["a/b/up"].problem.startswith("symlink loop")
    assert found["alias/up/b"].problem.startswith("symlink loop")  # alias/up is `a` again
    assert found["self"].problem == "symlink loop"
    assert found["gone"].problem == "broken symlink"
    assert found["pipe"].problem == "not a regular file" and not found["pipe"].failed


def test_atomic_path_leaves_nothing_behind_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        temp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as temp:
        temp.write_bytes(b"done")
    assert list(tmp_path.iterdir()) == [target] and target.read_bytes() == b"done"


def test_write_atomic_never_writes_through_a_planted_temp_name(tmp_path: Path) -> None:
    victim = tmp_path / "victim.jpg"
    victim.write_bytes(b"precious")
    (tmp_path / "out").mkdir()
    os.symlink(victim, tmp_path / "out" / temp_name("a.png"))  # planted at the temp name
    folder = os.open(tmp_path / "out", os.O_RDONLY | os.O_DIRECTORY)
    try:
        info = write_atomic(folder, "a.png", b"new bytes")
    finally:
        os.close(folder)
    assert victim.read_bytes() == b"precious"
    assert (tmp_path / "out" / "a.png").read_bytes() == b"new bytes"
    assert info.st_size == 9 and sorted(os.listdir(tmp_path / "out")) == ["a.png"]
    assert not list(tmp_path.rglob(f"*{TEMP_SUFFIX}"))


# --- folders --------------------------------------------------------------------------------

def test_perturb_folder_writes_every_image_and_the_manifest(
        mnist_generator: GeneratorFiles, mnist_dir: Path, tmp_path: Path) -> None:
    mnist_pngs(tmp_path / "in" / "sub", mnist_dir, 20)
    seen = []
    summary = Perturber(mnist_generator.onnx).perturb_folder(
        tmp_path / "in", tmp_path / "out", FolderOptions(batch_size=7), on_record=seen.append)
    assert summary.counts == {"ok": 20, "skipped": 0, "ignored": 0, "failed": 0}
    assert len(seen) == 20 and summary.max_linf <= 76 / 255
    rows = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").open()]
    assert {row["status"] for row in rows} == {"ok"} and len(rows) == 20
    for row in rows:
        clean = np.asarray(Image.open(row["input"]), np.int16)
        saved = np.asarray(Image.open(row["output"]), np.int16)
        assert row["size"] == [28, 28]
        assert row["linf"] == pytest.approx(np.abs(saved - clean).max() / 255)
        assert row["psnr"] is not None and 5 < row["psnr"] < 60


def test_a_batch_the_model_cannot_run_fails_only_its_files(
        mnist_generator: GeneratorFiles, mnist_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    mnist_pngs(tmp_path / "in", mnist_dir, 4)
    Image.new("L", (300, 200)).save(tmp_path / "in" / "big.png")
    perturber = Perturber(mnist_generator.onnx)
    run = perturber.model.run

    def out_of_memory(batch: np.ndarray) -> np.ndarray:
        if batch.shape[-1] == 300:
            raise MemoryError("cannot allocate 1.2 GiB")
        return run(batch)

    monkeypatch.setattr(perturber.model, "run", out_of_memory)
    summary = perturber.perturb_folder(tmp_path / "in", tmp_path / "out",
                                       FolderOptions(tile=0, workers=0))
    assert summary.counts["ok"] == 4 and summary.failed == 1
    assert summary.failures[0].input.endswith("big.png")
    assert "the model failed on this image (cannot allocate" in summary.failures[0].error


def test_model_calls_stay_under_the_pixel_budget_whatever_the_sizes(
        rgb_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mixed sizes, a photo larger than a tile: every model call holds <= BATCH_PIXELS, and a
    tiled image is what perturb_image (the same tiles) gives."""
    from agscm.runtime.batches import BATCH_PIXELS

    rng = np.random.default_rng(0)
    sizes = [(20 + index, 30) for index in range(8)] + [(700, 1100)]
    (tmp_path / "in").mkdir()
    for index, (height, width) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (height, width, 3), np.uint8)).save(
            tmp_path / "in" / f"{index}.png")
    perturber = Perturber(rgb_model)
    run, calls = perturber.model.run, []

    def counting_run(batch: np.ndarray) -> np.ndarray:
        calls.append(batch.shape[0] * batch.shape[2] * batch.shape[3])
        return run(batch)

    monkeypatch.setattr(perturber.model, "run", counting_run)
    summary = perturber.perturb_folder(tmp_path / "in", tmp_path / "out", FolderOptions(workers=0))
    assert summary.counts["ok"] == 9
    assert max(calls) <= BATCH_PIXELS and len(calls) > 9  # the photo went in tiles
    photo = Image.open(tmp_path / "in" / "8.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "8.png.png")),
                                  np.asarray(perturber.perturb_image(photo)))


def test_tiles_cover_the_image_once_and_stay_within_the_tile() -> None:
    from agscm.runtime.tiles import MARGIN, tile_grid

    for height, width, size in [(1080, 1920, 512), (513, 40, 512), (300, 200, 512),
                                (2000, 999, 128), (50, 60, 0)]:
        covered = np.zeros((height, width), int)
        for tile in tile_grid(height, width, size):
            top, bottom, left, right = tile.core
            covered[top:bottom, left:right] += 1
            r0, r1, c0, c1 = tile.region
            assert r0 <= top and bottom <= r1 and c0 <= left and right <= c1
            assert size == 0 or (r1 - r0 <= size and c1 - c0 <= size)
            assert top - r0 in (0, MARGIN) and left - c0 in (0, MARGIN)  # real context
        assert (covered == 1).all()


def test_batching_does_not_change_the_output(mnist_generator: GeneratorFiles, mnist_dir: Path,
                                             tmp_path: Path) -> None:
    """Resumed runs batch differently; their outputs must still be the same bytes."""
    mnist_pngs(tmp_path / "in", mnist_dir, 12)
    perturber = Perturber(mnist_generator.onnx)
    perturber.perturb_folder(tmp_path / "in", tmp_path / "one",
                             FolderOptions(batch_size=1, workers=0))
    perturber.perturb_folder(tmp_path / "in", tmp_path / "all", FolderOptions(batch_size=64))
    outputs = list((tmp_path / "one").glob("*.png"))
    assert len(outputs) == 12
    for path in outputs:
        assert path.read_bytes() == (tmp_path / "all" / path.name).read_bytes()


# --- the contract, the manifest, the PNG writer ---------------------------------------------

def _props(**changes: str) -> dict[str, str]:
    from agscm.contract import GeneratorMetadata

    good = GeneratorMetadata("0.1.0", 3, 8 / 255, "linf", (32, 32), 4, "cifar10", ["src"], 0.5,
                             {}).to_props()
    return {**good, **changes}


@pytest.mark.parametrize(("key", "value", "words"), [
    ("eps", "nan", "eps must be a finite number > 0"), ("eps", "-0.9", "eps must be"),
    ("eps", "inf", "eps must be"), ("eps", "2", "L-inf eps must be <= 1"),
    ("norm", "l7", "unknown norm 'l7'"), ("precision", "fp64", "unknown precision"),
    ("lambda", "nan", "lambda must be"), ("train_size", "[0, 32]", "train_size"),
    ("channels", "0", "channels must be"), ("size_multiple", "0", "size_multiple")])
def test_the_contract_refuses_values_the_runtime_cannot_honour(key: str, value: str,
                                                               words: str) -> None:
    from agscm.contract import GeneratorMetadata

    GeneratorMetadata.from_props(_props())  # the unchanged metadata is fine
    with pytest.raises(ValueError, match=words):
        GeneratorMetadata.from_props(_props(**{key: value}))


def _record(name: str) -> str:
    from agscm.runtime.manifest import FileRecord

    return FileRecord(name, name + ".png", "ok").to_json() + "\n"


def test_a_torn_last_manifest_line_is_cut_off_and_reported(tmp_path: Path) -> None:
    from agscm.runtime.manifest import FileRecord, Manifest

    path = tmp_path / "manifest.jsonl"
    path.write_text(_record("a") + _record("b") + _record("c")[:30])
    manifest = Manifest.open(path, str(tmp_path / "in"), set())
    assert manifest.repaired and "torn" in manifest.repaired and set(manifest.latest) == {"a", "b"}
    manifest.append([FileRecord("d", None, "failed", error="x")])
    manifest.close()
    assert [json.loads(line)["input"] for line in path.read_text().splitlines()] == ["a", "b", "d"]
    path.write_text(_record("a") + "{not json}\n")  # a broken complete last line: cut too
    manifest = Manifest.open(path, str(tmp_path / "in"), set())
    assert "line 2 was torn" in manifest.repaired and path.read_text() == _record("a")
    manifest.close()


def test_the_manifest_is_rewritten_only_when_an_input_has_several_lines(tmp_path: Path) -> None:
    from agscm.runtime.manifest import FileRecord, Manifest

    path = tmp_path / "manifest.jsonl"
    path.write_text(_record("a"))
    manifest = Manifest.open(path, str(tmp_path / "in"), set())
    manifest.append([FileRecord("b", "b.png", "ok")])
    manifest.update([FileRecord("c", "c.png", "ok"), FileRecord("d", None, "skipped")])
    with path.open("a") as handle:  # as a worker process appends its own lines
        handle.write(_record("c"))
    inode = path.stat().st_ino
    manifest.compact()  # one line per input already: left as it is
    assert path.stat().st_ino == inode and len(path.read_text().splitlines()) == 3
    manifest.append([FileRecord("a", None, "failed", error="redone")])
    manifest.compact()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert path.stat().st_ino != inode and [row["input"] for row in rows] == ["a", "b", "c"]
    assert rows[0]["status"] == "failed"
    manifest.close()


def test_a_broken_manifest_line_in_the_middle_is_an_error(tmp_path: Path) -> None:
    from agscm.runtime.manifest import Manifest

    path = tmp_path / "manifest.jsonl"
    path.write_text(_record("a") + "garbage\n" + _record("b"))
    with pytest.raises(AgscmError, match="line 2 is not a manifest record"):
        Manifest.open(path, str(tmp_path / "in"), set())
    assert path.read_text() == _record("a") + "garbage\n" + _record("b")  # left as it was


def test_two_runs_cannot_share_a_manifest(tmp_path: Path) -> None:
    from agscm.runtime.manifest import Manifest

    first = Manifest.open(tmp_path / "m.jsonl", str(tmp_path / "in"), set())
    with pytest.raises(AgscmError, match="another agscm perturb is writing"):
        Manifest.open(tmp_path / "m.jsonl", str(tmp_path / "in"), set())
    first.close()
    Manifest.open(tmp_path / "m.jsonl", str(tmp_path / "in"), set()).close()


def test_a_full_disk_stops_with_one_line_and_the_torn_line_is_repaired(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno as errno_module

    from agscm.runtime import manifest as manifest_module
    from agscm.runtime.manifest import FileRecord, Manifest

    path = tmp_path / "manifest.jsonl"
    manifest = Manifest.open(path, str(tmp_path / "in"), set())
    manifest.append([FileRecord("a", "a.png", "ok")])
    real_write = os.write

    def disk_fills(descriptor: int, data: bytes) -> int:
        real_write(descriptor, data[:17])  # part of the line fits, then the disk is full
        monkeypatch.setattr(manifest_module.os, "write", _no_space)
        return 17

    def _no_space(descriptor: int, data: bytes) -> int:
        raise OSError(errno_module.ENOSPC, "No space left on device")

    monkeypatch.setattr(manifest_module.os, "write", disk_fills)
    with pytest.raises(AgscmError, match="No space left on device.*rerun to resume"):
        manifest.append([FileRecord("b", "b.png", "ok")])
    manifest.close()
    monkeypatch.undo()
    again = Manifest.open(path, str(tmp_path / "in"), set())
    assert again.repaired and set(again.latest) == {"a"}
    again.close()
    assert [json.loads(line)["input"] for line in path.read_text().splitlines()] == ["a"]


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("level", [0, 1, 9])
def test_the_png_writer_is_lossless(channels: int, level: int) -> None:
    import io

    from agscm.runtime.png import encode_png

    rng = np.random.default_rng(channels)
    for values in (rng.integers(0, 256, (37, 23, channels), np.uint8),
                   np.full((5, 300, channels), 7, np.uint8), np.zeros((1, 1, channels), np.uint8)):
        decoded = np.asarray(Image.open(io.BytesIO(encode_png(values, level))))
        np.testing.assert_array_equal(decoded.reshape(values.shape), values)


def test_perturb_array_hands_the_batch_over_without_a_copy(
        rgb_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    perturber = Perturber(rgb_model)
    seen = []
    real_run = perturber.model.session.run

    def spy(names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        seen.append(feeds["image"])
        return real_run(names, feeds)

    monkeypatch.setattr(perturber.model.session, "run", spy)
    batch = np.random.default_rng(0).random((4, 3, 32, 36), dtype=np.float32)
    out = perturber.perturb_array(batch)
    assert seen[0] is batch and out.shape == batch.shape and out.flags.c_contiguous


@pytest.mark.parametrize(("option", "value", "words"), [
    ("--max-pixels", "0", "max pixels must be >= 1"), ("--png-level", "10", "PNG level"),
    ("--tile", "10", "tile must be 0"), ("--channels", "loose", "--channels 'loose'"),
    ("--workers", "-1", "workers >= 0")])
def test_bad_perturb_options_are_refused(rgb_model: Path, tmp_path: Path, option: str,
                                         value: str, words: str) -> None:
    from typer.testing import CliRunner

    from agscm.cli import app

    (tmp_path / "in").mkdir()
    result = CliRunner().invoke(app, ["perturb", str(tmp_path / "in"), str(tmp_path / "out"),
                                      "-m", str(rgb_model), option, value])
    assert result.exit_code == 1 and words in result.output, result.output
    assert not (tmp_path / "out").exists()
