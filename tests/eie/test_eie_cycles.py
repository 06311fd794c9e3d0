"""The fast cycle recurrence against a slow, cycle-by-cycle simulator, and the model's properties."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcompress.eie.cycles import (
    CycleConfig,
    broadcast_recurrence,
    cost_matrix,
    simulate_cycles,
    theoretical_cycles,
)
from deepcompress.eie.functional import nonzero_activations
from deepcompress.eie.synthetic import random_activations, random_layout
from deepcompress.errors import ConfigError


def slow_simulate(cost: np.ndarray, depth: int, latency: int) -> tuple[int, list[int]]:
    """Step the machine one cycle at a time with explicit FIFOs.

    A FIFO holds the activations a PE has not finished; its head is the one being worked on.
    Each cycle: (A) every PE whose head is finished drops it, then starts the next head if
    that was broadcast at least ``latency`` cycles ago (dropping at once any with no work),
    and works one cycle on its head; (B) the central unit broadcasts the next activation to
    every FIFO if none is full. Returns (cycles until all is done, busy cycles per PE).
    """
    n_act, n_pes = cost.shape
    fifos: list[deque] = [deque() for _ in range(n_pes)]  # items: [k, broadcast cycle, started]
    remaining = [0] * n_pes
    busy = [0] * n_pes
    nxt, t = 0, 0
    while True:
        for p in range(n_pes):
            f = fifos[p]
            if f and f[0][2] and remaining[p] == 0:
                f.popleft()  # finished
            while f and not f[0][2] and f[0][1] <= t - latency:
                k = f[0][0]
                if cost[k, p] == 0:
                    f.popleft()  # nothing to do in this column
                    continue
                f[0][2] = True
                remaining[p] = int(cost[k, p])
                break
        if nxt == n_act and all(not f for f in fifos):
            return t, busy
        for p in range(n_pes):
            if remaining[p]:
                remaining[p] -= 1
                busy[p] += 1
        if nxt < n_act and all(len(f) < depth for f in fifos):
            for f in fifos:
                f.append([nxt, t, False])
            nxt += 1
        t += 1


@settings(max_examples=150, deadline=None)
@given(
    n_act=st.integers(1, 40),
    n_pes=st.integers(1, 7),
    depth=st.integers(1, 6),
    latency=st.integers(1, 3),
    max_cost=st.integers(0, 6),
    seed=st.integers(0, 2**31 - 1),
)
def test_recurrence_equals_slow_simulator(n_act, n_pes, depth, latency, max_cost, seed) -> None:
    """Cycle counts of the numba and numpy recurrences equal the step-by-step machine exactly."""
    rng = np.random.default_rng(seed)
    cost = rng.integers(0, max_cost + 1, (n_act, n_pes)) * (rng.random((n_act, n_pes)) < 0.7)
    expected, _ = slow_simulate(cost, depth, latency)
    for engine in ("numba", "numpy"):
        bcast, finish = broadcast_recurrence(cost, depth, latency, engine)
        assert int(finish.max()) == expected
        assert np.all(np.diff(bcast) >= 1)


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 120),
    cols=st.integers(1, 40),
    density=st.floats(0.02, 0.6),
    act_density=st.floats(0.0, 1.0),
    n_pes=st.integers(1, 8),
    depth=st.sampled_from([1, 2, 4, 8]),
    min_col=st.integers(0, 1),
    seed=st.integers(0, 2**31 - 1),
)
def test_layer_cycles_equal_slow_simulator(rows, cols, density, act_density, n_pes, depth, min_col, seed) -> None:
    """On real layouts (padding included) the layer's cycles and per-PE busy cycles match the slow machine."""
    layout = random_layout(rows, cols, density, seed=seed, n_pes=n_pes)
    a = random_activations(cols, act_density, seed=seed + 1)
    cfg = CycleConfig(fifo_depth=depth, min_column_cycles=min_col)
    report = simulate_cycles(layout, a, cfg)
    cost, _ = cost_matrix(layout, nonzero_activations(a), min_col)
    expected, busy = slow_simulate(cost, depth, 1)
    assert report.cycles == expected
    assert report.pe_busy.tolist() == busy
    assert report.total_entries == int(cost.sum()) if min_col == 0 else report.total_entries <= int(cost.sum())


