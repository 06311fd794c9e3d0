"""Shared fixtures: tiny trained models on digits, the MNIST folder, hypothesis profiles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.register_profile("long", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The shared MNIST folder; tests using it skip cleanly when it is absent."""
    if not (MNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip(f"MNIST not present at {MNIST_DIR}")
    return MNIST_DIR


def _train_digits_checkpoint(folder: Path, arch: str, epochs: int) -> Path:
    from deepcompress.checkpoint import save_checkpoint
    from deepcompress.zoo_training import train_model

    model, record, metrics, cfg = train_model(
        arch, "digits", epochs=epochs, seed=0, lr=0.05, batch_size=64, optimizer="sgd",
        weight_decay=5e-4, arch_kwargs={}, progress=False,
    )
    path = folder / f"{arch}_digits.pt"
    save_checkpoint(path, model, record, metrics=metrics, extra={"data": "digits", "train": cfg.to_json()})
    return path


@pytest.fixture(scope="session")
def digits_lenet300(tmp_path_factory) -> Path:
    """A LeNet-300-100 trained briefly on the 8x8 digits, saved as a checkpoint."""
    return _train_digits_checkpoint(tmp_path_factory.mktemp("models"), "lenet300", epochs=8)


@pytest.fixture(scope="session")
def digits_lenet5(tmp_path_factory) -> Path:
    """A digits-sized LeNet-5 trained briefly, saved as a checkpoint."""
    return _train_digits_checkpoint(tmp_path_factory.mktemp("models"), "lenet5", epochs=6)
