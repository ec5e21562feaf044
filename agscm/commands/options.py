"""Options shared by the torch commands: one `--device`, with the runtime's default (auto), and
the training steps' `--precision`."""

from __future__ import annotations

from typing import Annotated

import typer


def resolve_torch_device(value: str) -> str:
    """`auto` -> `cuda` when torch sees a GPU, else `cpu`; any other name is passed to torch."""
    if value != "auto":
        return value
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


TorchDevice = Annotated[str, typer.Option(
    callback=resolve_torch_device,
    help="torch device: auto (CUDA when available, else CPU), cpu, cuda or cuda:N.")]

PRECISION_HELP = ("Training steps in fp32, or bf16 (bfloat16 autocast on channels-last tensors; "
                  "2-3x faster on a CPU with AVX-512 BF16); a resumed run may change it, and "
                  "each epoch records it.")
ZooPrecision = Annotated[str | None, typer.Option(
    "--precision", help=f"{PRECISION_HELP} \\[default: bf16 on CUDA, fp32 on CPU]")]
GeneratorPrecision = Annotated[str, typer.Option(
    "--precision", help=f"{PRECISION_HELP} \\[default: fp32; bf16 is untried for "
                        "second-order Grad-CAM]")]
