"""The cifar10 data spec: exact test pixels, cached JPEG decoding, seeded crop-and-flip augmentation."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from deepcompress import cifar10
from deepcompress.data import load_dataset
from deepcompress.errors import DataError


def _jpeg_npz(path, images, labels):
    from PIL import Image

    blobs = []
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=95)
        blobs.append(np.frombuffer(buf.getvalue(), dtype=np.uint8))
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    np.savez(path, jpeg=np.concatenate(blobs), offsets=offsets, y=np.asarray(labels, dtype=np.int64))


@pytest.fixture
def fake_cifar(tmp_path, monkeypatch):
    """A CIFAR-10 folder in the shared layout with 10 training, 6 exact and 5 JPEG test images."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar10"
    folder.mkdir()
    train = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    _jpeg_npz(folder / cifar10.TRAIN_JPEG, train, np.arange(10) % 10)
    _jpeg_npz(folder / cifar10.TEST_JPEG, train[:5], [1, 2, 3, 4, 5])
    exact = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    np.savez(folder / cifar10.TEST_EXACT, x=exact, y=np.array([0, 1, 2, 3, 4, 5]))
    return folder, exact


def test_exact_test_set_normalised_as_pretrained(fake_cifar):
    folder, exact = fake_cifar
    train, test, info = load_dataset(f"cifar10:{folder}", batch_size=4)
    assert (info.name, info.input_shape, info.num_classes, info.n_train, info.n_test) == ("cifar10", (3, 32, 32), 10, 10, 6)
    x, y = next(iter(test))
    assert y.tolist() == [0, 1, 2, 3, 4, 5]
    expect = (exact[2, 5, 7, 1] / 255.0 - cifar10.MEAN[1]) / cifar10.STD[1]
    assert x[2, 1, 5, 7].item() == pytest.approx(expect, abs=1e-6)
    assert len(train) == 3 and train.dataset_size == 10


def test_jpegtest_spec_uses_the_jpeg_test_set(fake_cifar):
    folder, _ = fake_cifar
    _, test, info = load_dataset(f"cifar10-jpegtest:{folder}")
    assert info.n_test == 5 and next(iter(test))[1].tolist() == [1, 2, 3, 4, 5]


def test_jpeg_decoded_once_and_cached_atomically(fake_cifar, tmp_path):
    folder, _ = fake_cifar
    x1, y1 = cifar10.jpeg_images(folder / cifar10.TRAIN_JPEG)
    files = list((tmp_path / "cache" / "deepcompress").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npy"  # no temporary file left behind
    assert x1.shape == (10, 32, 32, 3) and y1.tolist() == list(range(10))
    np.save(files[0], np.full_like(x1, 7))  # the cache is what a second call reads
    x2, _ = cifar10.jpeg_images(folder / cifar10.TRAIN_JPEG)
    assert (x2 == 7).all()
    files[0].write_bytes(b"damaged")  # a damaged cache is rebuilt, not an error
    x3, _ = cifar10.jpeg_images(folder / cifar10.TRAIN_JPEG)
    assert np.array_equal(x3, x1)


def _train_images(folder):
    x, y = cifar10.jpeg_images(folder / cifar10.TRAIN_JPEG)
    return x, y


def test_augmentation_is_a_crop_and_flip_of_the_padded_image(fake_cifar):
    folder, _ = fake_cifar
    x, y = _train_images(folder)
    loader = cifar10.AugmentedLoader(lambda: (x, y), 10, batch_size=10, seed=3)
    padded = np.zeros((10, 3, 40, 40), dtype=np.uint8)
    padded[:, :, 4:36, 4:36] = x.transpose(0, 3, 1, 2)
    flips = 0
    for epoch in range(3):
        loader.set_epoch(epoch)
        (batch, targets), = list(loader)
        for img, label in zip(batch, targets):
            i = int(label)  # labels are the image indices here
            found = []
            for oy in range(9):
                for ox in range(9):
                    crop = cifar10.normalize(torch.from_numpy(padded[i:i + 1, :, oy:oy + 32, ox:ox + 32]))[0]
                    if torch.equal(crop, img):
                        found.append("plain")
                    if torch.equal(crop.flip(-1), img):
                        found.append("flip")
            assert found, f"image {i} is no crop of its padded original"
            flips += found == ["flip"]
    assert 0 < flips < 30  # both flipped and unflipped images occur


def test_augmentation_is_seeded_and_changes_per_epoch(fake_cifar):
    folder, _ = fake_cifar
    x, y = _train_images(folder)

    def batches(seed, epoch):
        loader = cifar10.AugmentedLoader(lambda: (x, y), 10, batch_size=4, seed=seed)
        loader.set_epoch(epoch)
        return [b for b, _ in loader]

    assert all(torch.equal(a, b) for a, b in zip(batches(0, 1), batches(0, 1)))
    assert not all(torch.equal(a, b) for a, b in zip(batches(0, 1), batches(0, 2)))
    assert not all(torch.equal(a, b) for a, b in zip(batches(0, 1), batches(1, 1)))


def test_shards_together_are_the_single_process_batches(fake_cifar):
    folder, _ = fake_cifar
    x, y = _train_images(folder)
    whole = cifar10.AugmentedLoader(lambda: (x, y), 10, batch_size=4, seed=5)
    parts = [cifar10.AugmentedLoader(lambda: (x, y), 10, batch_size=4, seed=5) for _ in range(2)]
    for rank, part in enumerate(parts):
        part.set_shard(rank, 2)
    for (xb, yb), (x0, y0), (x1, y1) in zip(whole, *parts):
        assert torch.equal(torch.cat([x0, x1]), xb) and torch.equal(torch.cat([y0, y1]), yb)


def test_missing_and_damaged_data_say_what(tmp_path, monkeypatch, fake_cifar):
    monkeypatch.setattr(cifar10, "default_folders", lambda: [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(DataError, match=str(tmp_path / "a")):
        load_dataset("cifar10")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"cifar10:{tmp_path / 'nowhere'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="lacks"):
        load_dataset(f"cifar10:{tmp_path / 'empty'}")
    folder, _ = fake_cifar
    (folder / cifar10.TEST_EXACT).write_bytes(b"not an npz")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_dataset(f"cifar10:{folder}")
    with pytest.raises(DataError, match="not a readable JPEG"):
        cifar10.decode_jpegs(np.frombuffer(b"garbage!", dtype=np.uint8), np.array([0, 8]), "x.npz")


def test_cli_bad_cifar_folder_is_one_line_exit_2(tmp_path):
    from deepcompress.cli.main import cli

    result = CliRunner().invoke(cli, ["eval", "nothing.pt", "--data", f"cifar10:{tmp_path / 'nowhere'}"])
    assert result.exit_code == 2
