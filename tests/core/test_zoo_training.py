"""Training a zoo model on a named dataset (deepcompress.zoo_training), the library side of ``train``."""

from __future__ import annotations

from types import SimpleNamespace

from deepcompress.zoo_training import dataset_kwargs


def test_dataset_kwargs_sizes_the_architecture_from_the_data_and_keeps_given_values():
    info = SimpleNamespace(input_shape=(1, 8, 8), num_classes=10)
    assert dataset_kwargs("lenet300", info, {}) == {"in_features": 64, "num_classes": 10}
    assert dataset_kwargs("lenet300", info, {"num_classes": 3}) == {"in_features": 64, "num_classes": 3}
