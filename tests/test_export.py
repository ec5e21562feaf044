"""`agscm export`: the ONNX contract, self-verification, and the fp16/int8 variants."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from runtime_helpers import GeneratorFiles, export_random_generator
from typer.testing import CliRunner

from agscm.cli import app
from agscm.contract import (
    INPUT_NAME,
    OPSET,
    OUTPUT_NAME,
    PERTURBATION_NAME,
    SIZE_MULTIPLE,
    GeneratorMetadata,
)
from agscm.data import load_split
from agscm.errors import AgscmError
from agscm.export.metadata import metadata_from_checkpoint
from agscm.export.onnx_export import ContractModule
from agscm.export.pipeline import export_checkpoint
from agscm.export.variants import to_fp16
from agscm.export.verify import check_parity, parity_batches
from agscm.models.generator import Generator, GeneratorConfig
from agscm.models.generator_checkpoint import load_generator
from agscm.runtime import Perturber


def _dims(value: onnx.ValueInfoProto) -> list[str | int]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_exported_file_follows_the_contract(mnist_generator: GeneratorFiles) -> None:
    model = onnx.load(mnist_generator.onnx)
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= OPSET
    assert [i.name for i in model.graph.input] == [INPUT_NAME]
    assert [o.name for o in model.graph.output] == [OUTPUT_NAME, PERTURBATION_NAME]
    for value in (*model.graph.input, *model.graph.output):
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert _dims(value) == ["batch", 1, "height", "width"]
    props = {p.key: p.value for p in model.metadata_props}
    _, meta, _ = load_generator(mnist_generator.checkpoint)
    expected = metadata_from_checkpoint(mnist_generator.checkpoint, meta)
    assert GeneratorMetadata.from_props(props) == expected
    assert expected.size_multiple == SIZE_MULTIPLE and expected.source_models == ["tiny-natural"]
    assert json.loads(props["config"])["generator"]["width"] == 4


def test_parity_uses_real_images_at_three_sizes(mnist_dir: Path) -> None:
    images = load_split(mnist_dir, "test").subset(16).as_float()
    shapes = [batch.shape for batch in parity_batches(images)]
    assert shapes == [(16, 1, 28, 28), (8, 1, 56, 56), (8, 1, 12, 20)]


def test_parity_catches_a_graph_that_differs_from_pytorch(mnist_generator: GeneratorFiles,
                                                        mnist_dir: Path) -> None:
    generator, _, _ = load_generator(mnist_generator.checkpoint)
    images = load_split(mnist_dir, "test").subset(8).as_float()
    checks = check_parity(mnist_generator.onnx, ContractModule(generator), images)
    assert len(checks) == 3 and all(c.max_diff <= 1e-5 for c in checks)
    with torch.no_grad():
        generator.body[0].weight.add_(1e-3)  # the file no longer matches these weights
    with pytest.raises(AgscmError, match="onnxruntime differs from PyTorch by"):
        check_parity(mnist_generator.onnx, ContractModule(generator), images)


def test_a_full_resolution_generator_exports_with_parity(tmp_path: Path) -> None:
    path = export_random_generator(tmp_path / "full.onnx", channels=3, downsamplings=0)
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    generator_config = json.loads(props["config"])["generator"]
    assert generator_config["downsamplings"] == 0
    torch.manual_seed(3)  # export_random_generator seeds with the channel count
    generator = Generator(GeneratorConfig(**generator_config)).eval()
    images = np.random.default_rng(1).random((4, 3, 32, 32), dtype=np.float32)
    checks = check_parity(path, ContractModule(generator), images)
    assert all(check.max_diff <= 1e-5 for check in checks)


def test_export_command_prints_the_summary(mnist_generator: GeneratorFiles,
                                           tmp_path: Path) -> None:
    output = tmp_path / "nested" / "G.onnx"
    result = CliRunner().invoke(app, ["export", str(mnist_generator.checkpoint), "-o",
                                      str(output)])
    assert result.exit_code == 0, result.output
    assert "parity onnxruntime vs PyTorch" in result.output and "G.onnx" in result.output
    assert Perturber(output).metadata.precision == "fp32"
    assert sorted(p.name for p in output.parent.iterdir()) == ["G.onnx"]  # no temp file left


def test_variants_report_their_error_and_accuracy_change(mnist_generator: GeneratorFiles,
                                                         tmp_path: Path) -> None:
    output = tmp_path / "G.onnx"
    report = export_checkpoint(mnist_generator.checkpoint, output, zoo_dir=mnist_generator.zoo,
                               fp16=True, int8=True, eval_images=200)
    fp32, fp16, int8 = report.variants
    assert [v.precision for v in report.variants] == ["fp32", "fp16", "int8"]
    assert [v.path.name for v in report.variants] == ["G.onnx", "G.fp16.onnx", "G.int8.onnx"]
    assert report.source == "tiny-natural" and report.eval_images == 200
    assert fp32.source_accuracy < report.clean_accuracy - 0.2  # the generator fools its source
    assert fp16.size_bytes < fp32.size_bytes
    assert 0 < fp16.max_error < 0.01
    assert 0 < int8.max_error <= 2 * 0.3  # bounded by construction, whatever the rounding
    for variant in (fp16, int8):
        assert 0 <= variant.source_accuracy <= 1 and variant.ms_per_image > 0
        perturber = Perturber(variant.path)
        assert perturber.metadata.precision == variant.precision
        images = np.random.default_rng(0).random((2, 1, 30, 18), dtype=np.float32)
        assert np.abs(perturber.perturb_array(images) - images).max() <= 0.3 + 1e-3


@pytest.mark.slow
def test_fp16_keeps_the_l2_bound_on_large_images(tmp_path: Path) -> None:
    """ReduceL2 over a 256x256 RGB image sums ~200k squares: past fp16's range, so it stays
    in float32; the fp16 model must still keep ||delta||_2 <= eps."""
    path = export_random_generator(tmp_path / "l2.onnx", channels=3, norm="l2", eps=2.0)
    half = tmp_path / "l2.fp16.onnx"
    onnx.save(to_fp16(onnx.load(path)), half)
    images = np.random.default_rng(1).random((1, 3, 256, 256), dtype=np.float32)
    delta = Perturber(half).perturb_array(images) - images
    assert np.isfinite(delta).all()
    assert 0.5 < np.linalg.norm(delta) <= 2.0 * 1.01


def test_variants_need_the_source_model_before_any_work(mnist_generator: GeneratorFiles,
                                                        tmp_path: Path) -> None:
    with pytest.raises(AgscmError, match="no model 'tiny-natural'"):
        export_checkpoint(mnist_generator.checkpoint, tmp_path / "G.onnx", zoo_dir=tmp_path,
                          fp16=True)
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_what_it_cannot_use(mnist_generator: GeneratorFiles,
                                           tmp_path: Path) -> None:
    runner = CliRunner()
    classifier = mnist_generator.zoo / "tiny-natural.safetensors"
    result = runner.invoke(app, ["export", str(classifier), "-o", str(tmp_path / "G.onnx")])
    assert result.exit_code == 1 and "not a generator checkpoint" in result.output
    result = runner.invoke(app, ["export", str(mnist_generator.checkpoint), "-o",
                                 str(tmp_path / "G.onnx"), "--data", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "data set not found" in result.output
    assert list(tmp_path.iterdir()) == []
