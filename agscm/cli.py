"""The `agscm` command line: a thin typer app; each verb lives in `agscm.commands.<module>`.

Heavy imports (torch, onnx) happen inside the commands that need them, so `agscm --version`,
`agscm info` and `agscm perturb` never import torch.
"""

from __future__ import annotations

from typing import Annotated

import typer

from agscm import __version__
from agscm.commands import attack, demo, evaluate, export, models, runtime, train, web, zoo

app = typer.Typer(
    name="agscm",
    help="Transferable adversarial examples from a Grad-CAM guided generator (AEG-GC).\n\n"
         "Example: agscm demo --quick  (the whole story, offline)",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"agscm {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """agscm: train AEG-GC generators, measure transfer, export to ONNX, perturb folders."""


for module in (zoo, train, attack, evaluate, export, runtime, models, web, demo):
    module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
