"""Datasets, chosen by a spec string used everywhere in the CLI.

============================  =====================================================
spec                          meaning
============================  =====================================================
``digits``                    scikit-learn's bundled 8x8 digits, fixed seeded split
``mnist:DIR``                 the four MNIST IDX ``.gz`` files in DIR (md5-checked)
``mnist``                     ``$DEEPCOMPRESS_DATA/mnist``, then the per-user folder
``text:PATH[@T]``             characters of a UTF-8 file, 90/10 split, windows of T
``cifar10[:DIR]``             CIFAR-10: JPEG training set, 1,000 exact test images
``cifar10-jpegtest[:DIR]``    the same training set; the 10,000 JPEG test images
``package.module:function``   a function returning ``(train_loader, test_loader)``
============================  =====================================================

Nothing is ever downloaded. Loaders are small in-memory batch iterators that are
deterministic for a given seed.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .batching import EpochShardBatches
from .errors import DataError

MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


@dataclass(frozen=True)
class DataInfo:
    """What a dataset is: its spec, input shape ``(C, H, W)`` and class count."""

    spec: str
    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    n_train: int
    n_test: int


class TensorLoader(EpochShardBatches):
    """Mini-batches over in-memory tensors; reshuffled per epoch from a seed.

    Iterating yields ``(inputs, targets)``. ``set_epoch(e)`` makes the order of
    epoch ``e`` a pure function of ``(seed, e)``, so a resumed run sees the same
    batches as an uninterrupted one. ``set_shard(rank, world_size)`` (distributed
    training) makes each rank yield its contiguous share of every batch, so
    the ranks together see exactly the single-process batches; a last batch
    smaller than ``world_size`` is then dropped.
    """

    def __init__(self, inputs: Any, targets: Any, batch_size: int = 128, shuffle: bool = False, seed: int = 0) -> None:
        import torch

        if len(inputs) != len(targets):
            raise DataError(f"{len(inputs)} inputs but {len(targets)} targets")
        self.inputs = torch.as_tensor(inputs)
        self.targets = torch.as_tensor(targets, dtype=torch.long)
        self.shuffle = shuffle
        self._init_batches(batch_size, seed)

    @property
    def dataset_size(self) -> int:
        return len(self.inputs)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        import torch

        order = None
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(len(self.inputs), generator=gen)
        for idx in self.batches(len(self.inputs), order):
            yield self.inputs[idx], self.targets[idx]


def user_data_dir() -> Path:
    """The per-user data folder: ``$XDG_DATA_HOME/deepcompress`` or ``~/.local/share/deepcompress``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "deepcompress"


def mnist_search_path() -> list[Path]:
    """Where a bare ``mnist`` spec looks, in order."""
    paths = []
    if os.environ.get("DEEPCOMPRESS_DATA"):
        paths.append(Path(os.environ["DEEPCOMPRESS_DATA"]) / "mnist")
    paths.append(user_data_dir() / "mnist")
    return paths


def data_fingerprint(spec: str) -> str:
    """What the stage-cache key needs beyond the spec's text: the sha256 of a ``text:`` file's bytes (the same
    path may hold other text later; MNIST and CIFAR-10 files are checked against fixed digests), else ``""``."""
    if not spec.startswith("text:"):
        return ""
    from .text_data import parse_spec

    path = parse_spec(spec)[0].expanduser()
    if not path.is_file():
        return ""  # loading the data says what is wrong
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_dataset(spec: str, *, batch_size: int = 128, seed: int = 0, test_batch_size: int = 1000):
    """Return ``(train_loader, test_loader, DataInfo)`` for a dataset spec."""
    spec = str(spec).strip()
    if not spec:
        raise DataError("empty data spec; use digits, mnist, mnist:DIR or module:function")
    if spec == "digits":
        x_tr, y_tr, x_te, y_te = _digits()
        name = "digits"
    elif spec == "mnist" or spec.startswith("mnist:"):
        folder = _mnist_folder(spec)
        x_tr, y_tr, x_te, y_te = _mnist(folder)
        name = "mnist"
    elif spec.startswith("text:"):
        from .text_data import text_loaders

        train, test, shape, vocab = text_loaders(spec, batch_size=batch_size, seed=seed, test_batch_size=test_batch_size)
        return train, test, DataInfo(spec, "text", shape, vocab, train.dataset_size, test.dataset_size)
    elif spec.split(":", 1)[0] in ("cifar10", "cifar10-jpegtest"):
        from .cifar10 import cifar10_data

        train, x_te, y_te = cifar10_data(spec, batch_size=batch_size, seed=seed)
        info = DataInfo(spec, "cifar10", (3, 32, 32), 10, train.dataset_size, len(x_te))
        return train, TensorLoader(x_te, y_te, batch_size=test_batch_size, shuffle=False), info
    elif ":" in spec:
        return _user_loaders(spec)
    else:
        raise DataError(f"unknown data spec {spec!r}; use digits, mnist[:DIR], cifar10[:DIR], text:PATH[@WINDOW] or module:function")
    info = DataInfo(spec, name, tuple(x_tr.shape[1:]), 10, len(x_tr), len(x_te))
    train = TensorLoader(x_tr, y_tr, batch_size=batch_size, shuffle=True, seed=seed)
    test = TensorLoader(x_te, y_te, batch_size=test_batch_size, shuffle=False)
    return train, test, info


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0 - 0.5) / 0.5
    x = x[:, None, :, :]
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=y
    )
    return x_tr, y_tr, x_te, y_te


