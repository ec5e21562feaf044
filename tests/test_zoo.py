"""Zoo models, checkpoints and the registry; one real (tiny) training run on MNIST."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from agscm.attacks.pgd import PGD
from agscm.cli import app
from agscm.data import load_split
from agscm.errors import AgscmError
from agscm.models.batches import accuracy
from agscm.models.checkpoint import load_checkpoint, read_meta, save_checkpoint
from agscm.models.classifiers import ARCHITECTURES, ClassifierConfig, build_classifier
from agscm.models.registry import list_models, load_classifier, resolve_model_path
from agscm.train.zoo import ZooConfig, train_classifier


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_speaks_unit_pixels(arch: str) -> None:
    channels = 1 if arch == "madry-cnn" else 3
    config = ClassifierConfig(arch=arch, channels=channels, image_size=(28, 28) if channels == 1
                              else (32, 32), mean=[0.5] * channels, std=[0.25] * channels)
    model = build_classifier(config)
    x = torch.rand(3, channels, *config.image_size)
    assert model(x).shape == (3, 10)
    # normalisation lives inside: (x - mean) / std happens in the model's first module
    assert torch.allclose(model.normalize(x), (x - 0.5) / 0.25)


def test_tiny_training_reaches_real_accuracy(tiny_zoo, mnist_dir) -> None:
    model, meta = load_classifier("tiny-natural", tiny_zoo)
    test = load_split(mnist_dir, "test").subset(1000)
    assert accuracy(model, test) >= 0.90
    assert meta["epoch"] == 2 and meta["history"][-1]["test_acc"] >= 0.90
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_checkpoint_round_trip_keeps_weights_and_config(tiny_zoo, tmp_path) -> None:
    tensors, meta = load_checkpoint(tiny_zoo / "tiny-natural.safetensors")
    copy = tmp_path / "copy.safetensors"
    save_checkpoint(copy, tensors, meta)
    again, meta_again = load_checkpoint(copy)
    assert meta_again == meta and meta["model"]["arch"] == "madry-cnn"
    assert all(torch.equal(tensors[name], again[name]) for name in tensors)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temp file


def test_registry_resolves_names_and_paths(tiny_zoo) -> None:
    path = tiny_zoo / "tiny-natural.safetensors"
    assert resolve_model_path("tiny-natural", tiny_zoo) == path
    assert resolve_model_path(path) == path
    with pytest.raises(AgscmError, match="known: tiny-natural"):
        resolve_model_path("nope", tiny_zoo)
    rows = list_models(tiny_zoo)
    assert rows[0]["name"] == "tiny-natural" and rows[0]["status"] == "done"


def _untrained_zoo_model(zoo, name: str, kind: str, data: str, epochs_done: int) -> None:
    """A checkpoint as `agscm zoo train` writes it, with untrained weights (no training)."""
    config = ClassifierConfig()
    tensors = {f"model.{k}": v for k, v in build_classifier(config).state_dict().items()}
    save_checkpoint(zoo / f"{name}.safetensors", tensors, {
        "kind": "classifier", "name": name, "model": asdict(config),
        "train": asdict(ZooConfig(data=data, kind=kind, epochs=12)), "classes": list("0123456789"),
        "epoch": epochs_done, "history": [{"test_acc": 0.9876}] * epochs_done})


@pytest.mark.parametrize("width, shown, dropped", [
    (80, ["98.76%", "3/12", "partial"], ["/a/long"]),  # data would not fit: it goes
    (50, ["natural", "secret"], ["98.76%", "madry-cnn"]),
    (200, ["98.76%", "madry-cnn", "/a/long/path/to/the/shared/data/mnist"], []),
])
def test_zoo_list_prints_whole_names_in_a_narrow_terminal(tmp_path, width: int, shown: list[str],
                                                          dropped: list[str]) -> None:
    names = ["mnist-sample-natural", "cifar10-jpeg-secret-seed-7", "mnist-adv"]
    for name, kind in zip(names, ("natural", "secret", "adv"), strict=True):
        _untrained_zoo_model(tmp_path, name, kind, "/a/long/path/to/the/shared/data/mnist", 12)
    _untrained_zoo_model(tmp_path, "partial-one", "natural", "mnist-sample", 3)
    result = CliRunner().invoke(app, ["zoo", "list", "--zoo", str(tmp_path)],
                                env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= width
    for name in [*names, "partial-one"]:
        assert any(f"│ {name} " in line for line in lines), (name, result.output)
    assert all(text in result.output for text in shown)
    assert not any(text in result.output for text in dropped)
    assert "…" not in result.output


def test_zoo_list_of_an_empty_folder_says_how_to_fill_it(tmp_path) -> None:
    result = CliRunner().invoke(app, ["zoo", "list", "--zoo", str(tmp_path)])
    assert result.exit_code == 0
    assert f"no models in {tmp_path}; make one with: agscm zoo train DATA --zoo {tmp_path}" in (
        " ".join(result.output.split()))


def test_a_missing_model_names_the_command_that_makes_it(tmp_path) -> None:
    with pytest.raises(AgscmError, match=r"no model 'mnist-adv' in .* \(known: none\); make it "
                                         r"with: agscm zoo train DATA --kind adv --name mnist-adv"):
        resolve_model_path("mnist-adv", tmp_path)


def test_corrupt_and_foreign_checkpoints_are_one_line_errors(tmp_path) -> None:
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"garbage that is not safetensors")
    with pytest.raises(AgscmError, match="not a readable agscm checkpoint"):
        load_classifier(corrupt)
    with pytest.raises(AgscmError, match="checkpoint not found"):
        load_classifier(tmp_path / "missing.safetensors")


@pytest.mark.slow
def test_adversarial_training_resumes_and_hardens(mnist_dir, tmp_path) -> None:
    config = ZooConfig(data=str(mnist_dir), kind="adv", epochs=1, train_limit=1500)
    path = train_classifier(config, tmp_path / "adv.safetensors", test_limit=300)
    _, meta = load_classifier(path)
    assert meta["train"]["eps"] == pytest.approx(0.3) and meta["train"]["seed"] == 1
    # resuming to two epochs continues from epoch 1 instead of starting over
    train_classifier(ZooConfig(**{**config.__dict__, "epochs": 2}), path, test_limit=300)
    model, meta = load_classifier(path)
    assert [row["epoch"] for row in meta["history"]] == [1, 2]
    assert all(0 <= row["pgd10_acc"] <= 1 for row in meta["history"])
    with pytest.raises(AgscmError, match="different config"):
        train_classifier(ZooConfig(**{**config.__dict__, "lr": 0.5}), path, test_limit=300)
    test = load_split(mnist_dir, "test").subset(200)
    images = torch.from_numpy(test.as_float())
    labels = torch.from_numpy(test.labels)
    adversarial = PGD(model, eps=0.3, alpha=0.05, steps=5)(images, labels)
    assert (model(adversarial).argmax(1) == labels).float().mean() > 0.05


@pytest.mark.slow
def test_cli_zoo_train_list_and_errors(mnist_dir, tmp_path) -> None:
    runner = CliRunner()
    zoo = str(tmp_path / "zoo")
    result = runner.invoke(app, ["zoo", "train", str(mnist_dir), "--zoo", zoo, "--epochs", "1",
                                 "--train-limit", "500", "--test-limit", "300"])
    assert result.exit_code == 0, result.output
    checked = read_meta(Path(zoo) / "mnist-natural.safetensors")["history"][-1]["test_acc"]
    assert checked * 300 == pytest.approx(round(checked * 300), abs=1e-9)  # k of 300 images
    for option, value in (("--test-limit", "0"), ("--train-limit", "-5")):
        refused = runner.invoke(app, ["zoo", "train", str(mnist_dir), "--zoo", zoo, "--name",
                                      "other", option, value])
        assert refused.exit_code == 1 and "limit must be >= 1" in refused.output, option
    assert not (Path(zoo) / "other.safetensors").exists()
    listed = runner.invoke(app, ["zoo", "list", "--zoo", zoo], env={"COLUMNS": "250"})
    assert "mnist-natural" in listed.output and "done" in listed.output
    bad = runner.invoke(app, ["zoo", "train", str(mnist_dir), "--zoo", zoo, "--kind", "weird"])
    assert bad.exit_code == 1 and "unknown zoo kind 'weird'" in bad.output
    missing = runner.invoke(app, ["zoo", "train", str(tmp_path / "nodata"), "--zoo", zoo])
    assert missing.exit_code == 1 and "data set not found" in missing.output
    assert "Traceback" not in bad.output + missing.output


def test_bfloat16_training_on_cpu_learns_and_each_epoch_says_its_precision(mnist_dir,
                                                                         tmp_path) -> None:
    config = ZooConfig(data=str(mnist_dir), epochs=2, train_limit=1500, batch_size=64)
    path = tmp_path / "mixed.safetensors"
    train_classifier(config, path, test_limit=500, stop_after_epoch=1, precision="bf16")
    train_classifier(config, path, test_limit=500)  # the second part: the CPU's default
    model, meta = load_classifier(path)
    assert [row["precision"] for row in meta["history"]] == ["bf16", "fp32"]
    assert meta["history"][0]["test_acc"] >= 0.75  # bf16 steps learn: weights stay float32
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert accuracy(model, load_split(mnist_dir, "test").subset(500)) >= 0.85
    with pytest.raises(AgscmError, match="unknown precision 'fp8'"):
        train_classifier(config, tmp_path / "other.safetensors", precision="fp8")
    assert not (tmp_path / "other.safetensors").exists()
