"""Sensitivity: one layer at a time, weights restored, CSV/PNG output, budget picking."""

from __future__ import annotations

import pytest
import torch

from deepcompress.errors import ConfigError
from deepcompress.pruning.sensitivity import SensitivityRow, SensitivityTable, pick_sparsities, sensitivity

from pruning_models import TinyCNN, TinyMLP


def _fixed_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(64, 20, generator=g)


def test_each_layer_pruned_alone_and_weights_restored():
    torch.manual_seed(0)
    model = TinyMLP()
    x = _fixed_data()
    labels = model(x).argmax(1)  # the dense model is 100% "accurate" on its own labels
    original = {n: p.detach().clone() for n, p in model.named_parameters()}
    seen = []

    def evaluate(m):
        params = dict(m.named_parameters())
        zeros = {n: int((params[n] == 0).sum()) for n in ("net.0.weight", "net.2.weight", "net.4.weight")}
        seen.append(zeros)
        return float((m(x).argmax(1) == labels).float().mean())

    table = sensitivity(model, evaluate, "element", sparsities=(0.5, 0.9, 0.2))
    assert table.baseline == 1.0
    assert len(table.rows) == 3 * 3
    assert [s for s, _ in table.curve("net.0.weight")] == [0.2, 0.5, 0.9]
    # during each evaluation exactly one layer had zeros, with round(s*n) of them
    for zeros, row in zip(seen[1:], table.rows):
        pruned = {n: z for n, z in zeros.items() if z}
        assert list(pruned) == [row.tensor]
        total = dict(model.named_parameters())[row.tensor].numel()
        assert pruned[row.tensor] == round(row.sparsity * total)
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), original[n])


def test_structured_granularity_and_layer_subset(tmp_path):
    torch.manual_seed(1)
    model = TinyCNN()
    x = torch.randn(16, 3, 8, 8)
    labels = model(x).argmax(1)
    table = sensitivity(
        model, lambda m: float((m(x).argmax(1) == labels).float().mean()), "filter",
        sparsities=(0.25, 0.5), layers=["conv1", "fc1.weight"], fc_granularity="element",
    )
    assert table.layers() == ["conv1.weight", "fc1.weight"]
    assert {r.granularity for r in table.rows if r.tensor == "conv1.weight"} == {"filter"}
    csv_path = table.write_csv(tmp_path / "s.csv")
    png_path = table.write_png(tmp_path / "s.png")
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = SensitivityTable.read_csv(csv_path)
    assert back.baseline == pytest.approx(table.baseline, abs=1e-6)
    assert [(r.tensor, r.sparsity) for r in back.rows] == [(r.tensor, r.sparsity) for r in table.rows]
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "tensor,kind,granularity,sparsity,accuracy,accuracy_drop"
    assert len(lines) == 1 + 2 * 3


def test_pick_sparsities_budget_and_contiguity():
    rows = [
        SensitivityRow("a", "fc", "element", s, acc)
        for s, acc in [(0.5, 0.990), (0.7, 0.9895), (0.8, 0.985), (0.9, 0.9898)]
    ] + [SensitivityRow("b", "fc", "element", s, acc) for s, acc in [(0.5, 0.95), (0.9, 0.90)]]
    table = SensitivityTable(0.990, rows)
    assert pick_sparsities(table, 0.001) == {"a": 0.7, "b": 0.0}
    assert pick_sparsities(table, 0.001, contiguous=False) == {"a": 0.9, "b": 0.0}
    assert pick_sparsities(table, 0.05) == {"a": 0.9, "b": 0.5}
    assert pick_sparsities(table, 0.0, baseline_accuracy=0.9895) == {"a": 0.7, "b": 0.0}
    with pytest.raises(ConfigError):
        pick_sparsities(table, 1.5)


def test_evaluate_fn_must_return_a_fraction():
    model = TinyMLP()
    with pytest.raises(ConfigError):
        sensitivity(model, lambda m: 98.5, sparsities=(0.5,))
    with pytest.raises(ConfigError):
        sensitivity(model, lambda m: 0.9, sparsities=(1.0,))
