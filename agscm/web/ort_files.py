"""The onnxruntime-web files a site needs, pinned by version and checksum.

They come from the npm package, installed by `npm ci --prefix web` in a checkout (web/package.json
and its lock pin the version; npm checks the tarball's integrity), or from any folder holding
that release's `dist/` (`--ort-dist`, `$AGSCM_ORT_WEB`). The checksums below make sure a site is
built from exactly the files the browser test ran; nothing is fetched at run time.
"""

from __future__ import annotations

import os
from pathlib import Path

from agscm.digest import file_digest
from agscm.errors import AgscmError

ORT_VERSION = "1.30.0"
# The WebGPU build: one module with both execution providers (webgpu and wasm) on one binary.
ORT_MODULE = "ort.webgpu.min.mjs"
ORT_FILES = {
    ORT_MODULE: "3dffff71811bc13a3a3d9591c57ca5ee5735b8f5f3eaf789510b02bb040ae3a0",
    "ort-wasm-simd-threaded.asyncify.mjs":
        "3d1c85995364bb643302fc6fd877a0c3ba5ae72401815e0f24828a53d9191e28",
    "ort-wasm-simd-threaded.asyncify.wasm":
        "39f9f0894d478800487ed9f7dbe92618498db320cf55c8e3d89adff8dce658da",
}
ENV_VAR = "AGSCM_ORT_WEB"
CHECKOUT_DIST = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "onnxruntime-web" / "dist"
INSTALL_HINT = (f"run `npm ci --prefix web` in the agscm repository, or `npm install "
                f"onnxruntime-web@{ORT_VERSION}` anywhere and pass --ort-dist "
                "node_modules/onnxruntime-web/dist")


def locate_ort_dist(ort_dist: Path | None = None) -> Path:
    """The folder holding the pinned files: the argument, else $AGSCM_ORT_WEB, else the
    checkout's web/node_modules; each file is checked against its pinned sha256."""
    if ort_dist is None and os.environ.get(ENV_VAR):
        ort_dist = Path(os.environ[ENV_VAR])
    folder = ort_dist if ort_dist is not None else CHECKOUT_DIST
    if not folder.is_dir():
        where = f"{folder}: not a folder" if ort_dist is not None else f"not found at {folder}"
        raise AgscmError(f"onnxruntime-web {ORT_VERSION} {where}; {INSTALL_HINT}")
    for name, expected in ORT_FILES.items():
        path = folder / name
        if not path.is_file():
            raise AgscmError(f"{path}: missing; is {folder} onnxruntime-web {ORT_VERSION}'s dist "
                             f"folder? {INSTALL_HINT}")
        if file_digest(path) != expected:
            raise AgscmError(f"{path}: not the file of onnxruntime-web {ORT_VERSION} (sha256 "
                             f"differs); the page is tested with exactly that release. "
                             f"{INSTALL_HINT}")
    return folder
