"""Transfer tables on real MNIST: table shape and bold, white-box PGD, the crafted-set cache,
AEG-GC from a checkpoint or its ONNX export, ensembles as sources, collapse, the generated
standings, and the checks that fail before any crafting."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from cache_helpers import forbid_recomputing

from agscm.attacks import craft as craft_module
from agscm.attacks.craft import CraftResult, CraftState, CraftStore
from agscm.attacks.pgd import PGD as PGDAttack
from agscm.data import load_split
from agscm.errors import AgscmError
from agscm.eval.cache import CraftCache, HashedImages, PartialSet, Scorer, set_key
from agscm.eval.datasets import MNIST
from agscm.eval.methods import MethodSpec, parse_method
from agscm.eval.reading import standings
from agscm.eval.report import cell_grid, transfer_markdown, write_transfer
from agscm.eval.scoring import predict
from agscm.eval.transfer import EvalConfig, TransferResult, collapse, evaluate
from agscm.models.registry import load_classifier
from agscm.train.trainer import SourceSpec, TrainConfig, train_generator
from agscm.train.zoo import ZooConfig, train_classifier

ENSEMBLE = "tiny-natural+tiny-adv"
PGD = "pgd:steps=10"  # alpha 0.04: ten steps cover the 0.3 ball; a quarter of Madry's 40
METHODS = ["aeg-gc", PGD, "fgsm"]


@pytest.fixture(scope="module")
def zoo(tiny_zoo, mnist_dir, tmp_path_factory) -> Path:
    """tiny-natural plus tiny-adv (FGSM-RS, one epoch on 600 digits) in a folder of our own."""
    folder = tmp_path_factory.mktemp("eval-zoo")
    shutil.copy(tiny_zoo / "tiny-natural.safetensors", folder)
    train_classifier(ZooConfig(data=str(mnist_dir), kind="adv", adv_method="fgsm-rs", epochs=1,
                               train_limit=600),
                     folder / "tiny-adv.safetensors", test_limit=100)
    return folder


@pytest.fixture(scope="module")
def generators(zoo, mnist_dir, tmp_path_factory) -> dict[str, list[str]]:
    """Tiny AEG-GC generators (one epoch on 256 digits) for each source and the ensemble."""
    folder = tmp_path_factory.mktemp("generators")
    members = {"tiny-natural": ["tiny-natural"], "tiny-adv": ["tiny-adv"],
               ENSEMBLE: ["tiny-natural", "tiny-adv"]}
    return {label: [str(train_generator(TrainConfig(
        data=str(mnist_dir), out=str(folder / f"{label}.safetensors"),
        sources=[SourceSpec(name) for name in names], zoo_dir=str(zoo), epochs=1, batch_size=64,
        lr=5e-3, width=4, residual_blocks=1, train_limit=256, val_limit=32)).path)]
        for label, names in members.items()}


@pytest.fixture(scope="module")
def config(zoo, generators, mnist_dir, tmp_path_factory) -> EvalConfig:
    return EvalConfig(data=str(mnist_dir), sources=["tiny-natural", "tiny-adv"],
                      targets=["tiny-natural"], methods=METHODS, generators=generators,
                      zoo_dir=str(zoo), limit=100, batch_size=100,
                      cache_dir=str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def first(config) -> TransferResult:
    return evaluate(config, progress=False)


@pytest.fixture(scope="module")
def second(first, config) -> TransferResult:
    """The same sets with one more target; crafting is forbidden, so all must come from the cache."""
    with pytest.MonkeyPatch.context() as patch:
        forbid_recomputing(patch, scoring=False)
        return evaluate(replace(config, targets=["tiny-natural", "tiny-adv"]), progress=False)


def test_a_rerun_scores_nothing_again(second, config) -> None:
    """The same table once more: every set and every prediction comes from the cache."""
    with pytest.MonkeyPatch.context() as patch:
        forbid_recomputing(patch)
        third = evaluate(replace(config, targets=["tiny-natural", "tiny-adv"]), progress=False)
    assert third.cells == second.cells and third.clean_accuracy == second.clean_accuracy
    assert second.scoring_seconds > 0
    assert third.scoring_seconds == pytest.approx(second.scoring_seconds)


def test_adding_a_target_reuses_the_cache(first, second) -> None:
    assert not any(s.cached for s in first.sets) and all(s.cached for s in second.sets)
    assert [s.images_per_second for s in second.sets] == [s.images_per_second for s in first.sets]
    for cell in first.cells:
        again = second.cell(cell.source, cell.method, cell.target)
        assert again is not None and again.accuracy == cell.accuracy


def test_a_table_carries_over_in_its_records_and_predictions_alone(second, config,
                                                                   tmp_path) -> None:
    """A long table's sets (megabytes each) stay behind; its records and predictions
    (kilobytes) are copied, with the zoo and generators, to another checkout: the table there
    is the same to the cell and crafts and scores nothing."""
    cache = Path(config.cache_dir or "")
    assert list(cache.glob("*.npz")), "the sets are in the cache folder itself"
    moved = tmp_path / "another-checkout"
    for kept in ("records", "predictions"):
        shutil.copytree(cache / kept, moved / "cache" / kept)
    shutil.copytree(config.zoo_dir or "", moved / "zoo")
    generators = {label: [str(shutil.copy(path, moved / f"{Path(path).stem}-g.safetensors"))
                          for path in paths] for label, paths in config.generators.items()}
    with pytest.MonkeyPatch.context() as patch:
        forbid_recomputing(patch)
        carried = evaluate(replace(config, targets=["tiny-natural", "tiny-adv"],
                                   zoo_dir=str(moved / "zoo"), generators=generators,
                                   cache_dir=str(moved / "cache")), progress=False)
    assert carried.cells == second.cells and carried.clean_accuracy == second.clean_accuracy
    assert [(s.seconds, s.mean_l2, s.max_linf) for s in carried.sets] == [
        (s.seconds, s.mean_l2, s.max_linf) for s in second.sets]
    assert all(s.cached for s in carried.sets) and not list((moved / "cache").glob("*.npz"))


def test_changed_settings_craft_again(config, first) -> None:
    weak = "pgd:alpha=0.01,steps=2"  # moves at most 0.02
    result = evaluate(replace(config, sources=["tiny-natural"], methods=[weak], generators={}),
                      progress=False)
    assert [s.cached for s in result.sets] == [False]
    stronger = first.cell("tiny-natural", PGD, "tiny-natural")
    weaker = result.cell("tiny-natural", weak, "tiny-natural")
    assert stronger is not None and weaker is not None
    assert weaker.accuracy > stronger.accuracy


def test_a_killed_table_goes_on_mid_set_to_the_same_images(config, tmp_path, monkeypatch) -> None:
    """`evaluate` hands each craft the cache's partial file: killed after PGD's first saved
    batch, the rerun crafts only the rest, and the set equals an uninterrupted one."""
    single = replace(config, sources=["tiny-natural"], methods=[PGD], generators={},
                     batch_size=25)
    whole = evaluate(replace(single, cache_dir=str(tmp_path / "whole")), progress=False)
    monkeypatch.setattr(craft_module, "SAVE_EVERY_SECONDS", 0.0)
    original_save = PartialSet.save

    def save_then_die(store: PartialSet, state: CraftState) -> None:
        original_save(store, state)
        raise KeyboardInterrupt

    killed = replace(single, cache_dir=str(tmp_path / "killed"))
    with monkeypatch.context() as patch:
        patch.setattr(PartialSet, "save", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            evaluate(killed, progress=False)
    assert len(list((tmp_path / "killed").glob("*.partial.npz"))) == 1
    batches = []
    attack_forward = PGDAttack.forward
    monkeypatch.setattr(PGDAttack, "forward", lambda attack, images, labels: batches.append(
        len(labels)) or attack_forward(attack, images, labels))
    resumed = evaluate(killed, progress=False)
    assert batches == [25, 25, 25]  # the first batch came from the partial file
    assert not list((tmp_path / "killed").glob("*.partial.npz"))
    [done], [reference] = resumed.sets, whole.sets
    assert done.cache_file is not None and reference.cache_file is not None
    with np.load(done.cache_file) as a, np.load(reference.cache_file) as b:
        np.testing.assert_array_equal(a["adversarial"], b["adversarial"])
    assert resumed.cells == whole.cells


def test_the_table_is_written_as_it_grows(second, config, tmp_path) -> None:
    """`on_set` sees the table after each set: the files it writes say they are partial until
    the last set, and the last ones equal the finished table's."""
    written = []

    def write(so_far: TransferResult) -> None:
        folder = tmp_path / str(len(written))
        write_transfer(so_far, folder)
        written.append((folder, len(so_far.sets), len(so_far.cells)))

    with pytest.MonkeyPatch.context() as patch:
        forbid_recomputing(patch)
        result = evaluate(replace(config, targets=["tiny-natural", "tiny-adv"]), progress=False,
                          on_set=write)
    planned = len(second.rows())
    assert [(sets, cells) for _, sets, cells in written] == [(n, 2 * n)
                                                             for n in range(1, planned + 1)]
    first_md = (written[0][0] / "transfer.md").read_text()
    assert f"Partial table: 1 of {planned} sets scored so far" in first_md
    assert f"| tiny-natural | {METHODS[0]} |" in first_md
    assert f"| tiny-natural | {METHODS[1]} |" not in first_md  # not crafted yet
    first_json = json.loads((written[0][0] / "transfer.json").read_text())
    assert (first_json["complete"], first_json["planned_sets"]) == (False, planned)
    last = written[-1][0]
    assert "Partial" not in (last / "transfer.md").read_text()
    assert json.loads((last / "transfer.json").read_text()) == json.loads(
        json.dumps(result.to_json())) and result.complete
    uncached = replace(result, config=replace(config, cache_dir=None), planned_sets=planned + 1)
    assert "Without a cache, the same command crafts every set again." in transfer_markdown(
        uncached)


