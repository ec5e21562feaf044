"""The page's JavaScript modules, run in Node, against numpy, Pillow, zipfile and onnxruntime.

These pin down the arithmetic the browser test then checks end to end: numpy's reflect padding
and round-half-to-even, Pillow's grey conversion, a PNG encoder Pillow reads back exactly, a zip
archive `zipfile` accepts, and metadata_props read straight from the ONNX bytes.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from runtime_helpers import REPO, GeneratorFiles
from web_helpers import unavailable

from agscm.contract import linf_steps

STATIC = REPO / "agscm" / "web" / "static"
NODE = shutil.which("node")


@pytest.fixture(autouse=True)
def node() -> None:
    if NODE is None:
        unavailable("node is not installed (the page's modules are checked in Node)")


def run_node(body: str, payload: Any) -> Any:
    """Run `body` as an ES module in Node with `input` (the JSON payload) and the page's modules
    imported; it must print one JSON value."""
    prelude = "\n".join(
        f'import * as {alias} from "{(STATIC / name).as_uri()}";'
        for alias, name in (("pixels", "pixels.js"), ("png", "png.js"), ("zip", "zip.js"),
                            ("meta", "onnx-metadata.js")))
    script = (f'{prelude}\nimport {{ readFileSync }} from "node:fs";\n'
              f'const input = JSON.parse(readFileSync(0, "utf8"));\n{body}')
    result = subprocess.run([str(NODE), "--input-type=module", "-e", script],
                            input=json.dumps(payload), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_luma_is_pillows_grey_conversion() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.full((64, 64, 1), 255, np.uint8)], axis=-1)
    got = run_node("""
const out = pixels.modelPixels(Uint8Array.from(input.rgba), 64, 64, 1);
console.log(JSON.stringify({values: Array.from(out.values), grey: out.grey, alpha: out.alpha}));
""", {"rgba": rgba.ravel().tolist()})
    expected = np.asarray(Image.fromarray(rgb).convert("L"))
    assert np.array_equal(np.array(got["values"], np.uint8).reshape(64, 64), expected)
    assert got["grey"] is False and got["alpha"] is None


@pytest.mark.parametrize("multiple", [4, 8])
def test_model_input_is_numpy_reflect_padding_of_float32_pixels(multiple: int) -> None:
    rng = np.random.default_rng(multiple)
    sizes = [(1, 1), (1, 6), (2, 3), (3, 2), (5, 7), (9, 4), (28, 28), (31, 29)]
    cases = [{"h": h, "w": w, "c": c,
              "values": rng.integers(0, 256, (h, w, c), dtype=np.uint8).ravel().tolist()}
             for h, w in sizes for c in (1, 3)]
    got = run_node("""
console.log(JSON.stringify(input.cases.map(({h, w, c, values}) => {
  const out = pixels.toModelInput(Uint8Array.from(values), w, h, c, input.multiple);
  return {dims: out.dims, data: Array.from(out.data)};
})));
""", {"cases": cases, "multiple": multiple})
    for case, result in zip(cases, got, strict=True):
        h, w, c = case["h"], case["w"], case["c"]
        image = np.array(case["values"], np.uint8).reshape(1, h, w, c).transpose(0, 3, 1, 2)
        floats = image.astype(np.float32) / np.float32(255)
        ph, pw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
        expected = np.pad(floats, ((0, 0), (0, 0), (0, ph - h), (0, pw - w)), mode="reflect")
        assert result["dims"] == list(expected.shape)
        # JSON carries the float32 values as doubles: equality is bit-exact equality.
        assert np.array_equal(np.array(result["data"], np.float32).reshape(expected.shape),
                              expected)


@pytest.mark.parametrize("budget", [None, 8])
def test_quantize_is_numpy_rint_with_the_linf_clamp(budget: int | None) -> None:
    rng = np.random.default_rng(1)
    h, w, c, ph, pw = 5, 6, 3, 8, 8
    output = rng.random((1, c, ph, pw), dtype=np.float32)
    # Exact ties: k + 0.5 levels, where numpy rounds to even and Math.round would not.
    ties = (rng.integers(0, 255, (1, c, ph, pw)) + 0.5).astype(np.float32) / np.float32(255)
    output = np.where(rng.random(output.shape) < 0.5, ties, output).astype(np.float32)
    output[0, 0, 0, :3] = [-0.2, 1.3, 0.5 / 255]
    clean = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    got = run_node("""
const out = pixels.quantize(Float32Array.from(input.output), input.pw, input.ph, input.w, input.h,
                            input.c, Uint8Array.from(input.clean), input.budget);
console.log(JSON.stringify(Array.from(out)));
""", {"output": output.ravel().tolist(), "clean": clean.ravel().tolist(), "budget": budget,
      "h": h, "w": w, "c": c, "ph": ph, "pw": pw})
    cropped = output[..., :h, :w].transpose(0, 2, 3, 1)[0]
    expected = np.clip(np.rint(cropped * np.float32(255)), 0, 255)
    if budget is not None:
        expected = np.clip(expected, clean.astype(int) - budget, clean.astype(int) + budget)
    assert np.array_equal(np.array(got).reshape(h, w, c), expected.astype(np.uint8))
    ties_hit = np.isclose((cropped * np.float32(255)) % 1, 0.5).sum()
    assert ties_hit > 10  # the check exercises round-half-to-even, not just plain rounding


def test_linf_budget_and_distortion_match_the_manifest_formulas() -> None:
    rng = np.random.default_rng(2)
    clean = rng.integers(0, 256, 300, dtype=np.uint8)
    adversarial = np.clip(clean.astype(int) + rng.integers(-8, 9, 300), 0, 255).astype(np.uint8)
    got = run_node("""
