"""Shipped generators: cards, lookup by name, sha256 checks, and the choice `agscm perturb`
makes without --model; tiny generators made here, in a folder named by $AGSCM_PRETRAINED."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from runtime_helpers import mnist_pngs, run_agscm
from typer.testing import CliRunner

from agscm.cli import app
from agscm.digest import file_digest
from agscm.errors import AgscmError
from agscm.runtime import GeneratorModel, Perturber
from agscm.runtime.pretrained import (
    CARD_FIELDS,
    PACKAGE_FOLDER,
    PRETRAINED_ENV,
    Shelf,
    choose_for_folder,
    pretrained_folder,
    write_card,
)

GREY, COLOUR = "digits-grey", "photos-colour"
TRAINING = {"data": "mnist train", "images_seen": 1200, "epochs": 1, "command": "agscm train"}


def ship(folder: Path, name: str, model: Path, default: bool = False) -> Path:
    """Copy `model` into `folder` as NAME.onnx and write its card with write_card."""
    folder.mkdir(parents=True, exist_ok=True)
    target = shutil.copyfile(model, folder / f"{name}.onnx")
    write_card(target, summary=f"{name}, for tests", recipe="paper", training=TRAINING,
               transfer={"mnist-adv": {"aeg-gc": 0.25, "floor": 0.9}},
               crafting={"images_per_second": 1000, "measured": "nowhere"}, default=default)
    return target


@pytest.fixture
def shelf(tmp_path: Path, grey_model: Path, rgb_model: Path,
          monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "shipped"
    ship(folder, GREY, grey_model)
    ship(folder, COLOUR, rgb_model)
    monkeypatch.setenv(PRETRAINED_ENV, str(folder))
    return folder


def agscm(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*map(str, args)], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


def steps(clean: Path, adversarial: Path) -> int:
    """The largest pixel change between two image files, in 8-bit steps (adversarial's mode)."""
    with Image.open(adversarial) as out:
        mode, after = out.mode, np.asarray(out).astype(int)
    with Image.open(clean) as image:
        before = np.asarray(image.convert(mode)).astype(int)
    return int(np.abs(after - before).max())


def colour_pngs(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    paths = []
    for index in range(count):
        paths.append(folder / f"colour{index}.png")
        Image.fromarray(rng.integers(0, 256, (20 + index, 24, 3), np.uint8)).save(paths[-1])
    return paths


def test_write_card_records_the_files_metadata_and_digest(shelf: Path, grey_model: Path) -> None:
    card = json.loads((shelf / f"{GREY}.json").read_text())
    assert tuple(card) == CARD_FIELDS
    assert card["name"] == GREY and card["channels"] == 1 and card["eps"] == pytest.approx(0.3)
    assert card["norm"] == "linf" and card["dataset"] == "random" and card["sources"] == []
    assert card["sha256"] == file_digest(grey_model)
    assert card["size_bytes"] == grey_model.stat().st_size and card["default"] is False
    assert card["training"] == TRAINING and card["transfer"]["mnist-adv"]["floor"] == 0.9
    assert [c.name for c in Shelf.open().cards] == [GREY, COLOUR]


def test_the_folder_defaults_to_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PRETRAINED_ENV, raising=False)
    assert pretrained_folder() == PACKAGE_FOLDER
    assert PACKAGE_FOLDER.name == "pretrained" and (PACKAGE_FOLDER / "__init__.py").is_file()
    pyproject = (PACKAGE_FOLDER.parents[1] / "pyproject.toml").read_text()
    assert '"agscm.pretrained" = ["*.onnx", "*.json"]' in pyproject  # in the wheel


def test_every_file_in_the_package_matches_its_card(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ships: every pair complete, every file its card's, its metadata its card's."""
    monkeypatch.delenv(PRETRAINED_ENV, raising=False)
    shelf = Shelf.open()
    for card in shelf.cards:
        model = GeneratorModel(card.name, device="cpu", threads=1)  # sha256 and metadata
        assert model.path == shelf.verified_path(card.name) and model.card == card
    for channels in (1, 3):
        if any(card.channels == channels for card in shelf.cards):
            shelf.default_for(channels)  # one of them is taken without --model


def test_perturber_and_generator_model_take_a_shipped_name(shelf: Path) -> None:
    perturber = Perturber(GREY, device="cpu", threads=1)
    assert perturber.model.path == shelf / f"{GREY}.onnx" and perturber.model.card.name == GREY
    clean = np.random.default_rng(0).random((2, 1, 12, 16), dtype=np.float32)
    adversarial = perturber.perturb_array(clean)
    assert adversarial.shape == clean.shape and np.abs(adversarial - clean).max() <= 0.3 + 1e-6
    assert GeneratorModel(COLOUR, device="cpu").channels == 3
    assert GeneratorModel(shelf / f"{COLOUR}.onnx", device="cpu").card.name == COLOUR


def test_a_file_in_the_folder_is_checked_by_path_once_it_has_a_card(shelf: Path,
                                                                     grey_model: Path) -> None:
    """Packaging: `agscm export -o agscm/pretrained/NAME.onnx`, measure it, then write_card."""
    new = Path(shutil.copyfile(grey_model, shelf / "new.onnx"))
    assert GeneratorModel(new, device="cpu").card is None  # no card yet: a file like any other
    assert "a generator without its card new.json" in one_error_line(agscm("models")[1])
    ship(shelf, "new", grey_model)
    assert GeneratorModel(new, device="cpu").card.name == "new"
    new.write_bytes(new.read_bytes() + b"\0")
    with pytest.raises(AgscmError, match=f"{new}: does not match its card"):
        GeneratorModel(new)


def test_perturb_without_model_on_grey_images_uses_the_grey_generator(
        shelf: Path, mnist_dir: Path, tmp_path: Path) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    digits = mnist_pngs(source / "digits", mnist_dir, 6)
    with Image.open(digits[0]) as image:  # other grey modes: alpha, and a palette of greys
        image.putalpha(200)
        image.save(source / "alpha.png")
        image.convert("L").convert("P").save(source / "palette.png")
    (source / "notes.txt").write_text("not an image: skipped, as the run skips it")
    code, output = agscm("perturb", source, out, "--workers", "0")
    assert code == 0, output
    line = f"no --model: 8 of 8 images are grey; using shipped generator {GREY} (eps 0.3 linf)"
    assert line in output and output.index(line) < output.index("8 ok")
    for clean in [*digits, source / "alpha.png", source / "palette.png"]:
        written = out / clean.relative_to(source).with_name(clean.name + ".png")
        with Image.open(written) as image:
            assert image.mode in ("L", "LA"), written
        assert 0 < steps(clean, written) <= 76, written  # floor(0.3 * 255) 8-bit steps


def test_perturb_without_model_on_colour_images_uses_the_colour_generator(
        shelf: Path, tmp_path: Path) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    pictures = colour_pngs(source, 3)
    Image.new("RGB", (9, 7), (200, 30, 10)).convert("P").save(source / "palette.png")
    code, output = agscm("perturb", source, out, "--workers", "0")
    assert code == 0, output
    assert (f"no --model: 4 of 4 images are colour; using shipped generator {COLOUR} "
            "(eps 0.03137 linf)") in output
    for clean in pictures:
        written = out / f"{clean.name}.png"
        with Image.open(written) as image:
            assert image.mode == "RGB"
        assert 0 < steps(clean, written) <= 8  # eps 8/255


def test_a_mixed_folder_uses_the_colour_generator(shelf: Path, mnist_dir: Path,
                                                  tmp_path: Path) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    digits = mnist_pngs(source / "digits", mnist_dir, 5)
    colour_pngs(source / "photos", 1)
    code, output = agscm("perturb", source, out, "--workers", "0")
    assert code == 0, output
    assert (f"no --model: 1 of 6 images are colour; using shipped generator {COLOUR} "
            "(eps 0.03137 linf); the 5 grey ones are converted to RGB") in output
    for clean in digits:
        written = out / "digits" / f"{clean.name}.png"
        with Image.open(written) as image:
            assert image.mode == "RGB"
        assert steps(clean, written) <= 8


def test_perturb_accepts_a_shipped_name_for_model(shelf: Path, mnist_dir: Path,
                                                  tmp_path: Path) -> None:
    mnist_pngs(tmp_path / "in", mnist_dir, 2)
    code, output = agscm("perturb", tmp_path / "in", tmp_path / "out", "--model", COLOUR,
                         "--workers", "0")
    assert code == 0, output
    assert "no --model" not in output and f"{COLOUR}.onnx: RGB, eps 0.03137 linf" in output


def test_a_tampered_file_is_refused_in_one_line_and_nothing_is_written(
        shelf: Path, mnist_dir: Path, tmp_path: Path) -> None:
    model = shelf / f"{GREY}.onnx"
    data = bytearray(model.read_bytes())
    data[-1] ^= 1
    model.write_bytes(bytes(data))
    mnist_pngs(tmp_path / "in", mnist_dir, 2)
    for extra in ([], ["--model", GREY]):
        code, output = agscm("perturb", tmp_path / "in", tmp_path / "out", *extra)
        line = one_error_line(output)
        assert code == 1 and str(model) in line and "does not match its card" in line
        assert f"shipped: {GREY}, {COLOUR}" in line
        assert not (tmp_path / "out").exists()
    with pytest.raises(AgscmError, match="does not match its card"):
        Perturber(GREY)
    assert "does not match its card" in one_error_line(agscm("models", GREY)[1])


def test_an_unknown_name_lists_the_known_ones(shelf: Path, tmp_path: Path,
                                              mnist_dir: Path) -> None:
    mnist_pngs(tmp_path / "in", mnist_dir, 1)
    for args in (["perturb", tmp_path / "in", tmp_path / "out", "--model", "nope"],
                 ["info", "nope"], ["models", "nope"], ["web", tmp_path / "site", "-m", "nope"]):
        code, output = agscm(*args)
        assert code == 1 and one_error_line(output) == (
            f"error: 'nope' is neither a file nor a shipped generator; shipped: {GREY}, "
            f"{COLOUR} (agscm models lists them)"), args
    assert not (tmp_path / "out").exists() and not (tmp_path / "site").exists()
    code, output = agscm("perturb", tmp_path / "in", tmp_path / "out", "--model", "gone.onnx")
    assert code == 1 and "gone.onnx: model file not found" in one_error_line(output)


@pytest.mark.parametrize("remove", [".onnx", ".json"])
def test_a_card_without_its_file_or_a_file_without_its_card(shelf: Path, remove: str) -> None:
    (shelf / f"{COLOUR}{remove}").unlink()
    kept = shelf / f"{COLOUR}{'.json' if remove == '.onnx' else '.onnx'}"
    for args in (["models"], ["info"], ["models", GREY]):
        code, output = agscm(*args)
        line = one_error_line(output)
        assert code == 1 and line.startswith(f"error: {kept}: a ") and f"shipped: {GREY}" in line
    with pytest.raises(AgscmError, match="without its"):
        Perturber(GREY)


def test_a_card_that_breaks_the_schema_is_one_line(shelf: Path) -> None:
    path = shelf / f"{GREY}.json"
    card = json.loads(path.read_text())
    for change, expected in (({"channels": 2}, "card field channels must be 1 or 3, got 2"),
                             ({"defualt": True}, "card fields unknown defualt"),
                             ({"name": "other"}, "the card's name 'other' is not its file's"),
                             ({"training": {}}, "card field training must be an object with")):
        path.write_text(json.dumps({**card, **change}))
        code, output = agscm("models")
        assert code == 1 and expected in one_error_line(output), change
    path.write_text(json.dumps({**card, "eps": 0.2}))  # matches the schema, not the file
    with pytest.raises(AgscmError, match="its card says eps 0.2"):
        GeneratorModel(GREY)


def test_the_default_card_decides_among_several_of_one_channel_count(
        shelf: Path, grey_model: Path, mnist_dir: Path, tmp_path: Path) -> None:
    mnist_pngs(tmp_path / "in", mnist_dir, 2)
    ship(shelf, "another-grey", grey_model)
    with pytest.raises(AgscmError, match="2 shipped 1-channel generators .* none marked default"):
        choose_for_folder(tmp_path / "in", tmp_path / "out")
    ship(shelf, "another-grey", grey_model, default=True)
    assert choose_for_folder(tmp_path / "in", tmp_path / "out").card.name == "another-grey"
    ship(shelf, GREY, grey_model, default=True)
    with pytest.raises(AgscmError, match="2 1-channel generators are marked default"):
        Shelf.open()


def test_an_empty_folder_or_no_generator_that_fits_writes_nothing(
        shelf: Path, tmp_path: Path, mnist_dir: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    code, output = agscm("perturb", tmp_path / "empty", tmp_path / "out")
    assert code == 1 and "no images under" in one_error_line(output)
    (shelf / f"{GREY}.onnx").unlink()
    (shelf / f"{GREY}.json").unlink()
    mnist_pngs(tmp_path / "digits", mnist_dir, 1)
    code, output = agscm("perturb", tmp_path / "digits", tmp_path / "out")
    assert code == 1 and one_error_line(output) == (
        f"error: no shipped 1-channel generator in {shelf} (shipped: {COLOUR}); pass --model")
    assert not (tmp_path / "out").exists()


def test_models_lists_the_shelf_and_prints_one_card(shelf: Path) -> None:
    for args in (["models"], ["info"]):
        code, output = agscm(*args)
        assert code == 0, output
        for name, eps in ((GREY, "0.3 linf"), (COLOUR, "0.03137 linf")):
            row = next(line for line in output.splitlines() if name in line)
            assert eps in row and "random" in row and "paper" in row and "MB" in row
    code, output = agscm("models", GREY)
    assert code == 0, output
    card = json.loads(output[:output.index("\nfile: ")])
    assert card == json.loads((shelf / f"{GREY}.json").read_text())
    assert f"file: {shelf / f'{GREY}.onnx'} (sha256 matches the card)" in output
    code, output = agscm("info", GREY)
    assert code == 0 and output.startswith(f"{shelf / GREY}.onnx (") and "eps" in output


def test_an_empty_shelf_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PRETRAINED_ENV, str(tmp_path))
    assert agscm("models") == (0, f"no shipped generators in {tmp_path}\n")
    monkeypatch.setenv(PRETRAINED_ENV, str(tmp_path / "missing"))
    assert "no such folder of shipped generators" in one_error_line(agscm("models")[1])


def test_web_builds_a_site_from_a_shipped_name(shelf: Path, tmp_path: Path) -> None:
    from web_helpers import ort_dist

    from agscm.web.site import MODEL_FILE

    ort_dist()  # skips (or fails in CI) where onnxruntime-web is not installed
    code, output = agscm("web", tmp_path / "site", "--model", COLOUR)
    assert code == 0, output
    assert (tmp_path / "site" / MODEL_FILE).read_bytes() == (shelf / f"{COLOUR}.onnx").read_bytes()


def test_models_and_perturb_run_where_torch_cannot_be_imported(
        shelf: Path, mnist_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is blocked')\n")
    env = {"PYTHONPATH": str(blocker.parent), PRETRAINED_ENV: str(shelf)}
    listed = run_agscm("models", env=env)
    assert listed.returncode == 0 and GREY in listed.stdout, listed.stderr
    mnist_pngs(tmp_path / "in", mnist_dir, 3)
    result = run_agscm("perturb", str(tmp_path / "in"), str(tmp_path / "out"), env=env)
    assert result.returncode == 0 and "3 ok" in result.stderr, result.stderr
    assert f"using shipped generator {GREY}" in result.stderr