def test_table_shape(second, tmp_path) -> None:
    rows = [(source, method) for source in ("tiny-natural", "tiny-adv") for method in METHODS]
    assert second.rows() == [*rows, *((ENSEMBLE, method) for method in METHODS)]
    assert second.targets == ["tiny-natural", "tiny-adv"]
    assert len(second.cells) == len(second.rows()) * 2
    assert set(second.clean_accuracy) == {"tiny-natural", "tiny-adv", ENSEMBLE}
    assert all(0.5 < acc <= 1 for acc in second.clean_accuracy.values())
    for crafted in second.sets:
        assert crafted.max_linf <= 0.3 + 1e-6 and crafted.mean_l2 > 0
    ensemble = [c for c in second.cells if c.source == ENSEMBLE]
    assert all(c.white_box for c in ensemble)  # both targets are the ensemble's own sources
    paths = write_transfer(second, tmp_path)
    assert [p.name for p in paths] == ["transfer.md", "transfer.csv", "transfer.json"]
    assert len(paths[1].read_text().splitlines()) == 1 + len(second.cells)
    assert f"| tiny-adv | {PGD} |" in paths[0].read_text()


def test_bold_marks_the_lowest_accuracy_of_each_group(second) -> None:
    grid = cell_grid(second, lambda c: c.accuracy, min)
    for column, target in enumerate(second.targets, start=2):
        for source in ("tiny-natural", "tiny-adv"):
            group = [row for row in grid if row[0] == source]
            values = [float(re.sub(r"[*_%]", "", row[column])) for row in group]
            bold = [row[column].startswith("**") for row in group]
            assert bold == [value == min(values) for value in values], (source, target)
    assert "**" in transfer_markdown(second)


