"""`agscm models`: the generators shipped inside the package, with their cards (torch-free)."""

from __future__ import annotations

from typing import Annotated

import typer

from agscm.errors import one_line_errors

COLUMNS = ("name", "channels", "eps / norm", "default", "dataset", "recipe", "size", "sources")
SOURCES_MIN = 12  # the narrowest the wrapped sources get


def print_shelf() -> None:
    """The shipped generators as a table (also `agscm info` without a file): every name whole;
    the sources wrap, and on a narrow terminal the columns that do not fit are left out."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from agscm.runtime.pretrained import Shelf

    shelf = Shelf.open()
    console = Console()
    if not shelf.cards:
        console.print(f"no shipped generators in {shelf.folder}", markup=False, highlight=False,
                      soft_wrap=True)
        return
    rows = [[card.name, str(card.channels), f"{card.eps:.4g} {card.norm}",
             "yes" if card.default else "", card.dataset, card.recipe,
             f"{card.size_bytes / 1e6:.2f} MB", ", ".join(card.sources)] for card in shelf.cards]
    widths = [max(len(header), *(len(row[i]) for row in rows)) for i, header in enumerate(COLUMNS)]
    widths[-1] = min(widths[-1], SOURCES_MIN)
    count = len(COLUMNS)
    while count > 1 and sum(widths[:count]) + 3 * count > console.width:  # padding, rules
        count -= 1
    table = Table(title=f"shipped generators ({shelf.folder})", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for index, header in enumerate(COLUMNS[:count]):
        table.add_column(header, min_width=widths[index], no_wrap=header != "sources",
                         overflow="fold")
    for row in rows:
        table.add_row(*row[:count])
    console.print(table)
    left_out = f" ({', '.join(COLUMNS[count:])} left out: too narrow)" if count < len(COLUMNS) else ""
    console.print(f"agscm models NAME prints one whole card{left_out}", markup=False,
                  highlight=False, soft_wrap=True)


@one_line_errors
def models(
    name: Annotated[str | None, typer.Argument(
        help="A shipped generator: print its whole card (default: list them all).")] = None,
) -> None:
    """List the generators shipped inside the package, or print one's card.

    Each is an exported generator (NAME.onnx) with its card (NAME.json): what it was trained
    on and against, what transfer it measured, how fast it crafts. Its sha256 is checked
    against the card before use. $AGSCM_PRETRAINED names another folder of the same layout.

    Example: agscm models  (the list; agscm models NAME prints one whole card)
    """
    if name is None:
        print_shelf()
        return
    import json

    from rich.console import Console

    from agscm.runtime.pretrained import Shelf

    shelf = Shelf.open()
    path = shelf.verified_path(name)
    console = Console()
    console.print(json.dumps(shelf.card(name).to_json(), indent=2), markup=False,
                  highlight=False, soft_wrap=True)
    console.print(f"file: {path} (sha256 matches the card)", markup=False, highlight=False,
                  soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("models")(models)
