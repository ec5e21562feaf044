"""`agscm attack` end to end on a tiny zoo checkpoint: arrays, PNG folders, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from agscm.cli import app
from agscm.data import ImageSet, load_split
from agscm.errors import AgscmError
from agscm.eval.methods import check_fits
from agscm.train.zoo import ZooConfig, train_classifier

runner = CliRunner()


@pytest.fixture(scope="module")
def trained_source(mnist_dir, tmp_path_factory):
    """A MadryCNN trained for one epoch on 2,000 MNIST digits (a few seconds)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a busy 2-core box one thread beats two that stall each other
    try:
        path = tmp_path_factory.mktemp("zoo") / "m.safetensors"
        yield train_classifier(ZooConfig(data=str(mnist_dir), kind="natural", epochs=1,
                                         train_limit=2000), path, test_limit=500)
    finally:
        torch.set_num_threads(threads)


def run(*args: str):
    return runner.invoke(app, ["attack", *args])


def test_writes_npz_and_summary(trained_source, mnist_dir, tmp_path) -> None:
    out = tmp_path / "fgsm.npz"
    result = run("fgsm", "--source", str(trained_source), "--data", str(mnist_dir), "--limit", "40",
                 "--out", str(out))
    assert result.exit_code == 0, result.output
    arrays = np.load(out)
    clean = load_split(mnist_dir, "test").subset(40)
    assert arrays["adversarial"].dtype == np.float32
    assert arrays["adversarial"].shape == (40, 1, 28, 28)
    np.testing.assert_array_equal(arrays["labels"], clean.labels)
    assert np.abs(arrays["adversarial"] - clean.as_float()).max() <= 0.3 + 1e-6
    summary = json.loads((tmp_path / "fgsm.summary.json").read_text())
    assert summary["method"] == "fgsm" and summary["images"] == 40
    assert summary["settings"] == {"eps": 0.3, "norm": "linf"}
    assert summary["clean_accuracy"] > 0.8
    assert summary["adversarial_accuracy"] < summary["clean_accuracy"] - 0.3
    assert summary["mean_linf"] == pytest.approx(0.3, abs=1e-6)
    assert summary["images_per_second"] > 0
    assert not list(tmp_path.glob(".*.tmp"))


def test_writes_png_folder(trained_source, mnist_dir, tmp_path) -> None:
    out = tmp_path / "pgd"
    result = run("pgd", "--source", str(trained_source), "--data", str(mnist_dir), "--limit", "12",
                 "--steps", "3", "--eps", "0.2", "--out", str(out))
    assert result.exit_code == 0, result.output
    clean = load_split(mnist_dir, "test").subset(12)
    pngs = sorted(out.glob("*/*.png"))
    assert len(pngs) == 12
    for index, label in enumerate(clean.labels):
        pixels = np.asarray(Image.open(out / clean.classes[label] / f"{index:02d}.png"))
        assert pixels.shape == (28, 28)
        step = np.abs(pixels.astype(int) - clean.images[index, 0].astype(int))
        assert 0 < step.max() <= int(0.2 * 255)  # rounding to 8 bits kept the bound
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["steps"] == 3
    assert summary["settings"]["alpha"] == pytest.approx(40 * 0.01 / 0.3 * 0.2 / 3)


@pytest.mark.parametrize("args, message", [
    (["cw"], "unknown attack 'cw'; choose one of fgsm, pgd, mifgsm, ata"),
    (["pgd", "--eps", "1.5"], "eps above 1"),
    (["fgsm", "--steps", "3"], "fgsm takes no steps"),
])
def test_bad_arguments_are_one_line_errors(trained_source, mnist_dir, tmp_path, args, message) -> None:
    result = run(*args, "--source", str(trained_source), "--data", str(mnist_dir), "--limit", "4",
                 "--out", str(tmp_path / "x.npz"))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "x.npz").exists()


def test_missing_source_is_one_line_error(mnist_dir, tmp_path) -> None:
    result = run("pgd", "--source", str(tmp_path / "nope.safetensors"), "--data", str(mnist_dir))
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path / 'nope.safetensors'}: checkpoint not found\n"


def test_channel_mismatch_is_reported(mnist_dir) -> None:
    grey = load_split(mnist_dir, "test").subset(4)
    colour = ImageSet(np.repeat(grey.images, 3, axis=1), grey.labels, grey.classes, "colour")
    meta = {"name": "m", "model": {"channels": 1, "image_size": [28, 28]}}
    check_fits(grey, meta)
    with pytest.raises(AgscmError, match="images are 3x28x28 but model m expects 1x28x28"):
        check_fits(colour, meta)
