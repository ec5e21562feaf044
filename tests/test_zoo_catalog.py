"""The catalogued zoo: publishing weights-only copies, sha256 checks on load, one-line refusals,
and zoo training that resumes part by part to the bit-identical result of one run."""

from __future__ import annotations

import json
import shlex
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from agscm.cli import app
from agscm.digest import file_digest
from agscm.errors import AgscmError
from agscm.eval.publish import _epoch_precision, _training_command
from agscm.models.catalog import CATALOG_NAME, read_catalog, verify_catalog
from agscm.models.checkpoint import load_checkpoint
from agscm.models.registry import COMMITTED_ZOO, list_models, load_classifier
from agscm.train.zoo import ZooConfig, catalogued_model, train_classifier

pytestmark = pytest.mark.slow  # each test trains (a one-epoch MLP on 1,000 digits: seconds)


@pytest.fixture(scope="module")
def trained_mlp(tmp_path_factory, mnist_dir) -> Path:
    path = tmp_path_factory.mktemp("runs") / "mnist-mlp-natural.safetensors"
    return train_classifier(ZooConfig(data=str(mnist_dir), arch="mlp", epochs=1,
                                      train_limit=1000), path, test_limit=200)


@pytest.fixture
def catalogued(tmp_path, trained_mlp) -> Path:
    zoo = tmp_path / "zoo"
    result = CliRunner().invoke(app, ["zoo", "publish", str(trained_mlp), "--zoo", str(zoo),
                                      "--limit", "200", "--commit", "abc1234"])
    assert result.exit_code == 0, result.output
    assert "sha256" in result.output and "on 200 test images" in result.output
    return zoo


