"""The Python API of the torch-free runtime: arrays, images or folders in, adversarial out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from agscm.contract import GeneratorMetadata
from agscm.errors import AgscmError
from agscm.runtime.batches import perturb_images
from agscm.runtime.folder import FolderOptions, FolderSummary, perturb_folder
from agscm.runtime.images import from_pil, to_pil
from agscm.runtime.manifest import FileRecord
from agscm.runtime.model import GeneratorModel
from agscm.runtime.tiles import DEFAULT_TILE


class Perturber:
    """Apply an exported AEG-GC generator.

    `model` is an ONNX file (agscm export) or a shipped generator's name (`agscm models`).

    Example:
        perturber = Perturber("G.onnx", device="auto")
        adversarial = perturber.perturb_array(x)  # float32 (N, C, H, W) in [0, 1]
        perturber.perturb_folder("photos", "photos-adv")
    """

    def __init__(self, model: str | Path, device: str = "auto",
                 providers: Sequence[str] | None = None, threads: int | None = None) -> None:
        self.model = GeneratorModel(model, device, providers, threads)

    @property
    def metadata(self) -> GeneratorMetadata:
        return self.model.metadata

    @property
    def provider(self) -> str:
        """The execution provider the session got (what `device="auto"` chose)."""
        return self.model.provider

    def perturb_array(self, images: np.ndarray) -> np.ndarray:
        """float32 (N, C, H, W) in [0, 1], any H and W -> adversarial images, same shape.

        One model call on the whole batch, as the ONNX contract defines it (no tiling); a
        float32 C-contiguous batch whose sides are multiples of 4 is passed without a copy.
        """
        return self.model.run(images)

    def perturb_image(self, image: Image.Image, tile: int = DEFAULT_TILE) -> Image.Image:
        """A Pillow image -> its adversarial version in the model's mode (alpha kept), in
        tiles of at most `tile` pixels a side (0: whole), as `agscm perturb` does it."""
        pixels = from_pil(image, self.model.mode)
        output = perturb_images(self.model, [pixels.values], tile, batch_size=1)[0]
        if isinstance(output, str):
            raise AgscmError(output)
        return to_pil(output, pixels.alpha)

    def perturb_folder(self, source: str | Path, destination: str | Path,
                       options: FolderOptions | None = None,
                       on_start: Callable[[int], None] | None = None,
                       on_record: Callable[[FileRecord], None] | None = None) -> FolderSummary:
        """Mirror `source` into `destination` with adversarial images; see FolderOptions.

        With worker processes (the default on more than one core) a script calling this
        needs the usual `if __name__ == "__main__":` guard; `FolderOptions(workers=0)`
        runs everything in this process.
        """
        return perturb_folder(self.model, Path(source), Path(destination), options, on_start,
                              on_record)

