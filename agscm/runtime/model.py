"""A validated generator model: an onnxruntime session plus the metadata `agscm export` wrote.

Checked on load, so a wrong file fails once with a clear line instead of once per image:
the input/output names of the contract, agscm metadata, and a channel count the runtime can feed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agscm.contract import INPUT_NAME, OUTPUT_NAME, SUPPORTED_CHANNELS
from agscm.errors import AgscmError
from agscm.runtime.arrays import pad_to_multiple
from agscm.runtime.pretrained import check_card, resolve_model
from agscm.runtime.session import make_session, validate_session


class GeneratorModel:
    """An exported AEG-GC generator, ready to run on float32 NCHW batches of any size.

    `path` is an ONNX file, or the name of a shipped generator (agscm.runtime.pretrained: a
    string that is no existing path and has no .onnx suffix), whose file is checked against its
    card; `card` is then that card, else None.
    """

    def __init__(self, path: str | Path, device: str = "auto",
                 providers: Sequence[str] | None = None, threads: int | None = None) -> None:
        self.path, self.card = resolve_model(path)
        self.device, self.threads = device, threads  # worker processes open the same way
        self.session = make_session(self.path, device, providers, threads)
        self.metadata = validate_session(self.session, self.path)
        if self.card is not None:
            check_card(self.card, self.metadata, self.path)
        self.provider = self.session.get_providers()[0]

    @property
    def channels(self) -> int:
        return self.metadata.channels

    @property
    def linf_eps(self) -> float | None:
        """The L-inf budget that 8-bit outputs must keep, or None for an L2 generator."""
        return self.metadata.eps if self.metadata.norm == "linf" else None

    @property
    def mode(self) -> str:
        """The Pillow mode images are converted to before they reach the model."""
        return SUPPORTED_CHANNELS[self.channels]

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Adversarial images for a float32 NCHW [0,1] batch of any H, W (padded, cropped back)."""
        if batch.ndim != 4 or batch.shape[1] != self.channels:
            raise AgscmError(f"expected a float32 batch (N, {self.channels}, H, W), got shape "
                             f"{batch.shape}")
        height, width = batch.shape[-2:]
        padded = pad_to_multiple(np.asarray(batch, dtype=np.float32), self.metadata.size_multiple)
        output = self.session.run([OUTPUT_NAME], {INPUT_NAME: padded})[0]
        return output[..., :height, :width]