def test_publish_stores_half_precision_weights_measured_as_stored(catalogued, trained_mlp,
                                                                   mnist_dir) -> None:
    entry = read_catalog(catalogued)["mnist-mlp-natural"]
    path = catalogued / "mnist-mlp-natural.safetensors"
    assert entry["sha256"] == file_digest(path) and entry["size_bytes"] == path.stat().st_size
    tensors, meta = load_checkpoint(path)
    assert "optimizer" not in meta and not any(name.startswith("optim.") for name in tensors)
    assert all(t.dtype == torch.float16 for t in tensors.values() if t.is_floating_point())
    assert entry["training"]["commit"] == "abc1234"
    assert entry["training"]["precisions"] == ["fp32"]  # the CPU's default
    assert entry["training"]["command"] == (f"agscm zoo train {mnist_dir} --arch mlp --epochs 1 "
                                            "--train-limit 1000 --name mnist-mlp-natural "
                                            "--zoo runs/zoo")
    # the catalog's clean accuracy is what the committed (half-precision) bytes score
    from agscm.data import load_split
    from agscm.models.batches import accuracy
    model, _ = load_classifier("mnist-mlp-natural", catalogued)
    assert accuracy(model, load_split(mnist_dir, "test").subset(200)) == entry["test"]["clean_acc"]
    assert 0.5 < entry["test"]["clean_acc"] <= 1 and entry["test"]["attack_acc"] < 0.2
    assert entry["test"]["attack"].startswith("PGD-40, eps 0.3, step 0.01")
    rows = list_models(catalogued)
    assert rows[0]["status"] == "catalogued" and rows[0]["sha256"] == entry["sha256"]
    listed = CliRunner().invoke(app, ["zoo", "list", "--zoo", str(catalogued)],
                                env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and entry["sha256"][:12] in listed.output


def test_epochs_from_before_precision_was_recorded_ran_in_their_devices_default() -> None:
    rows = [{"device": "cuda"}, {"device": "cpu"}, {"device": "cpu", "precision": "bf16"}]
    assert [_epoch_precision(row) for row in rows] == ["bf16", "fp32", "bf16"]


def test_the_catalogs_command_names_a_precision_only_where_it_is_not_the_devices_default() -> None:
    train = {"data": "mnist", "kind": "natural", "arch": "mlp"}
    base = "agscm zoo train mnist --arch mlp --name m --zoo runs/zoo"
    cpu_bf16 = [{"device": "cpu", "precision": "bf16"}] * 2
    assert _training_command(train, "m", cpu_bf16) == base + " --precision bf16"
    assert _training_command(train, "m", [{"device": "cpu"}, {"device": "cuda"}]) == base
    mixed = [{"device": "cpu", "precision": "fp32"}, {"device": "cpu", "precision": "bf16"}]
    assert _training_command(train, "m", mixed) == base  # no one line trains it; precisions says


@pytest.mark.parametrize("changes", [
    {"kind": "adv", "adv_steps": 2, "epochs": 15, "optimizer": "sgd", "lr": 0.2},  # cifar10-adv
    {"kind": "secret", "adv_method": "fgsm-rs", "eps": 0.1},
    {"kind": "adv", "seed": 5, "eps_warmup_epochs": 2},
    {"kind": "natural", "arch": "resnet9", "width": 40, "augment": "shift-flip"},
    {"kind": "adv", "adv_steps": 3, "adv_step_size": 0.01},
    {"kind": "secret", "adv_method": "fgsm-rs", "adv_step_size": 1 / 255},
], ids=["pgd-2", "fgsm-rs", "pgd-7-other-seed", "natural", "pgd-own-step", "fgsm-rs-own-step"])
def test_the_catalogs_command_trains_the_catalogued_config(monkeypatch, changes) -> None:
    """Run the command through the CLI (training captured): it must build the very config the
    checkpoint recorded. A flag left out because it matched the model's own value instead of
    the command line's default (PGD-2 written without --adv-steps 2) would train another model."""
    from agscm.train import zoo as zoo_module

    data = "../shared/data/cifar10-jpeg.tar.gz"
    recorded = zoo_module._resolved(ZooConfig(data, **changes), channels=3)
    captured: list[ZooConfig] = []
    monkeypatch.setattr(zoo_module, "train_classifier",
                        lambda config, path, **_: captured.append(config) or path)
    command = zoo_module.train_command(asdict(recorded), "m")
    result = CliRunner().invoke(app, shlex.split(command)[1:])
    assert result.exit_code == 0, result.output
    assert zoo_module._resolved(captured[0], channels=3) == recorded, command


def test_tampered_missing_and_stray_files_are_refused_in_one_line(catalogued, trained_mlp) -> None:
    runner = CliRunner()
    path = catalogued / "mnist-mlp-natural.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # one flipped byte inside the weights
    path.write_bytes(bytes(data))
    with pytest.raises(AgscmError, match=r"mnist-mlp-natural.safetensors: sha256 .* does not "
                                         "match the catalog"):
        load_classifier("mnist-mlp-natural", catalogued)
    with pytest.raises(AgscmError, match="does not match the catalog"):
        load_classifier(path)  # by path too: the folder is catalogued
    for args in (["zoo", "list", "--zoo", str(catalogued)],
                 ["zoo", "show", "mnist-mlp-natural", "--zoo", str(catalogued)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and "does not match the catalog" in result.output
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    path.unlink()
    result = runner.invoke(app, ["zoo", "show", "mnist-mlp-natural", "--zoo", str(catalogued)])
    assert result.exit_code == 1 and "listed in catalog.json" in result.output
    assert "the file is missing" in result.output
    shutil.copyfile(trained_mlp, path)  # bytes that are not the catalogued ones
    (catalogued / "stray.safetensors").write_bytes(b"x")
    with pytest.raises(AgscmError, match="does not match"):
        verify_catalog(catalogued)
    unknown = runner.invoke(app, ["zoo", "show", "nope", "--zoo", str(catalogued)])
    assert unknown.exit_code == 1 and "no model 'nope' in the catalog" in unknown.output


def test_a_file_without_an_entry_and_a_broken_catalog_are_refused(catalogued) -> None:
    (catalogued / "stray.safetensors").write_bytes(b"x")
    with pytest.raises(AgscmError, match="stray.safetensors: a weight file without an entry"):
        verify_catalog(catalogued)
    (catalogued / CATALOG_NAME).write_text("{not json")
    result = CliRunner().invoke(app, ["zoo", "list", "--zoo", str(catalogued)])
    assert result.exit_code == 1 and "not a readable zoo catalog" in result.output


def test_publish_refuses_to_replace_silently_and_training_into_the_catalog(
        catalogued, trained_mlp, mnist_dir) -> None:
    runner = CliRunner()
    again = runner.invoke(app, ["zoo", "publish", str(trained_mlp), "--zoo", str(catalogued),
                                "--limit", "100"])
    assert again.exit_code == 1 and "--replace-reason" in again.output
    before = (catalogued / CATALOG_NAME).read_bytes()
    train = runner.invoke(app, ["zoo", "train", str(mnist_dir), "--arch", "mlp", "--zoo",
                                str(catalogued), "--train-limit", "100", "--epochs", "1"])
    assert train.exit_code == 1 and "is a catalogued zoo" in train.output
    assert (catalogued / CATALOG_NAME).read_bytes() == before
    assert sorted(p.name for p in catalogued.iterdir()) == [CATALOG_NAME,
                                                            "mnist-mlp-natural.safetensors"]


def test_a_reproduction_measures_a_catalogued_zoo_as_it_is_and_only_the_specs_models(
        catalogued, mnist_dir, tmp_path, monkeypatch) -> None:
    """`agscm reproduce --zoo zoo` trains nothing into the committed zoo: each model the spec
    names must be there, trained as the spec says, or the run stops in one line."""
    from agscm.eval import reproduce as reproduce_module
    from agscm.eval.datasets import MNIST, ZooEntry
    from agscm.eval.plan import Budget, Plan

    monkeypatch.setattr(reproduce_module, "train_classifier", lambda *args: pytest.fail(
        "trained a model of a catalogued zoo"))
    mlp = ZooConfig(data="elsewhere/mnist", arch="mlp", epochs=1, train_limit=1000)
    spec = replace(MNIST, zoo=(ZooEntry("mlp-natural", mlp),))
    plan = Plan(spec, Budget(data=str(mnist_dir), zoo_dir=str(catalogued)))
    path = catalogued / "mnist-mlp-natural.safetensors"
    assert reproduce_module._zoo(plan, tmp_path) == [path]  # another data path is no change
    with pytest.raises(AgscmError, match=r"mnist-mlp-natural.safetensors: catalogued "
                                         r"mnist-mlp-natural was trained otherwise: epochs 1 "
                                         r"\(wanted 2\), seed 0 \(wanted 4\);"):
        catalogued_model(catalogued, "mnist-mlp-natural", replace(mlp, epochs=2, seed=4), 1)
    with pytest.raises(AgscmError, match="no model 'mnist-natural' in the catalog .*; train "
                                         "it with: agscm zoo train .*mnist --name mnist-natural"):
        reproduce_module._zoo(Plan(MNIST, plan.budget), tmp_path)


def test_zoo_training_in_parts_ends_as_one_run_bit_for_bit(mnist_dir, tmp_path) -> None:
    config = ZooConfig(data=str(mnist_dir), arch="mlp", epochs=3, train_limit=600,
                       augment="noise")
    whole = train_classifier(config, tmp_path / "whole.safetensors", test_limit=100)
    parts = tmp_path / "parts.safetensors"
    train_classifier(config, parts, test_limit=100, stop_after_epoch=1)
    assert load_checkpoint(parts)[1]["epoch"] == 1
    moved = tmp_path / "elsewhere" / "parts.safetensors"  # carried to another machine
    moved.parent.mkdir()
    shutil.move(parts, moved)
    train_classifier(config, moved, test_limit=100, stop_after_epoch=2)
    train_classifier(config, moved, test_limit=100)
    expected, expected_meta = load_checkpoint(whole)
    got, got_meta = load_checkpoint(moved)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[name], got[name]) for name in expected)  # optimizer too
    assert [r["loss"] for r in got_meta["history"]] == [r["loss"] for r in expected_meta["history"]]


def test_the_committed_zoo_matches_its_catalog() -> None:
    """Every committed weight file is the catalogued one, and none is left without an entry."""
    if not (COMMITTED_ZOO / CATALOG_NAME).is_file():
        pytest.skip("no committed zoo in this checkout")
    models = verify_catalog(COMMITTED_ZOO)
    for name, entry in models.items():
        assert entry["test"]["images"] == 10_000, name  # committed numbers: whole test set
        assert json.dumps(entry)  # plain JSON


@pytest.mark.parametrize("spec_name", ["mnist", "cifar10"])
def test_the_committed_zoo_holds_every_model_a_reproduction_names(spec_name) -> None:
    """`agscm reproduce <spec> --zoo zoo` runs on a fresh clone: each model of the spec is
    committed, intact and trained as the spec says."""
    from agscm.eval.datasets import SPECS
    from agscm.eval.plan import Budget, Plan

    if not (COMMITTED_ZOO / CATALOG_NAME).is_file():
        pytest.skip("no committed zoo in this checkout")
    plan = Plan(SPECS[spec_name], Budget(zoo_dir=str(COMMITTED_ZOO)))
    configs = plan.zoo_configs()
    assert len(configs) >= 6
    for name, config in configs.items():
        assert catalogued_model(COMMITTED_ZOO, name, config, plan.spec.channels).is_file()


def test_early_stopped_pgd_is_never_weaker_than_plain_pgd(trained_mlp, mnist_dir) -> None:
    from agscm.attacks.pgd import PGD
    from agscm.data import load_split
    from agscm.eval.robustness import attacked_accuracy, pgd_accuracy

    model, _ = load_classifier(trained_mlp)
    test = load_split(mnist_dir, "test").subset(300)
    early = {}
    for steps in (0, 2, 6):
        attack = PGD(model, eps=0.1, alpha=0.02, steps=steps)
        early[steps] = pgd_accuracy(model, test, attack, "cpu")
        plain = attacked_accuracy(model, test, attack, "cpu")
        assert early[steps] <= plain, steps
        if steps == 0:  # the random start alone: the same images, the same verdict
            assert early[steps] == plain
    assert early[6] < early[2] < early[0]


def test_a_second_run_into_the_same_checkpoint_is_refused(mnist_dir, tiny_zoo, tmp_path) -> None:
    from agscm.locks import exclusive
    from agscm.train.trainer import SourceSpec, TrainConfig, train_generator

    path = tmp_path / "busy.safetensors"
    with exclusive(path, "training"):  # as a first run holds it
        with pytest.raises(AgscmError, match="another agscm process is training it"):
            train_classifier(ZooConfig(data=str(mnist_dir), arch="mlp", epochs=1,
                                       train_limit=100), path, test_limit=50)
        with pytest.raises(AgscmError, match="another agscm process is training it"):
            # (a valid source: every other check of the run comes before the lock)
            train_generator(TrainConfig(data=str(mnist_dir), out=str(path), epochs=1,
                                        sources=[SourceSpec("tiny-natural")], train_limit=64,
                                        val_limit=32, zoo_dir=str(tiny_zoo)))
    assert not path.exists()
    train_classifier(ZooConfig(data=str(mnist_dir), arch="mlp", epochs=1, train_limit=100), path,
                     test_limit=50)  # free again once the first run ends
    assert load_checkpoint(path)[1]["epoch"] == 1
