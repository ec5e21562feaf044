"""`agscm web` in a real browser: headless Debian Chromium, driven by Playwright for Python.

Two sites (the MNIST generator that `agscm export` wrote, and an RGB generator) are served on
127.0.0.1; real MNIST digits and CIFAR-10 test images (decoded from the shared tar.gz into PNG
files) go in through the file picker and by drag and drop, with the network switched off after
the page loaded. The downloaded PNGs must equal the Python runtime's output within one 8-bit
level, the page must name its backend, and every request it made must have gone to 127.0.0.1.
"""

from __future__ import annotations

import base64
import functools
import http.server
import io
import json
import os
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from runtime_helpers import GeneratorFiles, export_random_generator, mnist_pngs
from web_helpers import chromium_executable, ort_dist, unavailable

from agscm.contract import linf_steps
from agscm.runtime import Perturber
from agscm.web import build_site

# What the probe of this machine found Chromium needs headless in a container, and what keeps
# it from calling home (updates, sync, field trials) on its own.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
# WebGPU on SwiftShader, Chromium's software Vulkan: the WebGPU path runs without a GPU.
SWIFTSHADER_WEBGPU_FLAGS = [flag for flag in CHROMIUM_FLAGS if flag != "--disable-gpu"] + [
    "--enable-unsafe-webgpu", "--enable-unsafe-swiftshader", "--use-webgpu-adapter=swiftshader",
    "--enable-features=Vulkan", "--use-vulkan=swiftshader", "--use-angle=swiftshader"]
TIMEOUT_S = 180
SCREENSHOT_ENV = "AGSCM_WEB_SCREENSHOT"  # where to keep the README's screenshot, if set


# ---- fixtures: tools, models, sites, a server that logs, real images ------------------------

@pytest.fixture(scope="session", autouse=True)
def browser_tools() -> None:
    """Skip (or fail, in CI) first, before the session-wide models are trained."""
    chromium_executable()
    ort_dist()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("Playwright for Python is not installed (pip install playwright; it needs "
                    "no browser download: the tests use Debian's Chromium)")


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as api:
        yield api


@dataclass
class Served:
    """The sites on 127.0.0.1, and every request the server saw: (client address, path)."""

    url: str
    models: dict[str, Path]
    log: list[tuple[str, str]] = field(default_factory=list)


class LoggingHandler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args: Any, log: list[tuple[str, str]], **kwargs: Any) -> None:
        self.requests_log = log
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args: Any) -> None:
        self.requests_log.append((self.client_address[0], self.path))


