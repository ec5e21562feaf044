"""The documents' marked tables equal the files they report (benchmarks/doc_tables.py): a
number edited by hand, or a result file changed without its document, fails here. And the
README leads: its first table is the shipped generator's, on a full test set."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "doc_tables.py"
README_LEAD_LINES = 150  # issue 30: at most this many lines before the first link into docs/


def check(*documents: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, documents)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)


def test_every_marked_table_matches_its_files() -> None:
    result = check()
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"[1-9]\d* marked tables", result.stdout), result.stdout


def test_a_hand_edited_regenerated_table_fails(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    table = subprocess.run([sys.executable, str(SCRIPT), "--render", "card", "mnist-transfer"],
                           capture_output=True, text=True, cwd=REPO, timeout=60,
                           check=True).stdout
    row = next(line for line in table.splitlines() if line.startswith("| pgd"))
    assert row in readme
    edited = tmp_path / "README.md"
    edited.write_text(readme.replace(row, row.replace("%", "1%", 1)))
    result = check(edited)
    assert result.returncode == 1 and "differs from its file" in result.stderr


def test_a_number_not_in_the_cited_file_fails(tmp_path: Path) -> None:
    cited = "benchmarks/results/shipped_mnist_table.json"
    document = tmp_path / "doc.md"
    honest = (f"<!-- numbers: {cited} -->\n| target | PGD |\n|---|---|\n"
              "| `mnist-mlp-natural` | 40.59% |\n")
    document.write_text(honest)
    assert check(document).returncode == 0
    document.write_text(honest.replace("40.59%", "40.58%"))
    result = check(document)
    assert result.returncode == 1 and "40.58%" in result.stderr and cited in result.stderr


def test_readme_leads_with_the_shipped_generator_on_a_full_test_set() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    first_link = next(i for i, line in enumerate(lines) if "](docs/" in line)
    assert first_link <= README_LEAD_LINES
    first_table = next(i for i, line in enumerate(lines) if line.startswith("|"))
    marker = re.fullmatch(r"<!-- table: card (\S+) -->", lines[first_table - 1])
    assert marker, "the README's first table is not a shipped generator's card table"
    card = json.loads((REPO / "agscm" / "pretrained" / f"{marker[1]}.json").read_text())
    assert card["transfer"]["images"] == 10000  # MNIST's whole test set
