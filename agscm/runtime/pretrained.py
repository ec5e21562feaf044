"""Shipped generators: found by name, checked against their cards, chosen for a folder.

A shipped generator is two files of one name in `agscm/pretrained/` (or the folder named by
$AGSCM_PRETRAINED): `NAME.onnx`, an exported generator exactly as `agscm export` writes it, and
`NAME.json`, its card (the fields of `Card`). A card without its file, a file without its card,
a card that breaks the schema, two defaults for one channel count, or a file whose size or
sha256 is not its card's: any lookup stops with one line that names the file and the shipped
names, so a damaged install is never half used.

Where a model is asked for (`Perturber`, `GeneratorModel`, `agscm perturb/info/web --model`), a
string that is not an existing path and has no `.onnx` suffix is a shipped name.

Choosing for a folder (`agscm perturb IN OUT` without --model): every file the folder run would
try (`agscm.runtime.files.walk`, with its skips, over the whole tree whatever the shard) has its
header read by Pillow, no pixels decoded. If every image Pillow can open is grey (`is_grey`:
modes 1, L, LA, I, I;16*, F, or a palette of grey colours only), the shipped 1-channel generator
is used; if any is colour, the 3-channel one, and the grey images are converted to RGB. Files
Pillow cannot open are left for the run to report. Of several shipped generators of one
channel count, the one whose card says `"default": true` is taken.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from PIL import Image

from agscm.atomic import write_json
from agscm.contract import NORMS, SUPPORTED_CHANNELS, GeneratorMetadata
from agscm.digest import file_digest
from agscm.errors import AgscmError
from agscm.runtime.files import walk
from agscm.runtime.images import header_is_grey
from agscm.runtime.session import make_session, validate_session

PRETRAINED_ENV = "AGSCM_PRETRAINED"
PACKAGE_FOLDER = Path(__file__).resolve().parents[1] / "pretrained"
MODEL_SUFFIX, CARD_SUFFIX = ".onnx", ".json"
TRAINING_FIELDS = ("data", "images_seen", "epochs", "command")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


@dataclass(frozen=True)
class Card:
    """What a shipped generator is, how it was made and what it measured (`NAME.json`)."""

    name: str  # the file's stem
    summary: str  # one line
    channels: int  # 1 or 3
    eps: float
    norm: str  # linf or l2
    dataset: str
    sources: list[str]  # zoo models it was trained against
    recipe: str  # paper or transfer
    training: dict[str, Any]  # data, images_seen, epochs, command
    transfer: dict[str, Any]  # measured table cells, free-form, shown as given
    crafting: dict[str, Any]  # e.g. images_per_second and how it was measured
    sha256: str  # of NAME.onnx
    size_bytes: int  # of NAME.onnx
    default: bool = False  # the one taken for its channel count when there are several

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


CARD_FIELDS = tuple(field.name for field in fields(Card))
_OPTIONAL = {"default"}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and "\n" not in value


# field -> (check, what the field must be)
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "name": (lambda v: isinstance(v, str) and bool(_NAME.match(v))
             and not v.lower().endswith(MODEL_SUFFIX), "letters, digits, '.', '_' or '-'"),
    "summary": (_text, "one line of text"),
    "channels": (lambda v: isinstance(v, int) and not isinstance(v, bool)
                 and v in SUPPORTED_CHANNELS, " or ".join(map(str, SUPPORTED_CHANNELS))),
    "eps": (lambda v: _number(v) and v > 0, "a number > 0"),
    "norm": (lambda v: v in NORMS, " or ".join(NORMS)),
    "dataset": (_text, "one line of text"),
    "sources": (lambda v: isinstance(v, list) and all(_text(s) for s in v), "a list of names"),
    "recipe": (_text, "one line of text"),
    "training": (lambda v: isinstance(v, dict) and all(k in v for k in TRAINING_FIELDS),
                 f"an object with {', '.join(TRAINING_FIELDS)}"),
    "transfer": (lambda v: isinstance(v, dict), "an object"),
    "crafting": (lambda v: isinstance(v, dict), "an object"),
    "sha256": (lambda v: isinstance(v, str) and bool(re.fullmatch(r"[0-9a-f]{64}", v)),
               "64 lowercase hex digits"),
    "size_bytes": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
                   "a whole number > 0"),
    "default": (lambda v: isinstance(v, bool), "true or false"),
}


def card_from_json(data: Any, where: Path) -> Card:
    """A card from its parsed JSON; a missing, unknown or ill-typed field is an AgscmError."""
    if not isinstance(data, dict):
        raise AgscmError(f"{where}: a card must be a JSON object")
    missing = [name for name in CARD_FIELDS if name not in data and name not in _OPTIONAL]
    unknown = sorted(set(data) - set(CARD_FIELDS))
    if missing or unknown:
        raise AgscmError(f"{where}: card fields " + "; ".join(
            part for part in (f"missing {', '.join(missing)}" if missing else "",
                              f"unknown {', '.join(unknown)}" if unknown else "") if part))
    for name, value in data.items():
        check, expected = _CHECKS[name]
        if not check(value):
            raise AgscmError(f"{where}: card field {name} must be {expected}, got {value!r}")
    return Card(**data)


def pretrained_folder() -> Path:
    """Where the shipped generators are: $AGSCM_PRETRAINED, else the package's folder."""
    return Path(os.environ.get(PRETRAINED_ENV) or PACKAGE_FOLDER)