def test_white_box_pgd_on_the_natural_model_is_near_zero(second) -> None:
    white = second.cell("tiny-natural", PGD, "tiny-natural")
    transfer = second.cell("tiny-natural", PGD, "tiny-adv")
    assert white is not None and transfer is not None
    assert white.white_box and not transfer.white_box
    assert white.accuracy < 0.05 and white.success_rate > 0.95


def test_standings_compare_black_box_cells_with_every_baseline(second) -> None:
    rows = standings(second, "aeg-gc")
    assert [(s.cell.source, s.cell.target) for s in rows] == [("tiny-natural", "tiny-adv"),
                                                             ("tiny-adv", "tiny-natural")]
    for standing in rows:
        assert [r.method for r in standing.rivals] == [PGD, "fgsm"]
        best = min(r.accuracy for r in standing.rivals)
        assert standing.lowest == (standing.cell.accuracy < best)
        assert standing.beats("fgsm") == (standing.cell.accuracy < standing.rivals[1].accuracy)
        assert standing.floor_margin() is None  # no noise row in this table


def test_ensemble_source_is_attacked_through_its_mean_logits(second) -> None:
    pgd = [c for c in second.cells if c.source == ENSEMBLE and c.method == PGD]
    assert [c.target for c in pgd] == ["tiny-natural", "tiny-adv"]
    assert all(c.white_box for c in pgd)  # both targets are members
    crafted = next(s for s in second.sets if (s.source, s.method) == (ENSEMBLE, PGD))
    assert crafted.white_box == ["tiny-natural", "tiny-adv"]
    assert all(c.accuracy < 0.5 for c in pgd)  # the ensemble's members both fall