def _mnist_folder(spec: str) -> Path:
    if spec == "mnist":
        candidates = mnist_search_path()
        for folder in candidates:
            if all((folder / f).is_file() for f in MNIST_FILES):
                return folder
        where = " or ".join(str(c) for c in candidates)
        raise DataError(
            f"MNIST not found; put the four IDX .gz files ({', '.join(MNIST_FILES)}) in {where}, "
            "or pass --data mnist:DIR"
        )
    folder = Path(spec.split(":", 1)[1]).expanduser()
    if not folder.is_dir():
        raise DataError(f"MNIST folder {folder} does not exist; put the four IDX .gz files there")
    missing = [f for f in MNIST_FILES if not (folder / f).is_file()]
    if missing:
        raise DataError(f"MNIST folder {folder} lacks {', '.join(missing)}; nothing is downloaded")
    return folder


def _read_idx(path: Path, magic: int, md5: str) -> np.ndarray:
    raw = path.read_bytes()
    digest = hashlib.md5(raw).hexdigest()
    if digest != md5:
        raise DataError(f"{path} has md5 {digest}, expected {md5}: the file is damaged or not MNIST")
    try:
        data = gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise DataError(f"{path} is not a valid gzip file: {exc}") from None
    ndim = 3 if magic == 2051 else 1
    head = struct.unpack(">" + "I" * (1 + ndim), data[: 4 * (1 + ndim)])
    if head[0] != magic:
        raise DataError(f"{path}: IDX magic {head[0]}, expected {magic}")
    dims = head[1:]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 * (1 + ndim))
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: {body.size} bytes of data for dimensions {dims}")
    return body.reshape(dims)


def _mnist(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    def images(name: str) -> np.ndarray:
        arr = _read_idx(folder / name, 2051, MNIST_FILES[name]).astype(np.float32) / 255.0
        return ((arr - MNIST_MEAN) / MNIST_STD)[:, None, :, :]

    def labels(name: str) -> np.ndarray:
        return _read_idx(folder / name, 2049, MNIST_FILES[name]).astype(np.int64)

    return (
        images("train-images-idx3-ubyte.gz"),
        labels("train-labels-idx1-ubyte.gz"),
        images("t10k-images-idx3-ubyte.gz"),
        labels("t10k-labels-idx1-ubyte.gz"),
    )


def _user_loaders(spec: str):
    from .arch import import_user_module

    module_name, _, func_name = spec.partition(":")
    try:
        module = import_user_module(module_name)  # the current folder first, as for --arch
    except Exception as exc:  # a user's module may raise anything on import
        raise DataError(f"data spec {spec!r}: cannot import {module_name!r}: {exc}") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise DataError(f"data spec {spec!r}: {module_name} has no function {func_name!r}")
    try:
        result = func()
    except Exception as exc:  # noqa: BLE001 - the user's own code: said as theirs, in one line
        raise DataError(f"data spec {spec!r}: {func_name}() raised {type(exc).__name__}: {exc}") from None
    if not (isinstance(result, tuple) and len(result) == 2):
        raise DataError(f"data spec {spec!r}: {func_name}() must return (train_loader, test_loader)")
    train, test = result
    try:
        x, _ = next(iter(test))
    except Exception as exc:
        raise DataError(f"data spec {spec!r}: the test loader yields no (inputs, targets) batch: {exc}") from None
    info = DataInfo(spec, spec, tuple(x.shape[1:]), _num_classes(test), _size(train), _size(test))
    return train, test, info


def _size(loader: Any) -> int:
    ds = getattr(loader, "dataset", None)
    if ds is not None and hasattr(ds, "__len__"):
        return len(ds)
    return int(getattr(loader, "dataset_size", 0))


def _num_classes(loader: Any) -> int:
    top = 0
    for _, y in loader:
        top = max(top, int(y.max()) + 1)
    return top
