"""CIFAR-10 from the shared folder: exact test pixels, JPEG training images, pretrained normalisation.

The shared copy (``../shared/data/README.md``) comes in pieces:

``test_exact_1000.npz``   the first 1,000 test images, pixel-identical to the original
``jpeg_train_50000.npz``  all 50,000 training images as JPEG files (lossy), original order
``jpeg_test_10000.npz``   all 10,000 test images as JPEG files, grouped by class

Specs:

``cifar10[:DIR]``           train on the 50,000 JPEG images (random crop with 4 pixels of
                            zero padding, horizontal flip), test on the 1,000 exact images
``cifar10-jpegtest[:DIR]``  the same training set; test on the 10,000 JPEG test images, a
                            larger paired sample (a model trained on the original pixels
                            loses about 10 points on them: compare models, not absolutes)

Without ``DIR`` the folder is ``../shared/data/cifar10`` beside the source checkout,
then ``$DEEPCOMPRESS_DATA/cifar10``, then the per-user data folder. Images are
normalised as the pretrained ResNets expect: ``(x / 255 - mean) / std`` with the
ImageNet mean and std. JPEG sets are decoded once (Pillow) and cached as ``.npy``
in ``$XDG_CACHE_HOME/deepcompress`` (``~/.cache/deepcompress``), keyed by the
sha256 of the ``.npz`` file and written atomically.

Augmentation is a pure function of ``(seed, epoch, image index)``: each image's
crop offset and flip are drawn per epoch for the whole data set, so a resumed
run, or ranks sharding a batch, see exactly the images a single run would.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .batching import EpochShardBatches
from .errors import DataError

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PAD = 4
SIZE = 32
TEST_EXACT = "test_exact_1000.npz"
TRAIN_JPEG = "jpeg_train_50000.npz"
TEST_JPEG = "jpeg_test_10000.npz"
SPECS = ("cifar10", "cifar10-jpegtest")
CACHE_VERSION = 1


def is_cifar10_spec(spec: str) -> bool:
    """True for ``cifar10``, ``cifar10:DIR``, ``cifar10-jpegtest`` and ``cifar10-jpegtest:DIR``."""
    return spec.split(":", 1)[0] in SPECS


def _user_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "deepcompress"


def default_folders() -> list[Path]:
    """Where ``cifar10`` without ``:DIR`` looks, in order."""
    paths = [Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10"]
    if os.environ.get("DEEPCOMPRESS_DATA"):
        paths.append(Path(os.environ["DEEPCOMPRESS_DATA"]) / "cifar10")
    paths.append(_user_data_dir() / "cifar10")
    return paths


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/deepcompress`` or ``~/.cache/deepcompress``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deepcompress"


def folder_for(spec: str) -> Path:
    """The data folder a spec names; :class:`DataError` (one line) when it is missing or incomplete."""
    kind, _, given = spec.partition(":")
    need = [TRAIN_JPEG, TEST_JPEG if kind == "cifar10-jpegtest" else TEST_EXACT]
    if not given:
        candidates = default_folders()
        for folder in candidates:
            if all((folder / f).is_file() for f in need):
                return folder
        where = " or ".join(str(c) for c in candidates)
        raise DataError(f"CIFAR-10 not found; put {', '.join(need)} in {where}, or pass --data {kind}:DIR")
    folder = Path(given).expanduser()
    if not folder.is_dir():
        raise DataError(f"CIFAR-10 folder {folder} does not exist")
    missing = [f for f in need if not (folder / f).is_file()]
    if missing:
        raise DataError(f"CIFAR-10 folder {folder} lacks {', '.join(missing)}; nothing is downloaded")
    return folder


def _npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise DataError(f"{path} lacks array(s) {', '.join(missing)}: not the CIFAR-10 file described "
                                "in the data README")
            return {k: z[k] for k in keys}
    except DataError:
        raise
    except Exception as exc:  # a damaged zip or npy header
        raise DataError(f"{path} is not a readable .npz file: {exc}") from None


def _labels(y: np.ndarray, n: int, path: Path) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,) or y.dtype.kind not in "iu" or (n and (y.min() < 0 or y.max() > 9)):
        raise DataError(f"{path}: labels must be {n} integers in 0..9; got shape {y.shape}, dtype {y.dtype}")
    return y.astype(np.int64)


def exact_test(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The pixel-exact test images as uint8 NHWC and their labels."""
    path = folder / TEST_EXACT
    z = _npz(path, ("x", "y"))
    x = z["x"]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (SIZE, SIZE, 3):
        raise DataError(f"{path}: x must be uint8 (N, 32, 32, 3); got {x.dtype} {x.shape}")
    return x, _labels(z["y"], len(x), path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def decode_jpegs(blob: np.ndarray, offsets: np.ndarray, source: str = "the file") -> np.ndarray:
    """Decode concatenated JPEG files (``blob[offsets[i]:offsets[i+1]]``) into uint8 (N, 32, 32, 3)."""
    from PIL import Image

    offsets = np.asarray(offsets, dtype=np.int64)
    n = len(offsets) - 1
    if n < 0 or (n and (offsets[0] != 0 or offsets[-1] != len(blob) or np.any(np.diff(offsets) <= 0))):
        raise DataError(f"{source}: offsets do not split the JPEG bytes into images")
    out = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    raw = memoryview(np.ascontiguousarray(blob, dtype=np.uint8))
    for i in range(n):
        try:
            img = Image.open(io.BytesIO(raw[offsets[i] : offsets[i + 1]])).convert("RGB")
        except Exception as exc:  # Pillow raises several types for bad bytes
            raise DataError(f"{source}: image {i} is not a readable JPEG: {exc}") from None
        if img.size != (SIZE, SIZE):
            raise DataError(f"{source}: image {i} is {img.size[0]}x{img.size[1]}, not 32x32")
        out[i] = np.asarray(img, dtype=np.uint8)
    return out


def jpeg_images(path: Path, log: Callable[[str], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decoded images (uint8 NHWC) and labels of a JPEG ``.npz``, through the on-disk cache."""
    z = _npz(path, ("jpeg", "offsets", "y"))
    n = len(z["offsets"]) - 1
    y = _labels(z["y"], n, path)
    cached = cache_dir() / f"cifar10-{path.stem}-v{CACHE_VERSION}-{_sha256(path)[:32]}.npy"
    if cached.is_file():
        try:
            x = np.load(cached, allow_pickle=False)
            if x.shape == (n, SIZE, SIZE, 3) and x.dtype == np.uint8:
                return x, y
        except Exception:  # a damaged cache file is rebuilt below
            pass
    if log is not None:
        log(f"decoding {n:,} JPEG images from {path} (once; cached in {cached.parent})")
    x = decode_jpegs(z["jpeg"], z["offsets"], str(path))
    _save_atomic(cached, x)
    return x, y


def _save_atomic(path: Path, array: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, array, allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass  # an unwritable cache only costs the decode next time


def normalize(x_uint8_nchw: Any) -> Any:
    """uint8 (N, 3, H, W) tensor -> float32 normalised as the pretrained models expect."""
    import torch

    mean = torch.tensor(MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (x_uint8_nchw.to(torch.float32) / 255.0 - mean) / std


def to_inputs(x_nhwc: np.ndarray) -> np.ndarray:
    """uint8 NHWC images -> normalised float32 NCHW array (for test sets)."""
    import torch

    return normalize(torch.from_numpy(np.ascontiguousarray(x_nhwc)).permute(0, 3, 1, 2)).numpy()


class AugmentedLoader(EpochShardBatches):
    """Mini-batches of uint8 images with random crop (zero padding 4) and horizontal flip, normalised.

    The order of epoch ``e`` and every image's crop and flip are pure functions
    of ``(seed, e)``; images are decoded lazily on the first iteration (so
    ``eval`` never decodes the training set). Same interface as
    :class:`deepcompress.data.TensorLoader`: ``set_epoch``, ``set_shard``,
    ``len()``, ``dataset_size``.
    """

    def __init__(self, images: Callable[[], tuple[np.ndarray, np.ndarray]], size: int, batch_size: int = 128,
                 seed: int = 0, augment: bool = True) -> None:
        self._images = images
        self._data: tuple[Any, Any] | None = None
        self.size = int(size)
        self.augment = augment
        self.shuffle = True
        self._init_batches(batch_size, seed)

    @property
    def dataset_size(self) -> int:
        return self.size

    def _tensors(self) -> tuple[Any, Any]:
        import torch

        if self._data is None:
            x, y = self._images()
            if len(x) != self.size:
                raise DataError(f"{len(x)} training images, expected {self.size}")
            # NCHW uint8 with the zero padding applied once
            padded = np.zeros((len(x), 3, SIZE + 2 * PAD, SIZE + 2 * PAD), dtype=np.uint8)
            padded[:, :, PAD:PAD + SIZE, PAD:PAD + SIZE] = x.transpose(0, 3, 1, 2)
            self._data = (torch.from_numpy(padded), torch.from_numpy(y))
        return self._data

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        import torch

        padded, targets = self._tensors()
        n = self.size
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(n, generator=gen)
        if self.augment:
            offsets = torch.randint(0, 2 * PAD + 1, (n, 2), generator=gen)
            flips = torch.rand(n, generator=gen) < 0.5
        else:
            offsets = torch.full((n, 2), PAD, dtype=torch.long)
            flips = torch.zeros(n, dtype=torch.bool)
        ar = torch.arange(SIZE)
        for idx in self.batches(n, order):
            oy, ox, flip = offsets[idx, 0], offsets[idx, 1], flips[idx]
            rows = oy[:, None] + ar[None, :]
            cols = torch.where(flip[:, None], ox[:, None] + (SIZE - 1) - ar[None, :], ox[:, None] + ar[None, :])
            b = torch.arange(len(idx))[:, None, None, None]
            c = torch.arange(3)[None, :, None, None]
            batch = padded[idx][b, c, rows[:, None, :, None], cols[:, None, None, :]]
            yield normalize(batch), targets[idx]


def cifar10_data(spec: str, *, batch_size: int = 128, seed: int = 0,
                 log: Callable[[str], None] | None = None) -> tuple[AugmentedLoader, np.ndarray, np.ndarray]:
    """``(train_loader, test_inputs, test_labels)`` for a ``cifar10`` / ``cifar10-jpegtest`` spec.

    Test inputs are normalised float32 NCHW; the caller wraps them in a loader.
    """
    folder = folder_for(spec)
    train_path = folder / TRAIN_JPEG
    n_train = len(_npz(train_path, ("offsets",))["offsets"]) - 1
    if n_train < 1:
        raise DataError(f"{train_path} holds no images")
    train = AugmentedLoader(lambda: jpeg_images(train_path, log), n_train, batch_size=batch_size, seed=seed)
    if spec.split(":", 1)[0] == "cifar10-jpegtest":
        x_te, y_te = jpeg_images(folder / TEST_JPEG, log)
    else:
        x_te, y_te = exact_test(folder)
    return train, to_inputs(x_te), y_te