def _listing(folder: Path) -> tuple[dict[str, Path], dict[str, Path], str]:
    """A folder's cards and generators by name, and the names that have both, for messages."""
    cards = {p.stem: p for p in folder.glob(f"*{CARD_SUFFIX}") if p.is_file()}
    models = {p.stem: p for p in folder.glob(f"*{MODEL_SUFFIX}") if p.is_file()}
    return cards, models, _names(sorted(set(cards) & set(models)))


def _read_card(path: Path, known: str) -> Card:
    """The card in `path` (NAME.json), checked against the schema and its file name."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AgscmError(f"{path}: unreadable card ({exc}); shipped: {known}") from None
    try:
        card = card_from_json(data, path)
    except AgscmError as exc:
        raise AgscmError(f"{exc}; shipped: {known}") from None
    if card.name != path.stem:
        raise AgscmError(f"{path}: the card's name {card.name!r} is not its file's "
                         f"{path.stem!r}; shipped: {known}")
    return card


def _verify(card: Card, path: Path, known: str) -> Path:
    """`path`, after its size and sha256 matched `card`."""
    try:
        size, digest = path.stat().st_size, file_digest(path)
    except OSError as exc:
        raise AgscmError(f"{path}: unreadable ({exc.strerror}); shipped: {known}") from None
    if size != card.size_bytes or digest != card.sha256:
        raise AgscmError(f"{path}: does not match its card (sha256 {digest[:16]}..., "
                         f"{size:,} bytes; the card says {card.sha256[:16]}..., "
                         f"{card.size_bytes:,} bytes): changed or damaged, reinstall it; "
                         f"shipped: {known}")
    return path


@dataclass(frozen=True)
class Shelf:
    """The shipped generators of one folder, their pairing and cards checked."""

    folder: Path
    cards: tuple[Card, ...]  # sorted by name

    @classmethod
    def open(cls, folder: str | Path | None = None) -> Shelf:
        folder = Path(folder) if folder is not None else pretrained_folder()
        if not folder.is_dir():
            raise AgscmError(f"{folder}: no such folder of shipped generators "
                             f"(${PRETRAINED_ENV})")
        cards, models, known = _listing(folder)
        lonely_cards = sorted(set(cards) - set(models))
        lonely_models = sorted(set(models) - set(cards))
        if lonely_cards:
            stem = lonely_cards[0]
            raise AgscmError(f"{cards[stem]}: a card without its generator {stem}{MODEL_SUFFIX}; "
                             f"shipped: {known}")
        if lonely_models:
            stem = lonely_models[0]
            raise AgscmError(f"{models[stem]}: a generator without its card "
                             f"{stem}{CARD_SUFFIX}; shipped: {known}")
        read = [_read_card(path, known) for _, path in sorted(cards.items())]
        for channels in SUPPORTED_CHANNELS:
            defaults = [card.name for card in read if card.channels == channels and card.default]
            if len(defaults) > 1:
                raise AgscmError(f"{folder}: {len(defaults)} {channels}-channel generators are "
                                 f"marked default ({', '.join(defaults)}); mark one")
        return cls(folder, tuple(read))

    @property
    def known(self) -> str:
        return _names([card.name for card in self.cards])

    def card(self, name: str) -> Card:
        for card in self.cards:
            if card.name == name:
                return card
        raise AgscmError(f"{name!r} is neither a file nor a shipped generator; shipped: "
                         f"{self.known} (agscm models lists them)")

    def verified_path(self, name: str) -> Path:
        """NAME.onnx, after its size and sha256 matched its card."""
        return _verify(self.card(name), self.folder / f"{name}{MODEL_SUFFIX}", self.known)

    def default_for(self, channels: int) -> Card:
        """The generator for `channels`: the only one, or the one marked default."""
        candidates = [card for card in self.cards if card.channels == channels]
        chosen = [card for card in candidates if card.default] if len(candidates) > 1 else candidates
        if not candidates:
            raise AgscmError(f"no shipped {channels}-channel generator in {self.folder} "
                             f"(shipped: {self.known}); pass --model")
        if not chosen:
            raise AgscmError(f"{len(candidates)} shipped {channels}-channel generators "
                             f"({_names([c.name for c in candidates])}) and none marked "
                             "default; pass --model")
        return chosen[0]


def _names(names: list[str]) -> str:
    return ", ".join(names) or "none"


def is_shipped_name(model: str | Path) -> bool:
    """The rule: not an existing path and no .onnx suffix -> a shipped generator's name."""
    text = os.fspath(model)
    return not os.path.exists(text) and not text.lower().endswith(MODEL_SUFFIX)


