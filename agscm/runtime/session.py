"""onnxruntime sessions: pick providers from `--device` (or an explicit list) and tune the options.

`auto` takes CUDA when this onnxruntime has it, else CPU, and says which it got; `cuda` fails
loudly instead of falling back, because a silent CPU run of a GPU job wastes hours. Threads come
from the caller, else `$AGSCM_THREADS`, else onnxruntime's default (one per physical core).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from agscm.contract import INPUT_NAME, OUTPUT_NAME, SUPPORTED_CHANNELS, GeneratorMetadata
from agscm.errors import AgscmError

DEVICES = ("auto", "cpu", "cuda")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
THREADS_ENV = "AGSCM_THREADS"
# What onnxruntime raises for a model it cannot load or run (derived from Exception directly).
ORT_ERRORS = (ort_state.Fail, ort_state.InvalidProtobuf, ort_state.InvalidGraph,
               ort_state.InvalidArgument, ort_state.NoSuchFile, ort_state.NotImplemented,
               ort_state.RuntimeException)


def choose_providers(device: str = "auto", providers: Sequence[str] | None = None) -> list[str]:
    """The provider list for `device`, or `providers` checked against what is installed."""
    available = ort.get_available_providers()
    if providers:
        missing = [p for p in providers if p not in available]
        if missing:
            raise AgscmError(f"provider(s) {', '.join(missing)} not available in this "
                             f"onnxruntime (available: {', '.join(available)})")
        return list(providers)
    if device not in DEVICES:
        raise AgscmError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "cuda" and CUDA not in available:
        raise AgscmError(f"--device cuda: {CUDA} is not available (onnxruntime has "
                         f"{', '.join(available)}); install the gpu extra (onnxruntime-gpu "
                         "instead of onnxruntime) or use --device cpu")
    if device == "cpu" or CUDA not in available:
        return [CPU]
    return [CUDA, CPU]


def resolve_threads(threads: int | None = None) -> int:
    """Intra-op threads: the argument, else `$AGSCM_THREADS`, else 0 (onnxruntime decides)."""
    if threads is None:
        value = os.environ.get(THREADS_ENV, "0")
        try:
            threads = int(value)
        except ValueError:
            raise AgscmError(f"${THREADS_ENV}={value!r} is not a whole number") from None
    if threads < 0:
        raise AgscmError(f"threads must be >= 0 (0 = one per core), got {threads}")
    return threads


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """Options measured to beat torch eager on this generator (benchmarks/bench_runtime.py).

    Full graph optimisation fuses Conv+Relu and folds constants; one inter-op thread because
    the graph is a chain; no spin-waiting, so idle inference threads leave the cores to the
    image decoders and encoders that run beside them.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = resolve_threads(threads)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: warnings about unused initializers are noise
    return options


def make_session(path: Path, device: str = "auto", providers: Sequence[str] | None = None,
                 threads: int | None = None) -> ort.InferenceSession:
    """An InferenceSession for `path`; a file onnxruntime cannot load is a one-line AgscmError."""
    if not path.is_file():
        raise AgscmError(f"{path}: model file not found")
    chosen = choose_providers(device, providers)
    try:
        session = ort.InferenceSession(str(path), session_options(threads), providers=chosen)
    except ORT_ERRORS as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AgscmError(f"{path}: not a loadable ONNX model ({reason})") from None
    strict = bool(providers) or device == "cuda"
    if strict and chosen[0] not in session.get_providers():  # else a silent fallback
        raise AgscmError(f"{path}: {chosen[0]} could not start (got "
                         f"{', '.join(session.get_providers())}); check the CUDA/cuDNN install "
                         "or use --device cpu")
    return session


def validate_session(session: ort.InferenceSession, path: Path) -> GeneratorMetadata:
    """The metadata of a loaded generator, after its inputs, outputs and metadata kept the
    contract; else a one-line AgscmError naming `path`."""
    inputs = session.get_inputs()
    outputs = [o.name for o in session.get_outputs()]
    names = [i.name for i in inputs]
    if names != [INPUT_NAME] or OUTPUT_NAME not in outputs:
        raise AgscmError(f"{path}: not an agscm generator (inputs {names}, outputs "
                         f"{outputs}; expected input {INPUT_NAME!r} and output "
                         f"{OUTPUT_NAME!r})")
    try:
        props = session.get_modelmeta().custom_metadata_map
        metadata = GeneratorMetadata.from_props(props)
    except ValueError as exc:
        raise AgscmError(f"{path}: not an agscm generator ({exc})") from None
    shape = inputs[0].shape
    if inputs[0].type != "tensor(float)" or len(shape) != 4:
        raise AgscmError(f"{path}: input {INPUT_NAME!r} must be float32 NCHW, got "
                         f"{inputs[0].type} {shape}")
    if metadata.channels not in SUPPORTED_CHANNELS:
        raise AgscmError(f"{path}: {metadata.channels}-channel generators are not "
                         f"supported (only {', '.join(map(str, SUPPORTED_CHANNELS))})")
    if isinstance(shape[1], int) and shape[1] != metadata.channels:
        raise AgscmError(f"{path}: input has {shape[1]} channels but the metadata says "
                         f"{metadata.channels}")
    return metadata
