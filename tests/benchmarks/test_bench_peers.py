"""benchmarks/bench_peers.py without the peers installed: the JSON row schema, the paired change, the bar."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCH))
        yield importlib.import_module("bench_peers")


def row(tool, right, nbytes, label="x"):
    return {"tool": tool, "label": label, "right": right, "bytes": nbytes, "seconds": 1.234, "peak_rss_mb": 100.04}


def test_json_row_has_exactly_the_issue_keys(bench):
    base = [True, True, False, True]
    out = bench.public_row(row("deepcompress", [True, False, False, True], 1000), base, "lenet300")
    assert tuple(out) == bench.ROW_KEYS == ("model", "tool", "settings", "bytes", "metric", "metric_name",
                                             "baseline_metric", "seconds", "peak_rss_mb")
    assert out["metric"] == 0.5 and out["baseline_metric"] == 0.75
    assert out["metric_name"] == "top1" and bench.HIGHER_IS_BETTER["top1"]
    assert not bench.HIGHER_IS_BETTER["val_loss"]
    assert out["seconds"] == 1.23 and out["peak_rss_mb"] == 100.0


def test_paired_change_counts_items_lost_and_gained(bench):
    base = [True, True, False, False]
    new = [True, False, True, True]
    assert bench.paired_change(base, new) == (25.0, 1, 2)
    assert bench.paired_change(base, base) == (0.0, 0, 0)


def test_bar_takes_the_smallest_of_our_files_that_is_no_worse(bench):
    good, worse = [True] * 9 + [False], [True] * 8 + [False] * 2
    rows = [row("deepcompress", good, 100, "big"), row("deepcompress data-free", worse, 40, "small"),
            row("nncf", worse, 200), row("zipnn", [True] * 10, 900)]
    res = {p["tool"]: (best and best["label"], ratio) for p, best, ratio in bench.bar_rows(rows)}
    assert res["nncf"] == ("small", 5.0)  # the 40-byte file is as good as the nncf one
    assert res["zipnn"] == (None, None)  # lossless and better than every deepcompress row: a peer win


def test_every_tool_has_a_lenet300_run_and_ours_come_first(bench):
    runs = bench.runs_for("lenet300")
    tools = {t.replace(" data-free", "") for t, _, _ in runs}
    assert tools == set(bench.TOOLS)
    assert runs[0][0] == "deepcompress" and runs[0][2] == {"recipe": "lenet300_best.toml"}
    assert (BENCH.parent / "recipes" / "lenet300_best.toml").is_file()
    labels = [(t, label) for t, label, _ in runs]
    assert len(labels) == len(set(labels))
    for model in ("lenet300", "resnet20"):  # each run's artefact and log file names are its own
        slugs = [bench.slug(f"{t}_{label}") for t, label, _ in bench.runs_for(model)]
        assert len(slugs) == len(set(slugs))


def test_a_missing_tool_is_reported_with_its_reason(bench, monkeypatch):
    monkeypatch.setitem(bench.TOOLS, "nncf", (bench.run_nncf, "no_such_module_for_peers_test"))
    why = bench.tool_status("nncf")
    assert why is not None and "no_such_module_for_peers_test" in why and "ModuleNotFoundError" in why
