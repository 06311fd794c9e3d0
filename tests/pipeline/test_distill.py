"""Retraining by distillation from the input model (--distill; deepcompress.distill)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import deepcompress
from deepcompress.container import read_dcz
from deepcompress.data import TensorLoader, load_dataset
from deepcompress.distill import distill_loss, frozen_copy
from deepcompress.errors import ConfigError
from deepcompress.models import build_model
from deepcompress.pipeline.recipe import Recipe
from deepcompress.pipeline.stages import EncodeConfig, FinetuneConfig, PruneConfig, QuantizeConfig, RetrainConfig


def test_loss_is_zero_at_the_teacher_and_cross_entropy_at_weight_zero():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(8, 5, generator=g)
    y = torch.randint(0, 5, (8,), generator=g)
    assert distill_loss(t.clone(), t, y, 1.0, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    s = torch.randn(8, 5, generator=g)
    ce = torch.nn.functional.cross_entropy(s, y)
    assert distill_loss(s, t, y, 0.0, 4.0).item() == pytest.approx(ce.item(), rel=1e-6)
    half = distill_loss(s, t, y, 0.5, 2.0).item()
    assert half == pytest.approx(0.5 * ce.item() + 0.5 * distill_loss(s, t, y, 1.0, 2.0).item(), rel=1e-5)
    s.requires_grad_(True)
    distill_loss(s, t, y, 1.0, 1.0).backward()
    with torch.no_grad():  # one gradient step moves the student's distribution towards the teacher's
        after = distill_loss(s - 0.5 * s.grad, t, y, 1.0, 1.0)
    assert after < distill_loss(s.detach(), t, y, 1.0, 1.0)


@pytest.mark.parametrize("weight, temperature", [(-0.1, 4.0), (1.5, 4.0), (float("nan"), 4.0), (0.5, 0.0)])
def test_bad_settings_are_config_errors(weight, temperature):
    with pytest.raises(ConfigError, match="distill"):
        RetrainConfig(distill=weight, distill_temperature=temperature)
    with pytest.raises(ConfigError, match="distill"):
        FinetuneConfig(distill=weight, distill_temperature=temperature)


def test_teacher_is_a_frozen_copy():
    model = build_model("lenet300", in_features=64)
    teacher = frozen_copy(model)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    with torch.no_grad():
        model.layers[0].weight.zero_()
    assert teacher.layers[0].weight.abs().sum() > 0


def _recipe(distill: float) -> Recipe:
    return Recipe((PruneConfig(sparsity="0.8"), RetrainConfig(epochs=1, distill=distill), QuantizeConfig(bits="4"),
                   FinetuneConfig(epochs=1, distill=distill), EncodeConfig()))


def _digits_loaders(scramble: bool):
    train, test, _ = load_dataset("digits", batch_size=64, seed=0)
    y = train.targets
    if scramble:  # labels a pure distillation must never look at
        y = torch.roll(y, 1)
    return TensorLoader(train.inputs, y, batch_size=64, shuffle=True, seed=0), test


def _weights(result):
    return {k: v.clone() for k, v in result.model.state_dict().items()}


def test_weight_one_ignores_the_labels_and_differs_from_plain(tmp_path, digits_lenet300):
    from deepcompress.model_input import load_model

    model, _ = load_model(digits_lenet300)
    runs = {}
    for name, distill, scramble in [("true", 1.0, False), ("scrambled", 1.0, True), ("plain", 0.0, False)]:
        result = deepcompress.compress(model, tmp_path / f"{name}.dcz", recipe=_recipe(distill), data="digits",
                                       loaders=_digits_loaders(scramble), progress=False, log=lambda _: None)
        runs[name] = _weights(result)
        stages = {s["type"]: s for s in result.recipe["stages"]}
        assert stages["retrain"]["distill"] == distill and stages["finetune"]["distill"] == distill
    # float summation order can differ between runs in one process: equal up to rounding
    assert _max_diff(runs["true"], runs["scrambled"]) < 1e-5
    assert _max_diff(runs["true"], runs["plain"]) > 1e-3


def _max_diff(a, b):
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def test_teacher_is_the_input_model_even_after_a_cached_prune(tmp_path, digits_lenet300):
    """Resuming after the cached prune stage gives the same weights: the teacher is never the pruned model."""
    from deepcompress.model_input import load_model

    work = tmp_path / "work"
    first = deepcompress.compress(load_model(digits_lenet300)[0], tmp_path / "a.dcz", recipe=_recipe(1.0),
                                  data="digits", work_dir=work, progress=False, log=lambda _: None)
    states = sorted(work.glob("*/state.pt"), key=lambda p: p.stat().st_mtime_ns)
    assert len(states) == 4
    for later in states[1:]:  # keep only the prune stage's cached state
        later.unlink()
    second = deepcompress.compress(load_model(digits_lenet300)[0], tmp_path / "b.dcz", recipe=_recipe(1.0),
                                   data="digits", work_dir=work, progress=False, log=lambda _: None)
    assert _max_diff(_weights(first), _weights(second)) < 1e-5


def test_own_train_fn_cannot_distill(tmp_path):
    model = build_model("lenet300", in_features=64)
    with pytest.raises(ConfigError, match="distillation needs the training data"):
        deepcompress.compress(model, tmp_path / "m.dcz", recipe=_recipe(1.0), train_fn=lambda m, o, e: None,
                              eval_fn=lambda m: 0.5, progress=False, log=lambda _: None)


def test_cli_flag_sets_distill_on_flags_and_recipes(tmp_path, digits_lenet300):
    from deepcompress.cli.main import cli

    recipe = tmp_path / "r.toml"
    recipe.write_text('[[stage]]\ntype = "prune"\nsparsity = "0.5"\n[[stage]]\ntype = "retrain"\nepochs = 1\n'
                      '[[stage]]\ntype = "retrain"\nepochs = 0\ndistill = 0.3\n'
                      '[[stage]]\ntype = "quantize"\n[[stage]]\ntype = "encode"\n')
    for extra, expect in [(["--retrain-epochs", "1", "--finetune-epochs", "1"], {"retrain": [1.0], "finetune": [1.0]}),
                          (["--recipe", str(recipe)], {"retrain": [1.0, 0.3]})]:
        out = tmp_path / f"m{len(extra)}.dcz"
        result = CliRunner().invoke(cli, ["compress", str(digits_lenet300), "--data", "digits", "--distill",
                                          "--json", "--no-cache", "--no-report", "-o", str(out), *extra])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output.strip().splitlines()[-1])["output"] == str(out)
        stages = read_dcz(out).recipe["stages"]
        got = {}
        for s in stages:
            if "distill" in s:
                got.setdefault(s["type"], []).append(s["distill"])
        assert got == expect


def test_sequence_outputs_distill_per_position():
    """A sequence model's (B, T, C) logits with (B, T) targets: every position is one prediction."""
    from deepcompress.data import TensorLoader
    from deepcompress.distill import distill_one_epoch

    torch.manual_seed(0)
    student, teacher = torch.nn.Linear(4, 3), frozen_copy(torch.nn.Linear(4, 3))
    x, y = torch.randn(16, 5, 4), torch.randint(0, 3, (16, 5))
    opt = torch.optim.SGD(student.parameters(), lr=0.5)
    loader = TensorLoader(x, y, batch_size=16)
    first = distill_one_epoch(student, teacher, loader, opt, weight=1.0, temperature=1.0, progress=False)
    for _ in range(20):
        last = distill_one_epoch(student, teacher, loader, opt, weight=1.0, temperature=1.0, progress=False)
    assert last["loss"] < first["loss"] / 2
