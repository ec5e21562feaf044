"""Keep the documents' tables equal to the files they report (torch-free).

A table in README.md or docs/*.md that reports a file carries a marker comment on the line
right above it (invisible once rendered):

    <!-- table: zoo zoo -->                  regenerated whole from zoo/catalog.json
    <!-- table: card mnist-transfer -->      regenerated whole from a shipped generator's card
    <!-- numbers: benchmarks/results/x.json [more files] -->
        every number in the table's rows must be a value of those files, shown at the
        table's precision (a percentage as value x 100, or as stored)

    python benchmarks/doc_tables.py                  # check every document, exit 1 on a mismatch
    python benchmarks/doc_tables.py --write README.md   # rewrite the `table:` tables in place
    python benchmarks/doc_tables.py --render card mnist-transfer   # print one table

So a number edited by hand in a document, or a result file changed without its document,
fails `--check` (tests/test_docs_tables.py runs it in CI). A `numbers:` check cannot tell two
values of one file apart: a cell swapped for another value of the same file passes, and a
number in a row's label passes if the file holds it anywhere.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from agscm.models.catalog import read_catalog
from agscm.runtime.pretrained import Shelf

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "docs/*.md")
MARKER = re.compile(r"^<!-- (table|numbers): (.+?) -->$")
# A number standing alone in a cell: not part of a name (PGD-40, ResNet-9, x10) or a code span.
DIGITS = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e-?\d+)?"  # 1,993.9 or 1.7e-06
NUMBER = re.compile(rf"(?<![A-Za-z0-9.\-/`]){DIGITS}%?(?![A-Za-z0-9`]|\.[A-Za-z])")
CODE_SPAN = re.compile(r"`[^`]*`")


def percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def zoo_table(zoo: str) -> str:
    """The committed zoo's catalog: one row per model."""
    rows = ["| model | kind | architecture | epochs | clean | noise | PGD | MB | sha256 |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in read_catalog(REPO / zoo).items():
        test = entry["test"]
        rows.append(f"| `{name}` | {entry['kind']} | {entry['architecture']} | "
                    f"{entry['training']['epochs']} | {percent(test['clean_acc'])} | "
                    f"{percent(test['noise_acc'])} | {percent(test['attack_acc'])} | "
                    f"{entry['size_bytes'] / 1e6:.1f} | `{entry['sha256'][:12]}` |")
    return "\n".join(rows)


def card_table(name: str) -> str:
    """A shipped generator's transfer cells against the baselines from the same source."""
    card = Shelf.open().card(name)
    cells = card.transfer["accuracy"]
    targets = list(card.transfer["clean_accuracy"])
    speeds = card.transfer["crafting_images_per_second"]
    rows = ["| method (from " + ", ".join(f"`{s}`" for s in card.sources) + ") | "
            + " | ".join(f"`{t}`" for t in targets) + " | crafting images/s |",
            "|---|" + "---|" * (len(targets) + 1),
            "| clean | " + " | ".join(percent(card.transfer["clean_accuracy"][t])
                                    for t in targets) + " | |"]
    for method, by_target in cells.items():
        shown = [percent(by_target[t]["accuracy"]) if t in by_target else "" for t in targets]
        shown = [f"_{text}_" if by_target.get(t, {}).get("white_box") else text
                 for text, t in zip(shown, targets, strict=True)]
        rows.append(f"| {method} | " + " | ".join(shown) + f" | {speeds.get(method, ''):,} |")
    return "\n".join(rows)


RENDERERS: dict[str, Callable[[str], str]] = {"zoo": zoo_table, "card": card_table}


@dataclass(frozen=True)
class Table:
    """One marked table of a document: its marker, and the line span of its rows."""

    document: Path
    kind: str  # "table" or "numbers"
    argument: str
    start: int  # index of the table's first line
    end: int  # index after its last line
    lines: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{shown(self.document)}:{self.start + 1}"


def shown(path: Path) -> str:
    """A document's path as the reader gave it: relative to the checkout where it is inside."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def marked_tables(document: Path) -> Iterator[Table]:
    lines = document.read_text().splitlines()
    for index, line in enumerate(lines):
        match = MARKER.match(line.strip())
        if not match:
            continue
        start = end = index + 1
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        if end == start:
            raise SystemExit(f"{document}:{index + 1}: marker with no table right below it")
        yield Table(document, match[1], match[2], start, end, tuple(lines[start:end]))


def render(table: Table) -> str:
    renderer, _, argument = table.argument.partition(" ")
    if renderer not in RENDERERS:
        raise SystemExit(f"{table.where}: unknown table '{renderer}' (known: "
                         f"{', '.join(RENDERERS)})")
    return RENDERERS[renderer](argument.strip())


TEXT_NUMBER = re.compile(DIGITS)


def text_numbers(text: str) -> Iterator[float]:
    for token in TEXT_NUMBER.findall(text):
        yield float(token.replace(",", ""))


def file_numbers(path: Path) -> list[float]:
    """Every number a result file holds: JSON leaves and the numbers inside its strings, or
    any number in the text of another format."""
    text = path.read_text()
    if path.suffix != ".json":
        return list(text_numbers(text))

    def leaves(value: object) -> Iterator[float]:
        if isinstance(value, bool):
            return
        if isinstance(value, (int, float)):
            yield float(value)
        elif isinstance(value, str):
            yield from text_numbers(value)
        elif isinstance(value, dict):
            for item in value.values():
                yield from leaves(item)
        elif isinstance(value, list):
            for item in value:
                yield from leaves(item)

    return list(leaves(json.loads(text)))


def shown_forms(values: list[float], decimals: int) -> set[str]:
    """How the file's values can appear in a table at `decimals` places: as stored, as a
    percentage (value x 100), with or without thousands separators."""
    forms = set()
    for value in values:
        for scaled in (value, 100 * value):
            forms.add(f"{scaled:.{decimals}f}")
    return forms


def cited_numbers(table: Table) -> Iterator[str]:
    for line in table.lines[2:]:  # past the header and the |---| line
        yield from NUMBER.findall(CODE_SPAN.sub(" ", line))


def unsupported_numbers(table: Table) -> list[str]:
    """The numbers of a `numbers:` table that none of its files holds."""
    values: list[float] = []
    for name in table.argument.split():
        path = REPO / name
        if not path.is_file():
            raise SystemExit(f"{table.where}: cites {name}, which does not exist")
        values.extend(file_numbers(path))
    return [token for token in cited_numbers(table) if not held(token, values)]


def held(token: str, values: list[float]) -> bool:
    """Whether a table's number shows one of the file's values at the table's precision."""
    digits = token.rstrip("%").replace(",", "")
    mantissa, _, exponent = digits.partition("e")
    decimals = len(mantissa.partition(".")[2])
    if exponent:
        return any(f"{value:.{decimals}e}" == f"{float(digits):.{decimals}e}" for value in values)
    return digits in shown_forms(values, decimals)


def problems(document: Path) -> list[str]:
    found = []
    for table in marked_tables(document):
        if table.kind == "table":
            if "\n".join(table.lines) != render(table):
                found.append(f"{table.where}: table '{table.argument}' differs from its file; "
                             f"rewrite it with python benchmarks/doc_tables.py --write "
                             f"{shown(table.document)}")
        else:
            missing = unsupported_numbers(table)
            if missing:
                found.append(f"{table.where}: {len(missing)} number(s) not in "
                             f"{table.argument}: {', '.join(missing[:5])}")
    return found


def write(document: Path) -> int:
    lines = document.read_text().splitlines()
    tables = [t for t in marked_tables(document) if t.kind == "table"]
    for table in reversed(tables):
        lines[table.start:table.end] = render(table).splitlines()
    document.write_text("\n".join(lines) + "\n")
    return len(tables)


def documents(names: list[str]) -> list[Path]:
    if names:
        return [Path(name).resolve() for name in names]
    return sorted(path for pattern in DOCUMENTS for path in REPO.glob(pattern))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("documents", nargs="*", help="[default: README.md and docs/*.md]")
    parser.add_argument("--write", action="store_true", help="rewrite the `table:` tables")
    parser.add_argument("--render", nargs=2, metavar=("TABLE", "ARGUMENT"))
    args = parser.parse_args()
    if args.render:
        print(RENDERERS[args.render[0]](args.render[1]))
        return
    paths = documents(args.documents)
    if args.write:
        for path in paths:
            print(f"{shown(path)}: {write(path)} table(s) rewritten")
        return
    found = [problem for path in paths for problem in problems(path)]
    if found:
        sys.exit("\n".join(found))
    count = sum(1 for path in paths for _ in marked_tables(path))
    print(f"{count} marked tables in {len(paths)} documents match their files")


if __name__ == "__main__":
    main()
