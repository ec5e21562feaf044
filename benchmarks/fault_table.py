"""Issue 31's training-side cases against two commits side by side: the table of docs/RESULTS.md.

    python benchmarks/fault_table.py [--baseline 469672e] [--out benchmarks/results/training_faults.json]
    python benchmarks/fault_table.py --only cache_on_a_full_disk   # rerun cases into the JSON

The baseline commit's source and this checkout each run on this venv's dependencies (the
source is put first on PYTHONPATH), each with a `tiny` MNIST model it trained itself; every case
of tests/training_faults.py runs against each in a fresh folder with real MNIST. Prints the
Markdown table and writes the JSON. Cases that need root (a small tmpfs) say "not run" where
this machine cannot build their layout.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from side_by_side import case_row, report  # noqa: E402
from training_faults import CASES, ZOO_CHECK, FaultEnv, tiny_zoo  # noqa: E402

DATA = Path(os.environ.get("AGSCM_DATA", REPO.parent / "shared" / "data"))


def source_of(revision: str | None, target: Path) -> Path:
    """The package source of `revision` (None: this checkout as it is) under `target`."""
    if revision is None:
        return REPO
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "agscm"],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def zoo_check_of(agscm: list[str], env: dict[str, str], work: Path) -> tuple[str, ...]:
    """The cases' short per-epoch test check, where this version's `zoo train` has it (the
    baseline may not: its zoo runs then check all 10,000 test images, only slower). Run in
    `work`, where no checkout's own folder shadows $PYTHONPATH."""
    shown = subprocess.run([*agscm, "zoo", "train", "--help"], capture_output=True, text=True,
                           env={**env, "COLUMNS": "200"}, cwd=work).stdout
    return ZOO_CHECK if "--test-limit" in shown else ()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="469672e")
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks/results/training_faults.json")
    parser.add_argument("--only", nargs="*", choices=[case.__name__ for case in CASES],
                        help="run these cases and keep the other rows of --out as they are")
    args = parser.parse_args()
    agscm = [sys.executable, "-m", "agscm"]
    kept = {}
    if args.only and args.out.is_file():
        previous = json.loads(args.out.read_text())
        if previous["baseline"] == args.baseline:
            kept = {row["case"]: row for row in previous["cases"]}
    rows = []
    with tempfile.TemporaryDirectory(prefix="agscm-faults-") as work_dir:
        work = Path(work_dir)
        installs = {}
        for name, revision in (("before", args.baseline), ("after", None)):
            env = {**os.environ, "OMP_NUM_THREADS": "1", "AGSCM_THREADS": "1",
                   "PYTHONPATH": str(source_of(revision, work / f"src-{name}")),
                   "AGSCM_CACHE": str(work / f"cache-{name}")}
            check = zoo_check_of(agscm, env, work)
            installs[name] = (env, tiny_zoo(agscm, env, DATA / "mnist", work / f"zoo-{name}",
                                            check), check)

        def make_env(version: str, folder: Path) -> FaultEnv:
            env, zoo, check = installs[version]
            return FaultEnv(agscm, folder, DATA / "mnist", zoo, env, zoo_check=check)

        for case in CASES:
            if args.only and case.__name__ not in args.only:
                if case.__name__ in kept:
                    rows.append(kept[case.__name__])
                continue
            rows.append(case_row(case, installs, work, make_env))
    report(rows, args.baseline, args.out)


if __name__ == "__main__":
    main()
