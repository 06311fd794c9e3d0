"""The ``shift`` setting of every training stage (prune's retraining, retrain, finetune) reaches the training."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import deepcompress  # noqa: E402
from deepcompress.errors import ConfigError  # noqa: E402
from deepcompress.model_input import load_model  # noqa: E402
from deepcompress.pipeline.recipe import Recipe  # noqa: E402
from deepcompress.pipeline.stages import (EncodeConfig, FinetuneConfig, PruneConfig, QuantizeConfig,  # noqa: E402
                                          RetrainConfig)


def _recipe(prune: int = 0, retrain: int = 0, finetune: int = 0) -> Recipe:
    return Recipe((PruneConfig(sparsity="0.8", schedule="agp", steps=2, epochs_per_step=1, shift=prune),
                   RetrainConfig(epochs=1, shift=retrain), QuantizeConfig(bits="4"),
                   FinetuneConfig(epochs=1, shift=finetune), EncodeConfig()))


def _compress(checkpoint, path, recipe):
    """The file's bytes and its decoded weights (the header records the recipe, so bytes alone always differ)."""
    deepcompress.compress(load_model(checkpoint)[0], path, recipe=recipe, data="digits", seed=0, progress=False,
                          log=lambda _: None)
    return path.read_bytes(), deepcompress.load_state_dict(path)


@pytest.mark.parametrize("stage", ["prune", "retrain", "finetune"])
def test_each_stage_trains_on_shifted_images(tmp_path, digits_lenet300, stage):
    _, plain = _compress(digits_lenet300, tmp_path / "plain.dcz", _recipe())
    shifted, weights = _compress(digits_lenet300, tmp_path / "a.dcz", _recipe(**{stage: 1}))
    again, _ = _compress(digits_lenet300, tmp_path / "b.dcz", _recipe(**{stage: 1}))
    assert plain.keys() == weights.keys()
    assert any(not torch.equal(plain[k], weights[k]) for k in plain)  # the stage's training saw other images
    assert shifted == again  # offsets come from the seeded generator: the same bytes


def test_prune_shift_is_checked_before_any_work():
    with pytest.raises(ConfigError, match="shift must be an int"):
        PruneConfig(schedule="agp", shift=9)
    assert PruneConfig(shift=2).to_json()["shift"] == 2  # in the cache key and header
