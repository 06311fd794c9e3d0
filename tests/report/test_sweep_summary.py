"""The sweep's per-granularity summary on hand-made points."""

from __future__ import annotations

from deepcompress.report.memrefs import MemRefs
from deepcompress.report.sweep import SweepPoint, SweepResult, format_sweep_markdown, summarize_sweep


def _point(g: str, s: float, top1: float, conv_bytes: int, refs: int) -> SweepPoint:
    return SweepPoint(granularity=g, sparsity=s, conv_weights=1000, conv_kept=int(1000 * (1 - s)),
                      conv_kept_blocks=int(1000 * (1 - s)), top1_pruned=top1, top1_final=top1,
                      file_bytes=conv_bytes + 100, dense_bytes=8000, conv_pq_bytes=conv_bytes,
                      conv_pqh_bytes=conv_bytes, conv_dense_bytes=4000,
                      memrefs=MemRefs(refs, 0, 0, 0, 0, 2 * refs), dcz="-")


def test_no_loss_threshold_and_ratios_against_element():
    points = [
        _point("element", 0.5, 0.990, 400, 1000), _point("element", 0.7, 0.9895, 300, 800),
        _point("element", 0.9, 0.970, 100, 400),
        # kernel: 0.5 within 0.1 pp, 0.7 not, 0.9 within again (a lucky point past a failing one is not taken)
        _point("kernel", 0.5, 0.9995, 200, 900), _point("kernel", 0.7, 0.980, 150, 700),
        _point("kernel", 0.9, 0.9999, 50, 300),
    ]
    result = SweepResult(baseline_top1=0.9900, points=points, settings={"tolerance_pp": 0.1})
    summary = summarize_sweep(result)
    assert summary["element"]["no_loss_sparsity"] == 0.7  # 0.9895 is 0.05 pp below 0.99
    assert summary["kernel"]["no_loss_sparsity"] == 0.5
    assert summary["kernel"]["memrefs_vs_element"] == {"0.5": 0.9, "0.7": 0.875, "0.9": 0.75}
    assert summary["kernel"]["memrefs_window_vs_element"]["0.9"] == 0.75
    at_e, at_k = summary["element"]["at_threshold"], summary["kernel"]["at_threshold"]
    assert (at_e["sparsity"], at_k["sparsity"]) == (0.7, 0.5)
    assert at_k["conv_bytes_vs_element"] == round(200 / 300, 4)
    assert at_k["memrefs_vs_element"] == round(900 / 800, 4)
    assert at_k["conv_ratio_pqh"] == 20.0 and at_k["file_ratio"] == round(8000 / 300, 3)


def test_nothing_within_the_threshold_gives_none():
    points = [_point("element", 0.5, 0.95, 400, 1000), _point("filter", 0.5, 0.94, 300, 900)]
    result = SweepResult(baseline_top1=0.99, points=points, settings={"tolerance_pp": 0.1, "data": "d",
                                                                          "fc_sparsity": 0.9, "retrain_epochs": 0,
                                                                          "bits": "8", "finetune_epochs": 0, "seed": 0})
    result.summary = summarize_sweep(result)
    assert result.summary["filter"]["no_loss_sparsity"] is None
    assert result.summary["filter"]["at_threshold"] is None
    text = format_sweep_markdown(result)
    assert "| filter | 0.5 | 50.0% | 94.00% |" in text and "| filter | - | - |" in text
