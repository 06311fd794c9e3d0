"""Granularity sweep on MNIST (Mao et al. 2017): placeholder header, filled below."""

from __future__ import annotations

import os

MNIST_DIR = os.environ.get("DEEPCOMPRESS_MNIST", "/work/shared/data/mnist")
SUBSET = 12_000  # training images per retraining epoch (the test set is always the full 10,000)


def mnist_subset():
    """``(train_loader, test_loader)``: the first SUBSET MNIST training images (shuffled), the full test set.

    Used as ``--data benchmarks.bench_sweep:mnist_subset`` so that one retraining
    "epoch" costs a fifth of a full MNIST epoch on this shared machine.
    """
    from deepcompress.data import TensorLoader, load_dataset

    train, test, _ = load_dataset(f"mnist:{MNIST_DIR}")
    sub = TensorLoader(train.inputs[:SUBSET], train.targets[:SUBSET], batch_size=128, shuffle=True, seed=0)
    return sub, test
