"""Energy estimates: the power model's arithmetic and the access counts against brute force."""

from __future__ import annotations

import pytest

from deepcompress.eie.energy import access_counts, power_model_uj
from deepcompress.eie.functional import nonzero_activations
from deepcompress.eie.paper import PE_POWER_MW, TABLE_II_PE_MW
from deepcompress.eie.simulate import simulate_layer
from deepcompress.eie.synthetic import random_activations, random_layout


def test_power_model_is_the_papers_figure() -> None:
    """64 PEs x 9.157 mW = 0.586 W (the paper's 0.59 W); 800 cycles at 800 MHz = 1 µs -> 0.586 µJ."""
    assert power_model_uj(800, 64, 800.0) == pytest.approx(64 * 9.157e-3)
    assert sum(TABLE_II_PE_MW.values()) == pytest.approx(PE_POWER_MW, abs=2e-3)


def test_access_counts_match_brute_force() -> None:
    """Spmat words = distinct 64-bit words each (PE, broadcast column) slice touches."""
    layout = random_layout(300, 90, 0.08, seed=11, n_pes=8)
    a = random_activations(90, 0.5, seed=12)
    active = nonzero_activations(a)
    counts = access_counts(layout, active)
    words = entries = 0
    for k in range(layout.n_pes):
        ptr = layout.pe(k).col_ptr
        for j in active:
            touched = {e // 8 for e in range(ptr[j], ptr[j + 1])}
            words += len(touched)
            entries += ptr[j + 1] - ptr[j]
    assert (counts.spmat_words, counts.entries) == (words, entries)
    assert counts.pointer_reads == 8 * active.size


def test_layer_energy_report() -> None:
    """The power estimate follows the cycles; the module split sums to it; the access model is smaller."""
    layout = random_layout(1024, 2048, 0.09, seed=1, n_pes=64)
    a = random_activations(2048, 0.35, seed=2)
    sim = simulate_layer(layout, a)
    e = sim.energy
    assert e.power_model_uj == pytest.approx(sim.cycles.time_us * 1e-6 * 64 * PE_POWER_MW * 1e-3 * 1e6)
    assert sum(e.power_breakdown_uj.values()) == pytest.approx(e.power_model_uj)
    assert e.power_breakdown_uj["spmat_read"] == pytest.approx(e.power_model_uj * 4.955 / 9.158)
    assert 0.1 < e.access_to_power_ratio < 1.0
    d = sim.as_dict()
    assert d["cycles"] == sim.cycles.cycles and d["entries"] == sim.cycles.total_entries
