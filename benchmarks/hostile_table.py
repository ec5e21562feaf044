"""Issue 12's cases against two installs side by side: the before/after table of docs/RESULTS.md.

    python benchmarks/hostile_table.py [--baseline 171fe7a] [--out benchmarks/results/hostile.json]

The baseline commit and this checkout are each installed alone (base install: no torch, no
onnx) in a fresh venv; every case of tests/hostile_cases.py runs against each, in a fresh
folder, with the same models and real CIFAR-10 JPEGs. Prints the Markdown table and writes
the JSON. Cases that need root (a tmpfs, a read-only bind mount, chattr) say "not run"
where this machine cannot build their layout.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from bench_runtime import base_venv, checkout_copy  # noqa: E402
from hostile_cases import CASES, CaseEnv, extract_jpegs, make_models  # noqa: E402
from side_by_side import case_row, report  # noqa: E402

DATA = Path(os.environ.get("AGSCM_DATA", REPO.parent / "shared" / "data"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="171fe7a")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/hostile.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agscm-hostile-") as work_dir:
        work = Path(work_dir)
        models = make_models(work)
        jpegs = extract_jpegs(DATA / "cifar10-jpeg.tar.gz", work / "jpegs")
        installs = {name: base_venv(checkout_copy(revision, work / f"src-{name}"),
                                    work / f"venv-{name}")
                    for name, revision in (("before", args.baseline), ("after", None))}

        def make_env(version: str, folder: Path) -> CaseEnv:
            return CaseEnv([str(installs[version])], folder, models, jpegs,
                           work / "jpegs" / "test")

        rows = [case_row(case, installs, work, make_env) for case in CASES]
    report(rows, args.baseline, args.out)


if __name__ == "__main__":
    main()
