"""Training is deterministic for a seed, and the LR schedule is a pure function of the epoch."""

from __future__ import annotations

import pytest
import torch

from deepcompress.data import load_dataset
from deepcompress.errors import ConfigError
from deepcompress.models import build_model
from deepcompress.training import TrainConfig, evaluate, seed_everything, train


def _run(seed: int):
    tr, te, _ = load_dataset("digits", seed=seed, batch_size=64)
    seed_everything(seed)
    model = build_model("lenet300", in_features=64)
    train(model, tr, TrainConfig(epochs=2, seed=seed), progress=False, log=lambda _: None)
    return model, evaluate(model, te)


def test_same_seed_same_weights():
    a, ma = _run(5)
    b, mb = _run(5)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert ma == mb


def test_training_learns_digits():
    tr, te, _ = load_dataset("digits", seed=0, batch_size=64)
    seed_everything(0)
    model = build_model("lenet300", in_features=64)
    before = evaluate(model, te)["top1"]
    train(model, tr, TrainConfig(epochs=6), progress=False, log=lambda _: None)
    after = evaluate(model, te)["top1"]
    assert after > 0.85 and after > before + 0.5


def test_resume_from_epoch_equals_uninterrupted():
    """Stopping after epoch 2 and resuming gives the same weights as one run (checkpoint-resume basis)."""
    import copy

    tr, _, _ = load_dataset("digits", seed=1, batch_size=64)
    cfg = TrainConfig(epochs=4, seed=1)
    seed_everything(1)
    full = build_model("lenet300", in_features=64)
    start = copy.deepcopy(full)
    train(full, tr, cfg, progress=False, log=lambda _: None)

    from deepcompress.training import make_optimizer

    part = start
    # run epochs 0-1, snapshot, then resume 2-3 from the snapshot with a fresh optimizer loaded from state
    part_cfg = TrainConfig(epochs=4, seed=1)
    opt = make_optimizer(part.parameters(), part_cfg)
    snap = {}

    def stop_after(epoch, stats):
        if epoch == 1:
            snap["model"] = copy.deepcopy(part.state_dict())
            snap["opt"] = copy.deepcopy(opt.state_dict())
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(part, tr, part_cfg, optimizer=opt, on_epoch_end=stop_after, progress=False, log=lambda _: None)
    resumed = build_model("lenet300", in_features=64)
    resumed.load_state_dict(snap["model"])
    opt2 = make_optimizer(resumed.parameters(), part_cfg)
    opt2.load_state_dict(snap["opt"])
    train(resumed, tr, part_cfg, optimizer=opt2, start_epoch=2, progress=False, log=lambda _: None)
    for va, vb in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(va, vb)


def test_bad_config_values():
    with pytest.raises(ConfigError):
        TrainConfig(epochs=-1)
    with pytest.raises(ConfigError):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(ConfigError):
        TrainConfig(lr=0)