console.log(JSON.stringify({
  budgets: input.eps.map(pixels.linfBudget),
  measured: pixels.distortion(Uint8Array.from(input.clean), Uint8Array.from(input.adversarial)),
  same: pixels.distortion(Uint8Array.from(input.clean), Uint8Array.from(input.clean)),
}));
""", {"eps": [0.3, 8 / 255, 16 / 255, 0.1], "clean": clean.tolist(),
      "adversarial": adversarial.tolist()})
    # the page's copy of the contract's rule (agscm.contract.linf_steps)
    assert got["budgets"] == [linf_steps(eps) for eps in (0.3, 8 / 255, 16 / 255, 0.1)]
    assert got["budgets"] == [76, 8, 16, 25]
    diff = (adversarial.astype(np.float64) - clean) / 255
    assert got["measured"]["linf"] == pytest.approx(np.abs(diff).max(), abs=1e-12)
    assert got["measured"]["l2"] == pytest.approx(np.sqrt((diff**2).sum()), rel=1e-12)
    assert got["measured"]["psnr"] == pytest.approx(10 * np.log10(1 / (diff**2).mean()), rel=1e-12)
    assert got["same"] == {"linf": 0, "l2": 0, "psnr": None}


@pytest.mark.parametrize(("channels", "alpha", "mode"),
                         [(1, False, "L"), (1, True, "LA"), (3, False, "RGB"), (3, True, "RGBA")])
def test_png_encoder_output_decodes_to_the_same_pixels(channels: int, alpha: bool,
                                                       mode: str) -> None:
    rng = np.random.default_rng(channels)
    h, w = 37, 53
    # Smooth rows and noisy rows, so more than one PNG filter gets chosen.
    values = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    values[::3] = np.arange(w, dtype=np.uint8)[None, :, None]
    plane = rng.integers(0, 256, (h, w), dtype=np.uint8) if alpha else None
    got = run_node("""
const blob = await png.encodePng(Uint8Array.from(input.values), input.w, input.h, input.c,
                                 input.alpha ? Uint8Array.from(input.alpha) : null);
console.log(JSON.stringify(Buffer.from(await blob.arrayBuffer()).toString("base64")));
""", {"values": values.ravel().tolist(), "w": w, "h": h, "c": channels,
      "alpha": None if plane is None else plane.ravel().tolist()})
    image = Image.open(io.BytesIO(base64.b64decode(got)))
    image.load()  # verifies every chunk's CRC and the zlib stream
    assert image.mode == mode and image.size == (w, h)
    decoded = np.asarray(image).reshape(h, w, -1)
    assert np.array_equal(decoded[..., :channels], values)
    if plane is not None:
        assert np.array_equal(decoded[..., channels], plane)


def test_zip_writer_makes_an_archive_zipfile_reads() -> None:
    files = {"00001-adv.png": bytes(range(256)) * 3, "chat-été-adv.png": b"\x89PNG fake",
             "empty.txt": b"", "manifest.jsonl": b'{"input": "a.png"}\n'}
    got = run_node("""
const blob = zip.makeZip(input.files.map(([name, data]) => ({name, bytes: Buffer.from(data, "base64")})),
                         new Date(2024, 4, 17, 13, 45, 30));
console.log(JSON.stringify(Buffer.from(await blob.arrayBuffer()).toString("base64")));
""", {"files": [[name, base64.b64encode(data).decode()]
                for name, data in files.items()]})
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(got))) as archive:
        assert archive.testzip() is None  # every CRC checks out
        assert archive.namelist() == list(files)
        for name, data in files.items():
            assert archive.read(name) == data
        assert archive.getinfo("00001-adv.png").date_time == (2024, 5, 17, 13, 45, 30)


def test_metadata_props_are_read_from_the_onnx_bytes(mnist_generator: GeneratorFiles) -> None:
    import onnxruntime

    model = mnist_generator.onnx
    got = run_node("""
const bytes = new Uint8Array(readFileSync(input.path));
console.log(JSON.stringify(meta.readMetadataProps(bytes)));
""", {"path": str(model)})
    expected = onnxruntime.InferenceSession(str(model)).get_modelmeta().custom_metadata_map
    assert got == dict(expected) and "config" in got


def test_metadata_reader_refuses_a_truncated_model(mnist_generator: GeneratorFiles,
                                                   tmp_path: Path) -> None:
    (tmp_path / "cut.onnx").write_bytes(mnist_generator.onnx.read_bytes()[:5000])
    got = run_node("""
try {
  meta.readMetadataProps(new Uint8Array(readFileSync(input.path)));
  console.log(JSON.stringify("read"));
} catch (error) {
  console.log(JSON.stringify(error.message));
}
""", {"path": str(tmp_path / "cut.onnx")})
    assert "truncated" in got