def test_collapse_counts_the_most_common_wrong_class() -> None:
    labels = np.array([0, 1, 2, 3, 4, 5, 6, 7])
    assert collapse(np.array([8, 8, 8, 3, 4, 8, 6, 7]), labels, 10) == 4 / 8
    assert collapse(labels, labels, 10) == 0.0
    assert collapse(np.array([1, 0, 3, 2, 5, 4, 7, 6]), labels, 10) == 1 / 8


def test_onnx_generator_matches_its_checkpoint(config, generators, tmp_path) -> None:
    from agscm.export.pipeline import export_checkpoint

    onnx_path = tmp_path / "g.onnx"
    export_checkpoint(Path(generators["tiny-natural"][0]), onnx_path, data=config.data)
    small = replace(config, sources=["tiny-natural"], methods=["aeg-gc"], limit=50, cache_dir=None)
    torch_result = evaluate(replace(small, generators={"tiny-natural": generators["tiny-natural"]}),
                            progress=False)
    onnx_result = evaluate(replace(small, generators={"tiny-natural": [str(onnx_path)]}),
                           progress=False)
    assert onnx_result.sets[0].settings["format"] == "onnx"
    assert onnx_result.sets[0].mean_linf == pytest.approx(torch_result.sets[0].mean_linf, abs=1e-5)
    assert onnx_result.cells[0].accuracy == pytest.approx(torch_result.cells[0].accuracy,
                                                          abs=0.021)


def test_an_onnx_generator_keeps_its_recipe_and_label(zoo, mnist_dir, tmp_path) -> None:
    """A transfer-recipe generator is `aeg-gc-transfer` in a table whether its checkpoint or
    its ONNX export is evaluated (the export keeps the recipe in its training settings)."""
    from agscm.eval.methods import GeneratorMethod
    from agscm.export.pipeline import export_checkpoint

    checkpoint = train_generator(TrainConfig(
        data=str(mnist_dir), out=str(tmp_path / "t.safetensors"), sources=[SourceSpec(
            "tiny-natural")], zoo_dir=str(zoo), epochs=1, batch_size=64, width=4,
        residual_blocks=1, train_limit=64, val_limit=32, recipe="transfer")).path
    export_checkpoint(Path(checkpoint), tmp_path / "t.onnx", data=str(mnist_dir))
    from_torch, from_onnx = GeneratorMethod(Path(checkpoint)), GeneratorMethod(tmp_path / "t.onnx")
    assert from_torch.label == from_onnx.label == "aeg-gc-transfer"
    assert ({**from_onnx.settings(), "format": None} == {**from_torch.settings(), "format": None})


@pytest.mark.parametrize("changes, message", [
    ({"eps": 1.5}, r"eps must be in \(0, 1\]"),
    ({"methods": ["cw"]}, "unknown method 'cw'; choose one of aeg-gc, fgsm"),
    ({"methods": ["pgd:steps"]}, "bad method option 'steps'"),
    ({"methods": ["fgsm:steps=3"], "generators": {}}, "fgsm takes no steps"),
    ({"methods": [PGD]}, "generators were given but aeg-gc is not among the methods"),
    ({"targets": ["nope"]}, "no model 'nope' in"),
    ({"eps": 0.2}, "trained at linf eps 0.3 but the evaluation uses L-inf eps 0.2"),
])
def test_bad_configs_fail_before_crafting(config, changes, message) -> None:
    with pytest.raises(AgscmError, match=message):
        evaluate(replace(config, **changes), progress=False)


def test_generator_attached_to_the_wrong_source(config, generators) -> None:
    swapped = {"tiny-natural": generators["tiny-adv"], "tiny-adv": generators["tiny-natural"]}
    with pytest.raises(AgscmError, match="trained against tiny-adv, not tiny-natural"):
        evaluate(replace(config, generators=swapped), progress=False)
    with pytest.raises(AgscmError, match="needs a generator for source 'tiny-adv'"):
        evaluate(replace(config, generators={"tiny-natural": generators["tiny-natural"]}),
                 progress=False)


def test_parse_method() -> None:
    assert parse_method("PGD:steps=20, alpha=0.02,random-start=false") == MethodSpec(
        "pgd", (("alpha", 0.02), ("random_start", False), ("steps", 20)))
    assert parse_method("ata:layer=relu1").label == "ata:layer=relu1"
    with pytest.raises(AgscmError, match="aeg-gc takes no options"):
        parse_method("aeg-gc:lambda=0.5")