def test_walkthrough_example_counts() -> None:
    """One PE, FIFO 1: a broadcast waits until the previous activation is finished."""
    cost = np.array([[3], [0], [2]])
    # k0 broadcast at 0, worked in cycles 1..3, finished at 4; k1 broadcast at 4, dropped at 5
    # (no work); k2 broadcast at 5, worked in 6..7; done at 8.
    bcast, finish = broadcast_recurrence(cost, 1, 1, "numpy")
    assert bcast.tolist() == [0, 4, 5] and finish.tolist() == [8]
    assert slow_simulate(cost, 1, 1)[0] == 8
    # With FIFO 2 the broadcasts run ahead: k1 at 1, k2 at 4 (k0 finished at 4).
    bcast, finish = broadcast_recurrence(cost, 2, 1, "numpy")
    assert bcast.tolist() == [0, 1, 4] and finish.tolist() == [7]
    assert slow_simulate(cost, 2, 1)[0] == 7


def test_report_metrics_and_bounds() -> None:
    """Cycles never beat the busiest PE; efficiency, padding and utilisation follow their definitions."""
    layout = random_layout(512, 700, 0.06, seed=1, n_pes=16)
    a = random_activations(700, 0.4, seed=2)
    r = simulate_cycles(layout, a, CycleConfig(fifo_depth=4, clock_mhz=500.0))
    active = nonzero_activations(a)
    assert r.cycles >= theoretical_cycles(layout, active) >= r.ideal_cycles
    assert r.n_broadcasts == active.size
    assert r.time_us == pytest.approx(r.cycles / 500.0)
    assert r.load_balance_efficiency == pytest.approx(r.pe_busy.sum() / (16 * r.cycles))
    assert r.real_entries == int(np.count_nonzero(layout.to_dense()[:, active]))
    assert 0 < r.padding_efficiency < 1
    assert np.all(r.pe_utilization <= 1.0)


def test_fifo_depth_helps_and_saturates() -> None:
    """Depth 1 idles about half the cycles, depth 8 few, and depth 256 gains little over 8 (paper §VI-C)."""
    layout = random_layout(2048, 2048, 0.09, seed=3, n_pes=64)
    a = random_activations(2048, 0.35, seed=4)
    eff = {d: simulate_cycles(layout, a, CycleConfig(fifo_depth=d)).load_balance_efficiency for d in (1, 8, 256)}
    assert eff[1] < 0.65 and 0.85 < eff[8] <= eff[256] + 1e-12
    assert eff[256] - eff[8] < 0.1


def test_zero_activations_cost_nothing() -> None:
    layout = random_layout(64, 32, 0.3, seed=0, n_pes=4)
    r = simulate_cycles(layout, np.zeros(32))
    assert (r.cycles, r.n_broadcasts, r.load_balance_efficiency) == (0, 0, 1.0)


def test_alexnet_fc6_simulates() -> None:
    """Alex-6 (9216 -> 4096, 9% weights, 35% activations, 64 PEs, FIFO 8) runs; its speed is in bench_eie.py."""
    layout = random_layout(4096, 9216, 0.09, seed=0, n_pes=64)
    a = random_activations(9216, 0.351, seed=1)
    r = simulate_cycles(layout, a)
    assert r.n_broadcasts == round(0.351 * 9216)
    assert 0.9 < r.load_balance_efficiency <= 1.0


def test_config_checks() -> None:
    with pytest.raises(ConfigError):
        CycleConfig(fifo_depth=0)
    with pytest.raises(ConfigError):
        CycleConfig(clock_mhz=0)
    with pytest.raises(ConfigError):
        broadcast_recurrence(np.zeros((1, 1)), 1, 1, "gpu")
    with pytest.raises(ConfigError):
        CycleConfig(latency=0)
