"""`agscm web`: the site it writes, the folders it refuses, and that it needs no torch."""

from __future__ import annotations

import json
import re
import shutil
import stat
from pathlib import Path

import pytest
from runtime_helpers import REPO, GeneratorFiles, run_agscm
from typer.testing import CliRunner
from web_helpers import ort_dist

from agscm.cli import app
from agscm.contract import REQUIRED_KEYS
from agscm.digest import file_digest
from agscm.web.ort_files import ORT_FILES, ORT_VERSION
from agscm.web.site import MANIFEST, MODEL_FILE, PAGE_FILES


@pytest.fixture(scope="module")
def dist() -> Path:
    return ort_dist()


def web(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["web", *map(str, args)])
    return result.exit_code, result.output


def page_config(site: Path) -> dict:
    html = (site / "index.html").read_text(encoding="utf-8")
    match = re.search(r'<script type="application/json" id="agscm-site">(.*?)</script>', html,
                      re.S)
    assert match, "the page config is missing from index.html"
    return json.loads(match.group(1))


def test_the_pinned_version_is_the_one_npm_installs() -> None:
    package = json.loads((REPO / "web" / "package.json").read_text())
    lock = json.loads((REPO / "web" / "package-lock.json").read_text())
    assert package["dependencies"] == {"onnxruntime-web": ORT_VERSION}
    assert lock["packages"]["node_modules/onnxruntime-web"]["version"] == ORT_VERSION


def test_builds_a_self_contained_site(mnist_generator: GeneratorFiles, dist: Path,
                                      tmp_path: Path) -> None:
    site = tmp_path / "site"
    code, output = web(site, "--model", mnist_generator.onnx)
    assert code == 0, output
    assert "python -m http.server" in output and str(site) in output
    expected = {"index.html", MODEL_FILE, MANIFEST, "ort/THIRD_PARTY_NOTICES.txt", *PAGE_FILES,
                *(f"ort/{name}" for name in ORT_FILES)}
    written = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert written == expected  # and no temp file left behind
    assert (site / MODEL_FILE).read_bytes() == mnist_generator.onnx.read_bytes()
    for name in ORT_FILES:
        assert (site / "ort" / name).read_bytes() == (dist / name).read_bytes()
    for name in PAGE_FILES:
        assert (site / name).read_bytes() == (REPO / "agscm/web/static" / name).read_bytes()
    for path in site.rglob("*"):
        if path.is_file():  # readable by a static server running as another user
            assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, path

    config = page_config(site)
    assert config["model"] == {"file": MODEL_FILE, "name": "G.onnx",
                               "bytes": mnist_generator.onnx.stat().st_size,
                               "sha256": file_digest(mnist_generator.onnx)}
    assert config["ort"]["version"] == ORT_VERSION
    assert config["contract"]["required_keys"] == list(REQUIRED_KEYS)
    assert config["contract"]["input"] == "image" and config["max_pixels"] == 16_000_000
    manifest = json.loads((site / MANIFEST).read_text())
    assert sorted(manifest["files"]) == sorted(expected - {MANIFEST})

    # Nothing the page loads may come from anywhere but the site itself.
    html = (site / "index.html").read_text(encoding="utf-8")
    assert "connect-src 'self'" in html and "default-src 'none'" in html
    for name in PAGE_FILES:
        text = (site / name).read_text(encoding="utf-8")
        assert not re.search(r"https?://", text.replace("http://www.w3.org", "")), name


def test_rebuild_replaces_its_own_files_and_drops_stale_ones(mnist_generator: GeneratorFiles,
                                                             dist: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    assert web(site, "--model", mnist_generator.onnx)[0] == 0
    (site / "old-page.js").write_text("stale")
    manifest = json.loads((site / MANIFEST).read_text())
    manifest["files"].append("old-page.js")
    (site / MANIFEST).write_text(json.dumps(manifest))
    code, output = web(site, "--model", mnist_generator.onnx, "--max-pixels", "1000")
    assert code == 0, output
    assert not (site / "old-page.js").exists()
    assert page_config(site)["max_pixels"] == 1000


def test_refuses_a_folder_it_did_not_build(mnist_generator: GeneratorFiles, dist: Path,
                                           tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"not touched")
    code, output = web(folder, "--model", mnist_generator.onnx)
    assert code == 1
    assert output.strip().splitlines() == [
        f"error: {folder}: not empty and not a site built by agscm web (no readable "
        f"{MANIFEST}); choose a new or empty folder"]
    assert [p.name for p in folder.iterdir()] == ["holiday.jpg"]


@pytest.mark.parametrize("content", [b"", b"not an onnx model", None])
def test_refuses_a_file_that_is_not_a_generator(content: bytes | None, dist: Path,
                                                tmp_path: Path) -> None:
    model = tmp_path / "G.onnx"
    if content is not None:
        model.write_bytes(content)
    code, output = web(tmp_path / "site", "--model", model)
    assert code == 1 and output.startswith("error: ") and len(output.strip().splitlines()) == 1
    assert str(model) in output
    assert not (tmp_path / "site").exists()


def test_refuses_missing_or_altered_runtime_files(mnist_generator: GeneratorFiles, dist: Path,
                                                  tmp_path: Path) -> None:
    code, output = web(tmp_path / "site", "--model", mnist_generator.onnx,
                       "--ort-dist", tmp_path / "nowhere")
    assert code == 1 and "npm ci --prefix web" in output
    assert len(output.strip().splitlines()) == 1

    altered = tmp_path / "dist"
    altered.mkdir()
    for name in ORT_FILES:
        shutil.copyfile(dist / name, altered / name)
    with open(altered / "ort.webgpu.min.mjs", "ab") as file:
        file.write(b"\n// altered\n")
    code, output = web(tmp_path / "site", "--model", mnist_generator.onnx, "--ort-dist", altered)
    assert code == 1 and "sha256 differs" in output
    assert not (tmp_path / "site").exists()


def test_web_runs_where_torch_cannot_be_imported(mnist_generator: GeneratorFiles, dist: Path,
                                                 tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    for name in ("torch", "onnx"):
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked')\n")
    result = run_agscm("web", str(tmp_path / "site"), "--model", str(mnist_generator.onnx),
                       env={"PYTHONPATH": str(blocker)})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    shown = run_agscm("web", "--help", env={"PYTHONPATH": str(blocker)})
    assert shown.returncode == 0 and "Example: agscm web" in shown.stdout