def test_cache_crafts_once_and_recovers_from_a_damaged_file(tmp_path) -> None:
    labels = np.arange(4)
    calls = []

    def make(store: CraftStore | None) -> CraftResult:
        calls.append(1)
        return CraftResult(np.full((4, 1, 4, 4), len(calls), np.float32), 1.0, 4.0)

    warnings: list[str] = []
    cache = CraftCache(tmp_path, warn=warnings.append)
    key = {"settings": {"method": "pgd", "eps": 0.3}, "data": "x"}
    first = cache.fetch("src-pgd", key, labels, make)
    again = cache.fetch("src-pgd", key, labels, make)
    assert (len(calls), first.cached, again.cached) == (1, False, True)
    np.testing.assert_array_equal(again.result.adversarial, first.result.adversarial)
    assert (cache.crafted, cache.reused) == (1, 1)
    assert cache.fetch("src-pgd", {**key, "data": "y"}, labels, make).cached is False
    assert first.path is not None
    assert warnings == []
    first.path.write_bytes(b"not a zip")
    assert cache.fetch("src-pgd", key, labels, make).cached is False
    assert warnings == [f"{first.path}: stored, but damaged or of another set or version; made "
                        "again and overwritten"]
    assert cache.fetch("src-pgd", key, labels, make).cached is True
    assert not list(tmp_path.glob(".*"))  # no temp files left behind
    assert len(calls) == 3


def test_a_set_scored_from_its_record_and_a_damaged_record_said(tmp_path) -> None:
    labels = np.arange(4) % 3
    clean = np.zeros((4, 1, 4, 4), np.float32)
    calls = []

    def make(store: CraftStore | None) -> CraftResult:
        calls.append(1)
        return CraftResult(np.full((4, 1, 4, 4), 0.25, np.float32), 2.0, 2.0)

    torch.manual_seed(0)
    scorer = Scorer("lin", torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)), [])
    warnings: list[str] = []
    cache = CraftCache(tmp_path, warn=warnings.append)
    key = set_key({"method": "pgd"}, [], HashedImages.of(clean), "cpu")
    first = cache.scored_set("src-pgd", key, labels, clean, make, [scorer], 4, "cpu")
    assert first.crafted and first.record.size.max_linf == 0.25 and first.record.seconds == 2.0
    [stored] = tmp_path.glob("src-pgd-*.npz")
    stored.unlink()  # the set's images are gone; its record and predictions are enough
    again = cache.scored_set("src-pgd", key, labels, clean, make, [scorer], 4, "cpu")
    assert not again.crafted and again.record == first.record and len(calls) == 1
    np.testing.assert_array_equal(again.predictions["lin"], first.predictions["lin"])
    [record] = (tmp_path / "records").glob("*.npz")
    record.write_bytes(b"not a zip")
    third = cache.scored_set("src-pgd", key, labels, clean, make, [scorer], 4, "cpu")
    assert third.crafted and third.record == first.record and len(calls) == 2
    assert warnings == [f"{record}: a set's record, damaged or of another set or version; the "
                        "set is read or crafted again and the record rewritten"]


def test_a_set_crafted_on_another_kind_of_device_is_crafted_again(tmp_path) -> None:
    """A GPU's set differs from a CPU's in its last bits and its crafting speed, which the
    table reports; two GPUs of one machine share their sets."""
    labels = np.arange(4)
    calls = []

    def make(store: CraftStore | None) -> CraftResult:
        calls.append(1)
        return CraftResult(np.zeros((4, 1, 4, 4), np.float32), 1.0, 4.0)

    cache = CraftCache(tmp_path)
    clean = HashedImages.of(np.zeros((4, 1, 4, 4), np.float32))
    keys = {device: set_key({"method": "pgd"}, [], clean, device)
            for device in ("cpu", "cuda", "cuda:0", "cuda:1")}
    crafted = [cache.fetch("src-pgd", keys[device], labels, make).cached
               for device in ("cpu", "cuda:0", "cuda:1", "cuda", "cpu")]
    assert crafted == [False, False, True, True, True]
    assert len(calls) == 2 and len(list(tmp_path.glob("*.npz"))) == 2


