"""Schedules: the formulas, JSON round trips, and the driver with a tiny train function."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcompress.errors import ConfigError
from deepcompress.pruning.schedules import Gradual, Iterative, OneShot, prune_with_schedule, schedule_from_json

from pruning_models import TinyCNN, TinyMLP


def test_one_shot():
    s = OneShot(0.9, retrain_epochs=3)
    assert s.events() == (0,) and s.total_epochs == 3
    assert [s.sparsity_at(t) for t in range(3)] == [0.9, 0.9, 0.9]
    assert OneShot(0.5, 2, at=4).sparsity_at(3) == 0.0


def test_iterative_steps_and_epochs():
    s = Iterative((0.5, 0.7, 0.9), (2, 1, 3))
    assert s.events() == (0, 2, 3) and s.total_epochs == 6
    assert [s.sparsity_at(t) for t in range(6)] == [0.5, 0.5, 0.7, 0.9, 0.9, 0.9]
    assert Iterative((0.3, 0.6), 2).epochs == (2, 2)
    with pytest.raises(ConfigError):
        Iterative((0.6, 0.3))
    with pytest.raises(ConfigError):
        Iterative((0.3, 0.6), (1,))


def test_gradual_matches_zhu_gupta_formula():
    s = Gradual(final=0.9, initial=0.1, start=2, n=4, interval=3, retrain_epochs=2)
    assert s.events() == (2, 5, 8, 11, 14)
    assert s.total_epochs == 16
    for i, t in enumerate(s.events()):
        expected = 0.9 + (0.1 - 0.9) * (1 - (t - 2) / (4 * 3)) ** 3
        assert s.event_sparsity(i) == pytest.approx(expected, abs=1e-15)
    assert s.sparsity_at(0) == 0.0
    assert s.sparsity_at(2) == pytest.approx(0.1)
    assert s.sparsity_at(14) == pytest.approx(0.9)
    assert s.sparsity_at(6) == s.event_sparsity(1)  # holds between events


@settings(max_examples=30, deadline=None)
@given(final=st.floats(0.0, 0.99), n=st.integers(1, 20), interval=st.integers(1, 5), start=st.integers(0, 5))
def test_gradual_is_monotone_and_ends_at_final(final, n, interval, start):
    s = Gradual(final=final, start=start, n=n, interval=interval)
    values = [s.sparsity_at(t) for t in range(s.total_epochs + 1)]
    assert all(b >= a - 1e-12 for a, b in zip(values, values[1:]))
    assert s.final_sparsity == pytest.approx(final)


@pytest.mark.parametrize(
    "sched", [OneShot(0.8, 2), Iterative((0.2, 0.5), (1, 2)), Gradual(0.75, 0.05, 1, 3, 2, 1)]
)
def test_json_round_trip(sched):
    text = json.dumps(sched.to_json())
    back = schedule_from_json(json.loads(text))
    assert back == sched
    assert schedule_from_json(sched.to_json_text()) == sched


def test_json_rejects_unknown_kinds_and_fields():
    with pytest.raises(ConfigError):
        schedule_from_json({"kind": "os.system", "sparsity": 0.5})
    with pytest.raises(ConfigError):
        schedule_from_json({"kind": "oneshot", "sparsity": 0.5, "bogus": 1})
    with pytest.raises(ConfigError):
        schedule_from_json("{not json")


def _tiny_train(data):
    def train_one_epoch(model, optimizer):
        for x, y in data:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()

    return train_one_epoch


def test_driver_gradual_reaches_targets_and_keeps_zeros():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(16, 20, generator=g), torch.randint(0, 4, (16,), generator=g)) for _ in range(3)]
    model = TinyMLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    sched = Gradual(final=0.8, n=3, interval=1, retrain_epochs=1)
    calls = []

    def train(model_, opt_):
        calls.append(1)
        _tiny_train(data)(model_, opt_)

    res = prune_with_schedule(model, sched, train, opt, evaluate_fn=lambda m: 0.5)
    assert len(calls) == sched.total_epochs == 4
    assert [r["epoch"] for r in res.history] == list(range(4))
    assert all(r["accuracy"] == 0.5 for r in res.history)
    achieved = [r["sparsity"] for r in res.history]
    assert all(b >= a for a, b in zip(achieved, achieved[1:]))
    rep = res.masks.sparsity()
    for name, layer in rep.layers.items():
        assert layer.pruned >= round(0.8 * layer.total)
    params = dict(model.named_parameters())
    for name in res.masks:
        assert bool((params[name].detach()[~res.masks[name]] == 0).all())


def test_driver_iterative_per_layer_targets_and_global_mode():
    torch.manual_seed(1)
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, 5, (4,), generator=g))]
    model = TinyCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = Iterative((0.3, 0.6), 1)
    res = prune_with_schedule(model, sched, _tiny_train(data), opt, targets="conv=0.5,fc=0.9", granularity="kernel",
                              fc_granularity="element")
    layers = res.masks.sparsity().layers
    assert layers["conv2.weight"].pruned_blocks >= round(0.5 * 96)
    assert layers["fc1.weight"].pruned >= round(0.9 * 1920)
    assert layers["conv2.weight"].granularity == "kernel"

    model2 = TinyMLP()
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.01)
    res2 = prune_with_schedule(model2, OneShot(0.7), lambda m, o: None, opt2, mode="global")
    assert res2.masks.sparsity().pruned == round(0.7 * res2.masks.sparsity().total)
    assert res2.history == []
    with pytest.raises(ConfigError):
        prune_with_schedule(model2, OneShot(0.7), lambda m, o: None, opt2, mode="global", targets=0.5)