def resolve_model(model: str | Path) -> tuple[Path, Card | None]:
    """A model argument -> (the ONNX file, its card if shipped; the file then verified).

    A file in the shipped folder named by its path (as `agscm perturb` without --model and the
    folder run's workers name it) is verified against its card too, once it has one: before,
    while a generator is being packaged, it is an ONNX file like any other.
    """
    if is_shipped_name(model):
        shelf = Shelf.open()
        name = os.fspath(model)
        return shelf.verified_path(name), shelf.card(name)
    real = Path(os.path.realpath(model))
    card_path = real.with_suffix(CARD_SUFFIX)
    if (real.suffix != MODEL_SUFFIX or str(real.parent) != os.path.realpath(pretrained_folder())
            or not card_path.is_file()):
        return Path(model), None
    known = _listing(real.parent)[2]
    card = _read_card(card_path, known)
    _verify(card, real, known)
    return Path(model), card


def check_card(card: Card, metadata: GeneratorMetadata, path: Path) -> None:
    """Refuse a shipped file whose own metadata says other than its card."""
    pairs = {"channels": (card.channels, metadata.channels), "norm": (card.norm, metadata.norm),
             "dataset": (card.dataset, metadata.dataset),
             "sources": (card.sources, list(metadata.source_models))}
    for name, (said, found) in pairs.items():
        if said != found:
            raise AgscmError(f"{path}: its card says {name} {said!r}, its metadata {found!r}")
    if not math.isclose(card.eps, metadata.eps, rel_tol=1e-6):
        raise AgscmError(f"{path}: its card says eps {card.eps!r}, its metadata {metadata.eps!r}")


def write_card(model: str | Path, *, summary: str, recipe: str, training: dict[str, Any],
               transfer: dict[str, Any], crafting: dict[str, Any],
               default: bool = False) -> Card:
    """Write NAME.json beside NAME.onnx: channels, eps, norm, dataset and sources read from the
    file's own metadata, sha256 and size measured, the rest as given. Returns the card."""
    path = Path(model)
    if path.suffix != MODEL_SUFFIX:
        raise AgscmError(f"{path}: a shipped generator is a {MODEL_SUFFIX} file")
    # Not GeneratorModel(path): in the shipped folder that checks the file against its old card.
    metadata = validate_session(make_session(path, "cpu", threads=1), path)
    card = Card(path.stem, summary, metadata.channels, metadata.eps, metadata.norm,
                metadata.dataset, list(metadata.source_models), recipe, dict(training),
                dict(transfer), dict(crafting), file_digest(path), path.stat().st_size, default)
    destination = path.with_suffix(CARD_SUFFIX)
    card_from_json(json.loads(json.dumps(card.to_json())), destination)  # the reader's checks
    write_json(destination, card.to_json())
    return card


@dataclass(frozen=True)
class Choice:
    """The shipped generator chosen for a folder, and why."""

    card: Card
    path: Path  # verified against the card
    images: int  # files Pillow could open
    grey: int

    @property
    def reason(self) -> str:
        card = self.card
        using = (f"using shipped generator {card.name} (eps {card.eps:.4g} {card.norm})")
        if self.grey == self.images:
            return f"no --model: {self.grey} of {self.images} images are grey; {using}"
        colour = self.images - self.grey
        converted = f"; the {self.grey} grey ones are converted to RGB" if self.grey else ""
        return f"no --model: {colour} of {self.images} images are colour; {using}{converted}"


def choose_for_folder(source: str | Path, destination: str | Path,
                      folder: str | Path | None = None) -> Choice:
    """The shipped generator that fits the images under `source` (the module's rule)."""
    shelf = Shelf.open(folder)
    source = Path(source)
    if not source.is_dir():
        raise AgscmError(f"{source}: input folder not found")
    grey = images = 0
    with warnings.catch_warnings():  # large headers: the run applies --max-pixels itself
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for entry in walk(source, os.path.realpath(destination)).entries:
            if entry.problem is None:
                found = header_is_grey(source / entry.relative)
                images += found is not None
                grey += found is True
    if not images:
        raise AgscmError(f"no --model: no images under {source} to choose a shipped generator "
                         "by; pass --model")
    card = shelf.default_for(1 if grey == images else 3)
    return Choice(card, shelf.verified_path(card.name), images, grey)
