"""`agscm evaluate`, `agscm sweep` and `agscm reproduce mnist --quick` through the CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from cache_helpers import forbid_recomputing
from PIL import Image
from typer.testing import CliRunner

from agscm.attacks.mifgsm import MIFGSM
from agscm.cli import app
from agscm.models.checkpoint import read_meta
from agscm.models.generator_checkpoint import load_generator

runner = CliRunner()


@pytest.fixture
def colour_folder(tmp_path):
    """An image folder of 3-channel 28x28 PNGs: data the MNIST models cannot read."""
    root = tmp_path / "colour"
    pixels = np.random.default_rng(0).integers(0, 256, (28, 28, 3), dtype=np.uint8)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for index in range(20):
            Image.fromarray(pixels).save(root / label / f"{index}.png")
    return root


def interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def test_evaluate_writes_markdown_csv_and_json(tiny_zoo, mnist_dir, tmp_path,
                                               monkeypatch) -> None:
    out = tmp_path / "out"
    args = ["evaluate", "--data", str(mnist_dir), "--zoo", str(tiny_zoo), "--source",
            "tiny-natural", "--method", "fgsm", "--method", "mifgsm:steps=3", "--limit", "60",
            "--cache", str(tmp_path / "cache"), "--out", str(out)]
    with monkeypatch.context() as patch:  # stopped while crafting the second set
        patch.setattr(MIFGSM, "forward", interrupt)
        stopped = runner.invoke(app, args)
    assert stopped.exit_code != 0
    so_far = json.loads((out / "transfer.json").read_text())
    partial_rows = (out / "transfer.csv").read_text().splitlines()
    assert partial_rows[0].endswith(",table_complete") and partial_rows[1].endswith(",False")
    assert (so_far["complete"], so_far["planned_sets"], len(so_far["cells"])) == (False, 2, 1)
    assert ("Partial table: 1 of 2 sets scored so far.** The same command goes on from here"
            in (out / "transfer.md").read_text())
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Partial" not in (out / "transfer.md").read_text()
    assert "| tiny-natural | mifgsm:steps=3 |" in result.stdout
    markdown = (out / "transfer.md").read_text()
    for method in ("fgsm", "mifgsm:steps=3"):  # accuracy, success, collapse and size tables
        assert markdown.count(f"\n| tiny-natural | {method} |") == 4
    rows = (out / "transfer.csv").read_text().splitlines()
    assert rows[0].startswith("source,method,target,white_box,accuracy,success_rate")
    assert len(rows) == 3 and all(row.endswith(",True") for row in rows[1:])
    payload = json.loads((out / "transfer.json").read_text())
    assert payload["command"].startswith("agscm evaluate --data ")
    assert payload["config"]["limit"] == 60 and len(payload["cells"]) == 2
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


@pytest.mark.parametrize("args, message", [
    (["--target", "nope"], "no model 'nope' in"),
    (["--eps", "1.5"], "eps must be in (0, 1] for [0,1] pixels, got 1.5"),
    (["--method", "cw"], "unknown method 'cw'"),
    (["--generator", "tiny-natural"], "bad generator 'tiny-natural'; expected SOURCE=PATH"),
])
def test_evaluate_bad_inputs_are_one_line_errors(tiny_zoo, mnist_dir, tmp_path, args,
                                                 message) -> None:
    result = runner.invoke(app, ["evaluate", "--data", str(mnist_dir), "--zoo", str(tiny_zoo),
                                 "--source", "tiny-natural", "--limit", "20", "--out",
                                 str(tmp_path / "out"), *args])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_evaluate_channel_mismatch_is_one_line_error(tiny_zoo, colour_folder, tmp_path) -> None:
    result = runner.invoke(app, ["evaluate", "--data", str(colour_folder), "--zoo",
                                 str(tiny_zoo), "--source", "tiny-natural", "--out",
                                 str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert "images are 3x28x28 but model tiny-natural expects 1x28x28" in result.stderr


def test_sweep_writes_table_and_plot_and_resumes(tiny_zoo, mnist_dir, tmp_path,
                                                 monkeypatch) -> None:
    out = tmp_path / "sweep"
    args = ["sweep", "--data", str(mnist_dir), "--zoo", str(tiny_zoo), "--source",
            "tiny-natural", "--target", "tiny-natural", "--lambdas", "0,1", "--epochs", "1",
            "--train-limit", "128", "--val-limit", "32", "--width", "4", "--residual-blocks",
            "1", "--limit", "80", "--out", str(out), "--cache", str(tmp_path / "cache"),
            "--precision", "bf16"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    table = (out / "sweep.md").read_text()
    assert "| lambda | success on tiny-natural |" in table and "\n| 1 | " in table
    with Image.open(out / "sweep.png") as image:
        assert image.format == "PNG" and image.size[0] > 300
        assert len(set(np.asarray(image.convert("L")).ravel())) > 10  # lines and text drawn
    rows = json.loads((out / "sweep.json").read_text())["rows"]
    assert [row["lambda_gradcam"] for row in rows] == [0.0, 1.0]
    assert all(0 <= row["success_rate"] <= 1 for row in rows)
    checkpoints = sorted(out.glob("lambda-*.safetensors"))
    assert [p.name for p in checkpoints] == ["lambda-0.safetensors", "lambda-1.safetensors"]
    assert [row["precision"] for p in checkpoints for row in read_meta(p)["history"]] == [
        "bf16", "bf16"]
    stamps = [os.stat(p).st_mtime_ns for p in checkpoints]
    damaged = sorted((tmp_path / "cache" / "records").glob("sweep-*.npz"))[0]
    damaged.write_bytes(b"not a record")

    forbid_recomputing(monkeypatch)
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert [os.stat(p).st_mtime_ns for p in checkpoints] == stamps  # resumed, not retrained
    assert f"warning: {damaged}: a set's record, damaged" in again.stderr.replace("\n", "")
    payload = json.loads((out / "sweep.json").read_text())
    assert payload["rows"] == rows and "--cache" in payload["command"]
    assert "--precision bf16" in payload["command"]


def test_reproduce_refuses_an_unknown_precision_before_any_stage(tmp_path) -> None:
    result = runner.invoke(app, ["reproduce", "mnist", "--quick", "--work", str(tmp_path),
                                 "--precision", "fp16"])
    assert result.exit_code == 1 and "unknown precision 'fp16'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not list(tmp_path.iterdir())


def test_sweep_bad_lambdas(tiny_zoo, mnist_dir, tmp_path) -> None:
    result = runner.invoke(app, ["sweep", "--data", str(mnist_dir), "--zoo", str(tiny_zoo),
                                 "--source", "tiny-natural", "--target", "tiny-natural",
                                 "--lambdas", "0,x", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "bad lambda list '0,x'" in result.stderr


@pytest.mark.slow
def test_reproduce_mnist_quick_end_to_end(mnist_dir, tmp_path) -> None:
    result = runner.invoke(app, ["reproduce", "mnist", "--quick", "--data", str(mnist_dir),
                                 "--work", str(tmp_path)])
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "mnist.md").read_text()
    payload = json.loads((tmp_path / "mnist.json").read_text())
    assert "Command: `agscm reproduce mnist --quick --work" in markdown
    assert "The paper's mnist table" in markdown and "| natural | AEG-GC | 15.00% |" in markdown
    methods = ["aeg-gc", "aeg-gc-transfer", "pgd:steps=2", "mifgsm:steps=2", "ata:steps=2",
               "fgsm", "noise"]
    assert payload["transfer"]["methods"] == methods  # --quick shortens every iterative attack
    sources = ["quick-natural", "quick-adv", "quick-natural+quick-adv"]
    assert payload["transfer"]["sources"] == sources
    targets = payload["transfer"]["targets"]
    assert targets == ["quick-natural", "quick-adv", "quick-secret", "quick-mlp-natural",
                       "quick-resnet-natural", "quick-vgg-natural", "quick-resnet-adv"]
    cells = payload["transfer"]["cells"]
    assert len(cells) == len(sources) * len(methods) * len(targets)
    assert len((tmp_path / "mnist.csv").read_text().splitlines()) == 1 + len(cells)
    so_far = json.loads((tmp_path / "table" / "transfer.json").read_text())  # kept as it grew
    assert so_far["complete"] and so_far["cells"] == cells
    black_box = [c for c in cells if c["method"] == "aeg-gc-transfer" and not c["white_box"]]
    assert len(black_box) == 6 + 6 + 5  # the ensemble's two members are white-box for it
    wins = sum(all(c["accuracy"] < o["accuracy"] for o in cells
                   if (o["source"], o["target"]) == (c["source"], c["target"])
                   and not o["method"].startswith("aeg-gc")) for c in black_box)
    assert (f"AEG-GC (transfer recipe) has the lowest accuracy of all methods in **{wins} of "
            f"{len(black_box)} black-box cells**") in markdown
    assert len(payload["bars"]) == 5 and all(line.startswith(("met: ", "NOT met: "))
                                             for line in payload["bars"])
    assert "| quick-natural | aeg-gc | _" in markdown and "(15.00%)" in markdown  # the paper's number
    with Image.open(tmp_path / "mnist-sweep.png") as image:
        assert image.format == "PNG"
    assert [row["lambda_gradcam"] for row in payload["sweep"]["rows"]] == [0.0, 0.5]


@pytest.mark.slow
def test_reproduce_cifar10_quick_runs_every_stage(data_root, tmp_path) -> None:
    result = runner.invoke(app, ["reproduce", "cifar10", "--quick", "--data",
                                 str(data_root / "cifar10-jpeg.tar.gz"), "--work", str(tmp_path),
                                 "--precision", "bf16"])
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "cifar10.json").read_text())
    assert payload["transfer"]["sources"] == ["quick-natural", "quick-adv", "quick-secret",
                                              "quick-natural+quick-adv"]
    assert {"pgd:steps=2", "aeg-gc", "aeg-gc-transfer", "noise"} <= set(payload["transfer"]["methods"])
    assert payload["transfer"]["eps"] == pytest.approx(8 / 255)
    assert (tmp_path / "cifar10-sweep.png").is_file() and (tmp_path / "cifar10.csv").is_file()
    _, meta, _ = load_generator(tmp_path / "generators" / "quick-natural-transfer.safetensors")
    assert (meta["generator"]["downsamplings"], meta["generator"]["smooth_sigma"]) == (0, 0.0)
    trained = [*(tmp_path / "generators").glob("*.safetensors"),
               *(tmp_path / "sweep").glob("*.safetensors")]
    assert len(trained) == 10 and {row["precision"] for path in trained
                                   for row in read_meta(path)["history"]} == {"bf16"}
    stages = {stage["stage"]: stage for stage in payload["stages"]}
    assert list(stages) == ["zoo", "lambda sweep", "generators", "transfer table"]
    assert [len(stage["items"]) for stage in stages.values()] == [
        6, 2, 8, len(payload["transfer"]["sets"])]
    trained = [item for name in ("zoo", "lambda sweep", "generators")
               for item in stages[name]["items"]]
    assert all(item["epochs"] == 1 and item["seconds"] > 0 and item["devices"] == ["cpu"]
               for item in trained)
    assert stages["transfer table"]["scoring_seconds"] > 0
    assert "## What each stage cost" in (tmp_path / "cifar10.md").read_text()