def serve(folder: Path, log: list[tuple[str, str]]) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(LoggingHandler, directory=str(folder), log=log)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def served(playwright: Any, mnist_generator: GeneratorFiles,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    dist = ort_dist()
    root = tmp_path_factory.mktemp("sites")
    models = {"mnist": mnist_generator.onnx,
              "cifar": export_random_generator(root / "rgb.onnx", 3, eps=8 / 255)}
    for name, model in models.items():
        build_site(root / name, model, dist)
    log: list[tuple[str, str]] = []
    server = serve(root, log)
    yield Served(f"http://127.0.0.1:{server.server_address[1]}/", models, log)
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def images(mnist_dir: Path, cifar_archive: Path,
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Real images as PNG files: 20 MNIST test digits and 20 CIFAR-10 test images (two per
    class), crops of odd sizes down to 1x1, and a few of each set for the other model."""
    root = tmp_path_factory.mktemp("images")
    digits = mnist_pngs(root / "mnist", mnist_dir, 22)
    cifar = []
    wanted = {f"test/{cls}/{i:04d}.jpg" for cls in CIFAR_CLASSES for i in range(2)}
    with tarfile.open(cifar_archive, "r|gz") as archive:
        for member in archive:
            if member.name in wanted:
                data = archive.extractfile(member)
                assert data is not None
                path = root / "cifar" / member.name.replace("/", "-").replace(".jpg", ".png")
                path.parent.mkdir(exist_ok=True)
                Image.open(io.BytesIO(data.read())).convert("RGB").save(path)
                cifar.append(path)
    assert len(cifar) == 20, f"found {len(cifar)} of 20 CIFAR-10 test images in the archive"
    crops = root / "crops"
    crops.mkdir()

    def crop(source: Path, box: tuple[int, int, int, int], name: str) -> Path:
        Image.open(source).crop(box).save(crops / name)
        return crops / name

    mnist_set = digits[:20] + [crop(digits[20], (2, 1, 27, 28), "digit-25x27.png"),
                               crop(digits[21], (13, 13, 14, 14), "digit-1x1.png"),
                               crop(digits[21], (10, 10, 13, 12), "digit-3x2.png"),
                               *cifar[:3]]  # colour into a grey model
    cifar_set = cifar + [crop(cifar[0], (0, 1, 31, 30), "cifar-31x29.png"),
                         crop(cifar[5], (4, 7, 17, 29), "cifar-13x22.png"),
                         *digits[:2]]  # grey into an RGB model
    return {"mnist": mnist_set, "cifar": cifar_set}


CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck")


def launch(playwright: Any, profile: Path, flags: list[str]) -> Any:
    """A fresh Chromium (its own new profile folder) that accepts downloads."""
    return playwright.chromium.launch_persistent_context(
        str(profile), executable_path=chromium_executable(), args=flags, headless=True,
        accept_downloads=True, viewport={"width": 1200, "height": 900})


# ---- driving the page ------------------------------------------------------------------------

class Page:
    """The agscm page in one tab, with the requests it made and the errors it threw."""

    def __init__(self, context: Any, url: str) -> None:
        self.requests: list[str] = []
        self.errors: list[str] = []
        context.on("request", lambda request: self.requests.append(request.url))
        self.page = context.new_page()
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(url)
        self.page.wait_for_selector('#status:not([data-state="loading"])', timeout=TIMEOUT_S * 1000)

    def status(self) -> tuple[str, str, str | None]:
        status = self.page.locator("#status")
        return (status.get_attribute("data-state") or "", status.inner_text(),
                status.get_attribute("data-backend"))

    def wait_until(self, expression: str) -> None:
        """Poll a page expression (the page's CSP forbids Playwright's wait_for_function)."""
        deadline = time.monotonic() + TIMEOUT_S
        while not self.page.evaluate(expression):
            assert time.monotonic() < deadline, f"timed out waiting for {expression}"
            time.sleep(0.1)

    def add(self, files: list[Path], drop: bool = False) -> None:
        """Give files to the page, through the picker or dropped on the drop zone; wait for all."""
        before = self.page.locator(".card").count()
        if drop:
            payload = [{"name": p.name, "data": base64.b64encode(p.read_bytes()).decode(),
                        "type": "image/png"} for p in files]
            transfer = self.page.evaluate_handle("""files => {
                const transfer = new DataTransfer();
                for (const f of files) {
                    const bytes = Uint8Array.from(atob(f.data), c => c.charCodeAt(0));
                    transfer.items.add(new File([bytes], f.name, {type: f.type}));
                }
                return transfer;
            }""", payload)
            self.page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})
        else:
            self.page.set_input_files("#file-input", [str(p) for p in files])
        total = before + len(files)
        self.wait_until(f"document.querySelectorAll('.card').length === {total} && "
                        "document.querySelectorAll('.card[data-status=\"pending\"]').length === 0")

    def download(self, selector: str, path: Path) -> Path:
        with self.page.expect_download(timeout=TIMEOUT_S * 1000) as info:
            self.page.click(selector)
        info.value.save_as(path)
        return path


def read_zip(path: Path) -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        files = {name: archive.read(name) for name in archive.namelist()}
    manifest = [json.loads(line) for line in files.pop("manifest.jsonl").decode().splitlines()]
    return files, manifest


@dataclass
class Parity:
    images: int = 0
    pixels: int = 0
    off_by_one: int = 0
    max_diff: int = 0


def check_parity(model: Path, inputs: list[Path], files: dict[str, bytes],
                 manifest: list[dict[str, Any]], backend: str) -> Parity:
    """Each download against `Perturber.perturb_image` on the same file; returns the tally."""
    perturber = Perturber(model, device="cpu")
    mode = "L" if perturber.metadata.channels == 1 else "RGB"
    budget = linf_steps(perturber.metadata.eps)
    rows = {row["input"]: row for row in manifest}
    parity = Parity()
    for path in inputs:
        row = rows[path.name]
        assert row["status"] == "ok" and row["backend"] == backend, row
        web = Image.open(io.BytesIO(files[row["output"]]))
        assert web.mode == mode and web.size == Image.open(path).size, (path.name, web.mode)
        ours = np.asarray(web).astype(int)
        python = np.asarray(perturber.perturb_image(Image.open(path))).astype(int)
        clean = np.asarray(Image.open(path).convert(mode)).astype(int)
        diff = np.abs(ours - python)
        assert diff.max() <= 1, f"{path.name}: the page differs from agscm by {diff.max()} levels"
        # Float noise may flip a rounding now and then; a systematic slip would flip many.
        assert (diff > 0).mean() <= 0.01, f"{path.name}: {(diff > 0).sum()} values off by one"
        assert np.abs(ours - clean).max() <= budget  # the L-inf bound holds in 8 bits
        if clean.size >= 64:  # a real perturbation, so equality is not trivially true
            assert (ours != clean).mean() > 0.2, f"{path.name}: the generator changed too little"
        # The manifest's measures are those of the PNG as downloaded.
        delta = (ours - clean) / 255
        assert row["linf"] == pytest.approx(np.abs(delta).max(), abs=1e-12)
        assert row["l2"] == pytest.approx(np.sqrt((delta**2).sum()), rel=1e-9)
        assert row["size"] == list(web.size)
        parity.images += 1
        parity.pixels += diff.size
        parity.off_by_one += int((diff == 1).sum())
        parity.max_diff = max(parity.max_diff, int(diff.max()))
    return parity


def assert_local_only(requests: list[str], served: Served) -> None:
    outside = [url for url in requests
               if not url.startswith(served.url) and not url.startswith(("blob:", "data:"))]
    assert not outside, f"requests outside 127.0.0.1: {outside}"
    assert {client for client, _ in served.log} <= {"127.0.0.1"}


# ---- the tests --------------------------------------------------------------------------------

def test_page_matches_the_python_runtime_offline_and_local(
        playwright: Any, served: Served, images: dict[str, list[Path]], tmp_path: Path) -> None:
    context = launch(playwright, tmp_path / "profile", CHROMIUM_FLAGS)
    outside_log: list[tuple[str, str]] = []
    outside = serve(tmp_path, outside_log)  # another origin the page must not reach
    try:
        tally = {}
        for name, expectations in (("mnist", {"eps": "0.3000 L-inf", "channels": "1 (grey)",
                                               "dataset": "mnist", "sources": "tiny-natural"}),
                                   ("cifar", {"eps": "0.03137 L-inf (8/255", "channels": "3 (RGB)",
                                              "dataset": "random"})):
            page = Page(context, f"{served.url}{name}/")
            state, text, backend = page.status()
            assert state == "ready", text
            assert backend == "wasm" and "WASM" in text and "WebGPU not used: " in text, text
            for key, expected in expectations.items():
                shown = page.page.locator(f'#metadata dd[data-key="{key}"]').inner_text()
                assert expected in shown, (key, shown)

            context.set_offline(True)  # loaded: from here on the page must need no network
            inputs = images[name]
            broken = tmp_path / "broken.png"
            broken.write_bytes(b"this is not an image")
            page.add(inputs[:5], drop=True)
            page.add([*inputs[5:], broken])
            assert page.page.locator("#summary").get_attribute("data-failed") == "1"
            failed = page.page.locator('.card[data-status="failed"] .notes').inner_text()
            assert "not an image this browser can decode" in failed

            notes = page.page.locator(".card .notes").all_inner_texts()
            if name == "mnist":
                assert sum("colour converted to grey" in n for n in notes) == 3
            else:
                assert sum("one channel copied into R, G and B" in n for n in notes) == 2
            assert sum("reflect-padded" in n for n in notes) >= 2

            files, manifest = read_zip(page.download("#download-all", tmp_path / f"{name}.zip"))
            assert len(files) == len(inputs) and len(manifest) == len(inputs) + 1
            assert [row for row in manifest if row["status"] == "failed"][0]["input"] == "broken.png"
            single = page.download(".card button.download", tmp_path / "single.png")
            assert single.read_bytes() == files[manifest[0]["output"]]
            tally[name] = check_parity(served.models[name], inputs, files, manifest, "wasm")

            # The page's security policy stops it from reaching any other origin, even here.
            context.set_offline(False)
            attempt = page.page.evaluate("""async url => {
                const violations = [];
                document.addEventListener("securitypolicyviolation",
                                          event => violations.push(event.effectiveDirective));
                let outcome = "fetched";
                try { await fetch(url); } catch (error) { outcome = "refused"; }
                await new Promise(resolve => setTimeout(resolve, 100));
                return {outcome, violations};
            }""", f"http://127.0.0.1:{outside.server_address[1]}/leak")
            assert attempt == {"outcome": "refused", "violations": ["connect-src"]}
            assert not page.errors, page.errors
            assert_local_only(page.requests, served)
            page.page.close()
        time.sleep(0.5)
        assert outside_log == []
        assert {name: parity.images for name, parity in tally.items()} == {"mnist": 26, "cifar": 24}
        for name, parity in tally.items():
            print(f"\nparity {name} (WASM): {parity.images} images, {parity.pixels} values, "
                  f"{parity.off_by_one} off by one level, max diff {parity.max_diff}")
    finally:
        context.close()
        outside.shutdown()
        outside.server_close()


def test_webgpu_backend_matches_too(playwright: Any, served: Served,
                                   images: dict[str, list[Path]], tmp_path: Path) -> None:
    """The RGB model only: SwiftShader compiles WebGPU shaders slowly (about 10 s a site)."""
    context = launch(playwright, tmp_path / "profile", SWIFTSHADER_WEBGPU_FLAGS)
    try:
        page = Page(context, f"{served.url}cifar/?backend=webgpu")
        state, text, backend = page.status()
        if state == "error" and "no WebGPU adapter" in text:
            pytest.skip(f"this Chromium offers no WebGPU adapter on SwiftShader: {text}")
        assert state == "ready" and backend == "webgpu", text
        assert "WebGPU (adapter: " in text
        # Two CIFAR-10 images, an odd-sized crop, and an MNIST digit (grey into RGB).
        inputs = [*images["cifar"][:2], images["cifar"][-4], images["cifar"][-1]]
        page.add(inputs)
        files, manifest = read_zip(page.download("#download-all", tmp_path / "cifar.zip"))
        parity = check_parity(served.models["cifar"], inputs, files, manifest, "webgpu")
        print(f"\nparity cifar (WebGPU on SwiftShader): {parity.images} images, "
              f"{parity.off_by_one} of {parity.pixels} values off by one level, "
              f"max diff {parity.max_diff}")
        assert not page.errors, page.errors
        assert_local_only(page.requests, served)
    finally:
        context.close()


def test_screenshot(playwright: Any, served: Served, images: dict[str, list[Path]],
                    tmp_path: Path) -> None:
    context = launch(playwright, tmp_path / "profile", CHROMIUM_FLAGS)
    try:
        page = Page(context, f"{served.url}mnist/")
        page.add([*images["mnist"][:2], images["mnist"][20], images["mnist"][-1]])
        shot = tmp_path / "web.png"
        page.page.screenshot(path=str(shot), full_page=True)
    finally:
        context.close()
    picture = np.asarray(Image.open(shot).convert("L"))
    assert picture.shape[1] == 1200 and picture.shape[0] > 900
    assert picture.std() > 20  # text and images, not a blank page
    if os.environ.get(SCREENSHOT_ENV):
        Path(os.environ[SCREENSHOT_ENV]).write_bytes(shot.read_bytes())
