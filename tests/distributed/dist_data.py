"""A data spec for the distributed tests (``--data dist_data:loaders``): 1024 digits, batch 64.

1024 = 16 batches of 64 and every batch splits into two equal halves, so the
gradient DDP averages over 2 ranks is exactly the single-process batch gradient
(up to float summation order).
"""

from __future__ import annotations


def loaders():
    from deepcompress.data import TensorLoader, _digits

    x_tr, y_tr, x_te, y_te = _digits()
    train = TensorLoader(x_tr[:1024], y_tr[:1024], batch_size=64, shuffle=True, seed=3)
    test = TensorLoader(x_te, y_te, batch_size=1000, shuffle=False)
    return train, test
