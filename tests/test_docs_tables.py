"""docs/MODELS.md's tables are regenerated from the files they report (zoo/catalog.json and the
shipped cards) by benchmarks/models_tables.py; a number edited by hand, or a file changed
without the doc, fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "models_tables.py"


def test_models_doc_tables_match_their_files() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--check", "docs/MODELS.md"],
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_hand_edited_number_fails_the_check(tmp_path: Path) -> None:
    doc = (REPO / "docs" / "MODELS.md").read_text()
    table = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                           cwd=REPO, timeout=60, check=True).stdout
    row = next(line for line in table.splitlines() if line.startswith("| `"))
    assert row in doc
    edited = tmp_path / "MODELS.md"
    edited.write_text(doc.replace(row, row.replace("%", "1%", 1)))
    result = subprocess.run([sys.executable, str(SCRIPT), "--check", str(edited)],
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 1 and "differ from their files" in result.stderr
