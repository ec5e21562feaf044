"""A committed table, re-measured from committed weights on a fresh clone.

The shipped MNIST generator's table (benchmarks/results/shipped_mnist_table.json, all 10,000
test images) was made with the committed zoo and the shipped .onnx file; the same command with
`--limit 200` wrote shipped_mnist_table_first200.json. Here two of its cells, the generator's and
PGD-40's from mnist-natural against the MLP, are crafted and scored again from the committed
files, and must equal what is committed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agscm.cli import app
from agscm.models.catalog import CATALOG_NAME, read_catalog
from agscm.models.registry import COMMITTED_ZOO

REPO = Path(__file__).resolve().parents[1]
SLICE = REPO / "benchmarks" / "results" / "shipped_mnist_table_first200.json"
GENERATOR = REPO / "agscm" / "pretrained" / "mnist-transfer.onnx"
CELLS = [("aeg-gc-transfer", "mnist-mlp-natural"), ("pgd", "mnist-mlp-natural")]


@pytest.mark.slow
def test_a_slice_of_the_shipped_table_re_measures_equal(mnist_dir, tmp_path) -> None:
    if not SLICE.is_file() or not (COMMITTED_ZOO / CATALOG_NAME).is_file():
        pytest.skip("no committed table slice or zoo in this checkout")
    committed = json.loads(SLICE.read_text())
    assert committed["images"] == 200 and "mnist-mlp-natural" in read_catalog(COMMITTED_ZOO)
    result = CliRunner().invoke(app, [
        "evaluate", "--data", str(mnist_dir), "--zoo", str(COMMITTED_ZOO), "--source",
        "mnist-natural", "--target", "mnist-mlp-natural", "--method", "aeg-gc", "--method", "pgd",
        "--generator", f"mnist-natural={GENERATOR}", "--limit", "200", "--no-cache",
        "--out", str(tmp_path), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    measured = json.loads((tmp_path / "transfer.json").read_text())

    def cells(table: dict) -> dict:
        return {(c["method"], c["target"]): (c["accuracy"], c["clean_correct"], c["collapse"])
                for c in table["cells"] if c["source"] == "mnist-natural"}

    for key in CELLS:
        assert cells(measured)[key] == cells(committed)[key], key
