"""Train a zoo architecture on a named dataset: what ``deepcompress train`` and ``demo`` do, as a function.

The pieces live elsewhere: architectures in :mod:`deepcompress.models` (and
the architecture records), datasets in :mod:`deepcompress.data`, the training
loop in :mod:`deepcompress.training`. This module joins them: it sizes the
architecture from the dataset (:func:`dataset_kwargs`), builds it from its
record, trains it and evaluates it (:func:`train_model`). torch is imported only
when a model is trained.
"""

from __future__ import annotations

from typing import Any

__all__ = ["dataset_kwargs", "train_model"]


def dataset_kwargs(arch: str, info: Any, given: dict[str, Any]) -> dict[str, Any]:
    """Fill input-size kwargs a zoo architecture takes from the dataset, unless given.

    ``info`` is the dataset's info (``input_shape``, ``num_classes``): a zoo
    constructor that takes ``in_features``, ``in_channels``, ``input_size`` or
    ``num_classes`` gets them from it; ``given`` wins over every derived value.
    """
    from .models.zoo import accepted_kwargs

    accepted = accepted_kwargs(arch)
    shape = tuple(info.input_shape)
    derived: dict[str, Any] = {}
    if "in_features" in accepted:
        n = 1
        for d in shape:
            n *= int(d)
        derived["in_features"] = n
    if "in_channels" in accepted and len(shape) == 3:
        derived["in_channels"] = int(shape[0])
    if "input_size" in accepted and len(shape) == 3:
        derived["input_size"] = int(shape[-1])
    if "num_classes" in accepted:
        derived["num_classes"] = int(info.num_classes)
    derived.update(given)
    return derived


def train_model(
    arch: str, data_spec: str, *, epochs: int, seed: int, lr: float, batch_size: int, optimizer: str,
    weight_decay: float, arch_kwargs: dict[str, Any], progress: bool = True,
):
    """Train a zoo model (or ``module:Class``) on a dataset; returns ``(model, arch_record, metrics, cfg)``.

    A zoo name is sized from the dataset (:func:`dataset_kwargs`); an import
    path takes ``arch_kwargs`` as given. The model is seeded with ``seed``
    before it is built, trained for ``epochs`` and evaluated on the test split.
    """
    from .arch import arch_spec, build_arch
    from .data import load_dataset
    from .training import TrainConfig, evaluate, seed_everything, train

    cfg = TrainConfig(
        epochs=epochs, lr=lr, batch_size=batch_size, optimizer=optimizer, seed=seed, weight_decay=weight_decay
    )
    train_loader, test_loader, info = load_dataset(data_spec, batch_size=batch_size, seed=seed)
    record = arch_spec(arch, dataset_kwargs(arch, info, arch_kwargs) if ":" not in arch else arch_kwargs)
    seed_everything(seed)
    model = build_arch(record, trust_arch=True)
    import torch

    from .preflight import check_model_accepts

    with torch.random.fork_rng():  # the same batches as without the check
        batch = next(iter(test_loader), None)
        if batch is not None:  # the model meets one sample first: a mismatch is one line, not a crash in training
            check_model_accepts(model, batch, data_spec=data_spec, arch=record, targets=batch[1])
    train(model, train_loader, cfg, test_loader=None, progress=progress)
    metrics = evaluate(model, test_loader)
    metrics["data"] = data_spec
    return model, record, metrics, cfg
