"""Print the Markdown tables of docs/MODELS.md from the files they report: the committed zoo's
catalog and the shipped generators' cards (torch-free).

    python benchmarks/models_tables.py            # both tables
    python benchmarks/models_tables.py --check docs/MODELS.md   # exit 1 if the doc differs

`--check` regenerates each table and looks for it, line for line, in the document, so a number
edited by hand in the doc (or a catalog changed without the doc) fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agscm.models.catalog import read_catalog
from agscm.runtime.pretrained import Shelf

REPO = Path(__file__).resolve().parents[1]


def percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def zoo_table(zoo: Path) -> str:
    rows = ["| model | kind | architecture | epochs | clean | noise | PGD | MB | sha256 |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in read_catalog(zoo).items():
        test = entry["test"]
        rows.append(f"| `{name}` | {entry['kind']} | {entry['architecture']} | "
                    f"{entry['training']['epochs']} | {percent(test['clean_acc'])} | "
                    f"{percent(test['noise_acc'])} | {percent(test['attack_acc'])} | "
                    f"{entry['size_bytes'] / 1e6:.1f} | `{entry['sha256'][:12]}` |")
    return "\n".join(rows)


def card_table(name: str) -> str:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zoo", type=Path, default=REPO / "zoo")
    parser.add_argument("--cards", nargs="*", default=None,
                        help="shipped generators to tabulate [default: all]")
    parser.add_argument("--check", type=Path, default=None)
    args = parser.parse_args()
    names = args.cards if args.cards is not None else [c.name for c in Shelf.open().cards]
    tables = [zoo_table(args.zoo), *(card_table(name) for name in names)]
    if args.check is None:
        print("\n\n".join(tables))
        return
    text = args.check.read_text()
    stale = [table.splitlines()[0] for table in tables if table not in text]
    if stale:
        sys.exit(f"{args.check}: {len(stale)} table(s) differ from their files; regenerate with "
                 f"python benchmarks/models_tables.py (first: {stale[0]})")
    print(f"{args.check}: {len(tables)} tables match their files")


if __name__ == "__main__":
    main()
