"""Dataset specs: digits, MNIST from a folder, user functions, and clear errors."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from deepcompress.data import load_dataset
from deepcompress.errors import DataError


def test_digits_split_is_fixed_and_seeded():
    tr1, te1, info = load_dataset("digits", seed=3)
    tr2, te2, _ = load_dataset("digits", seed=3)
    assert info.input_shape == (1, 8, 8) and info.num_classes == 10
    assert info.n_train + info.n_test == 1797
    assert torch.equal(te1.inputs, te2.inputs)
    assert [torch.equal(a[1], b[1]) for a, b in zip(tr1, tr2)] == [True] * len(tr1)


def test_epoch_order_depends_on_epoch_only():
    tr, _, _ = load_dataset("digits", seed=1)
    tr.set_epoch(2)
    first = next(iter(tr))[1]
    tr.set_epoch(0)
    tr.set_epoch(2)
    assert torch.equal(next(iter(tr))[1], first)


@pytest.mark.mnist
def test_mnist_folder(mnist_dir):
    tr, te, info = load_dataset(f"mnist:{mnist_dir}")
    assert info.n_train == 60000 and info.n_test == 10000 and info.input_shape == (1, 28, 28)


def test_bare_mnist_uses_env(mnist_dir, monkeypatch):
    monkeypatch.setenv("DEEPCOMPRESS_DATA", str(mnist_dir.parent))
    _, te, info = load_dataset("mnist")
    assert info.n_test == 10000


def test_missing_mnist_says_where(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPCOMPRESS_DATA", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    with pytest.raises(DataError, match=str(tmp_path / "mnist")):
        load_dataset("mnist")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"mnist:{tmp_path / 'nowhere'}")
    (tmp_path / "mnist").mkdir()
    with pytest.raises(DataError, match="lacks"):
        load_dataset(f"mnist:{tmp_path / 'mnist'}")


def test_damaged_mnist_file_fails_md5(tmp_path, mnist_dir):
    import shutil

    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        shutil.copy(mnist_dir / name, tmp_path / name)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not mnist")
    with pytest.raises(DataError, match="md5"):
        load_dataset(f"mnist:{tmp_path}")


def test_user_function(tmp_path, monkeypatch):
    (tmp_path / "mydata.py").write_text(textwrap.dedent("""
        import torch
        from deepcompress.data import TensorLoader
        def loaders():
            x = torch.randn(20, 1, 8, 8); y = torch.arange(20) % 3
            return TensorLoader(x, y, 5), TensorLoader(x, y, 5)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    _, _, info = load_dataset("mydata:loaders")
    assert info.num_classes == 3 and info.input_shape == (1, 8, 8)
    sys.modules.pop("mydata", None)


@pytest.mark.parametrize("spec, match", [("", "empty"), ("imagenet", "unknown data spec"),
                                          ("no_such_mod_xyz:f", "cannot import"), ("json:nothing", "no function")])
def test_bad_specs(spec, match):
    with pytest.raises(DataError, match=match):
        load_dataset(spec)


def test_a_data_function_that_raises_is_the_users_error(tmp_path, monkeypatch):
    (tmp_path / "boomdata.py").write_text("def loaders():\n    raise RuntimeError('my loader failed')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DataError, match=r"loaders\(\) raised RuntimeError: my loader failed"):
        load_dataset("boomdata:loaders")
    sys.modules.pop("boomdata", None)
