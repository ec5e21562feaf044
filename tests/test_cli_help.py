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


def test_every_device_option_defaults_to_auto() -> None:
    devices = {}
    for path in COMMANDS:
        command = typer.main.get_command(app)
        for name in path:
            command = command.commands[name]  # type: ignore[attr-defined]
        for param in command.params:
            if param.name == "device":
                devices[" ".join(path)] = param.default
    assert {"perturb", "info", "demo", "train", "zoo train", "evaluate"} <= set(devices)
    # reproduce keeps None so that its recorded command line shows only what was given
    assert {path: default for path, default in devices.items() if default != "auto"} == {
        "reproduce mnist": None, "reproduce cifar10": None}


def test_auto_device_is_cuda_only_when_torch_sees_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from agscm.commands.options import resolve_torch_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_torch_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_torch_device("auto") == "cuda"
    assert resolve_torch_device("cuda:1") == "cuda:1" and resolve_torch_device("cpu") == "cpu"


def test_reproduce_has_one_command_per_data_set_spec() -> None:
    from agscm.commands.evaluate import REPRODUCIBLE
    from agscm.eval.datasets import SPECS

    assert list(REPRODUCIBLE) == list(SPECS)
    assert {path[1] for path in COMMANDS if path[:1] == ("reproduce",) and len(path) == 2} == set(
        SPECS)


def test_an_error_of_the_operating_system_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from agscm.errors import one_line_errors

    @one_line_errors
    def command() -> None:
        open("/nonexistent-agscm-folder/file.txt")  # noqa: SIM115

    with pytest.raises(SystemExit) as exit_info:
        command()
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (
        "error: /nonexistent-agscm-folder/file.txt: No such file or directory\n")
