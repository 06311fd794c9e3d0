"""Stage configs and graph validation: a wrong order fails before any work starts."""

from __future__ import annotations

import pytest

from deepcompress.errors import ConfigError, PipelineError
from deepcompress.pipeline import (
    EncodeConfig,
    FinetuneConfig,
    PruneConfig,
    QuantizeConfig,
    RetrainConfig,
    stage_from_json,
    validate,
)


def test_default_order_is_valid():
    validate([PruneConfig(), RetrainConfig(), QuantizeConfig(), FinetuneConfig(), EncodeConfig()], has_data=True)


def test_encode_before_quantize_rejected():
    with pytest.raises(PipelineError, match="comes after 'encode'"):
        validate([PruneConfig(), EncodeConfig(), QuantizeConfig()], has_data=False)


def test_finetune_needs_codebooks():
    with pytest.raises(PipelineError, match="needs codebooks.*quantize"):
        validate([PruneConfig(), FinetuneConfig(), EncodeConfig()], has_data=True)


def test_retrain_after_quantize_invalidates_codebooks():
    """Retraining moves weights off the shared values, so fine-tuning after it has no codebooks."""
    with pytest.raises(PipelineError, match="stage 2 'retrain' moves the weights off the shared values"):
        validate([QuantizeConfig(), RetrainConfig(), FinetuneConfig(), EncodeConfig()], has_data=True)
    with pytest.raises(PipelineError, match="stage 2 'prune' moves the weights off"):
        validate([QuantizeConfig(), PruneConfig(), EncodeConfig()], has_data=False)
    # quantizing again after the retrain makes the graph valid
    validate([QuantizeConfig(), RetrainConfig(), QuantizeConfig(), FinetuneConfig(), EncodeConfig()], has_data=True)


def test_must_end_with_encode_and_need_data():
    with pytest.raises(PipelineError, match="must end with an 'encode'"):
        validate([PruneConfig(), QuantizeConfig()], has_data=False)
    with pytest.raises(PipelineError, match="needs training data"):
        validate([PruneConfig(), RetrainConfig(), EncodeConfig()], has_data=False)
    with pytest.raises(PipelineError, match="no stages"):
        validate([], has_data=False)


@pytest.mark.parametrize(
    "table, match",
    [
        ({"type": "prune", "sparsity": "1.5"}, "sparsity"),
        ({"type": "prune", "granularity": "rows"}, "unknown granularity"),
        ({"type": "prune", "scope": "global", "sparsity": "conv=0.5"}, "global pruning"),
        ({"type": "quantize", "bits": "conv=9"}, "bits"),
        ({"type": "quantize", "init": "magic"}, "centroid init"),
        ({"type": "encode", "index_bits": "12"}, "index bits"),
        ({"type": "retrain", "epochs": "three"}, "whole number"),
        ({"type": "retrain", "colour": "red"}, "unknown setting"),
        ({"type": "shell", "cmd": "rm -rf /"}, "unknown stage type"),
        ({"type": "prune", "version": 99}, "version 99"),
    ],
)
def test_bad_stage_tables(table, match):
    with pytest.raises(ConfigError, match=match):
        stage_from_json(table)


def test_to_json_round_trip_fills_defaults():
    cfg = stage_from_json({"type": "prune", "sparsity": {"conv": 0.6, "fc": 0.9}, "granularity": "kernel"})
    data = cfg.to_json()
    assert data["type"] == "prune" and data["version"] == 1 and data["sparsity"] == "conv=0.6,fc=0.9"
    assert data["fc_granularity"] == "element" and stage_from_json(data) == cfg