def test_a_killed_set_keeps_its_progress_beside_the_set_until_it_is_stored(tmp_path) -> None:
    labels = np.arange(4)
    cache = CraftCache(tmp_path)
    key = {"settings": {"method": "pgd", "eps": 0.3}, "data": "x"}
    progress = CraftState(2, np.full((2, 1, 4, 4), 0.5, np.float32), 7.0, 2,
                          np.arange(10, dtype=np.uint8), None)

    def killed(store: CraftStore | None) -> CraftResult:
        assert store is not None and store.load() is None
        store.save(progress)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.fetch("src-pgd", key, labels, killed)
    [partial] = tmp_path.glob("src-pgd-*.partial.npz")
    assert PartialSet(partial, {**key, "data": "y"}).load() is None  # another set's progress

    def resumed(store: CraftStore | None) -> CraftResult:
        state = store.load() if store is not None else None
        assert state is not None
        assert (state.done, state.seconds, state.batch_size, state.cuda_rng) == (2, 7.0, 2, None)
        np.testing.assert_array_equal(state.adversarial, progress.adversarial)
        np.testing.assert_array_equal(state.cpu_rng, progress.cpu_rng)
        return CraftResult(np.zeros((4, 1, 4, 4), np.float32), 9.0, 4 / 9)

    fetched = cache.fetch("src-pgd", key, labels, resumed)
    assert fetched.path is not None and fetched.path.is_file() and not partial.exists()
    assert cache.fetch("src-pgd", key, labels, killed).cached is True
    without_folder = CraftCache(None).fetch("src-pgd", key, labels, lambda store: CraftResult(
        np.full((4, 1, 4, 4), float(store is None), np.float32), 1.0, 4.0))
    assert without_folder.result.adversarial.min() == 1.0  # no folder, no store


def test_predictions_are_kept_per_images_model_and_device(zoo, mnist_dir, tmp_path) -> None:
    model, meta = load_classifier("tiny-natural", zoo)
    files = [Path(meta["path"])]
    array = load_split(str(mnist_dir), "test").subset(50).as_float()
    images = HashedImages.of(array)
    assert images.identity["sha256"] == hashlib.sha256(array.tobytes()).hexdigest()
    cache = CraftCache(tmp_path)
    first = cache.predict("clean-on-tiny", model, files, images, 25, "cpu")
    np.testing.assert_array_equal(first, predict(model, array))
    scored = cache.prediction_seconds
    cache.predict("clean-on-tiny", model, files, images, 50, "cpu")  # batch size is no key
    assert (cache.predicted, cache.predictions_reused) == (1, 1)
    assert scored > 0 and cache.prediction_seconds == 2 * scored  # read back with the file
    changed = array.copy()
    changed[0, 0, 0, 0] = 1 - changed[0, 0, 0, 0]
    cache.predict("clean-on-tiny", model, files, HashedImages.of(changed), 25, "cpu")
    cache.predict("clean-on-tiny", model, files, images, 25, "cuda:0")
    assert (cache.predicted, cache.predictions_reused) == (3, 1)
    for stored in (tmp_path / "predictions").iterdir():
        stored.write_bytes(b"not a zip")
    again = cache.predict("clean-on-tiny", model, files, images, 25, "cpu")
    np.testing.assert_array_equal(again, first)
    assert (cache.predicted, cache.predictions_reused) == (4, 1)
    assert not list(tmp_path.rglob(".*"))  # no temp files left behind


def test_the_mnist_spec_resumes_the_zoo_commands_of_the_results() -> None:
    """`agscm zoo train` with the flags docs/RESULTS.md gives must train the spec's own configs,
    so the reproduction resumes those checkpoints instead of refusing them."""
    configs = MNIST.zoo_configs()
    data = "../shared/data/mnist"
    assert {k: configs[k] for k in ("mnist-natural", "mnist-adv", "mnist-secret")} == {
        "mnist-natural": ZooConfig(data=data, kind="natural", epochs=4),
        "mnist-adv": ZooConfig(data=data, kind="adv", epochs=5, eps_warmup_epochs=1,
                               adv_method="pgd", adv_steps=7),
        "mnist-secret": ZooConfig(data=data, kind="secret", epochs=5, eps_warmup_epochs=1,
                                  adv_method="pgd", adv_steps=7)}
    others = {name: c for name, c in configs.items() if c.arch is not None}
    assert {c.arch for c in others.values()} == {"mlp", "resnet-small", "vgg-small"}
    assert any(c.kind == "adv" for c in others.values())
