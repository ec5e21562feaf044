"""Every command's --help, found by walking the typer app: an example, and flags shown plain."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from agscm.cli import app


def _walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path below `command` (a group has `commands`), itself first."""
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, (*path, name))


COMMANDS = list(_walk(typer.main.get_command(app)))


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(path) for path in COMMANDS}
    assert {"", "zoo", "zoo train", "zoo list", "train", "attack", "evaluate", "sweep",
            "reproduce", "reproduce mnist", "export", "info", "perturb", "demo"} <= names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(("agscm", *path)))
def test_help_has_an_example_of_the_command_and_plain_flags(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"Example: {' '.join(('agscm', *path))} " in result.output
    assert "<bool>" not in result.output  # a flag takes no value, so none is shown


@pytest.mark.parametrize("path", [p for p in COMMANDS if p], ids=" ".join)
def test_the_summary_in_the_command_list_is_one_line(path: tuple[str, ...]) -> None:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    summary = inspect.cleandoc(command.help or "").split("\n\n")[0]
    assert summary and "\n" not in summary
