"""Energy estimates for one layer on EIE, from the paper's power and per-access figures.

Two independent estimates:

1. **Power model** (the headline figure). Table II gives one PE's power at 800 MHz,
   9.157 mW, measured on the layout at the design point. Energy =
   ``cycles / clock * n_pes * 9.157 mW``, split over the modules in Table II's proportions
   (SpmatRead 4.955, PtrRead 1.807, ArithmUnit 1.162, ActRW 1.122, Act queue 0.112 mW).
   Every PE burns its power for the whole layer, idle or not (the clock network alone is
   20% of it), so load imbalance costs energy. The power is taken as constant across
   clocks (a lower clock would in reality also lower dynamic power).
2. **Access-count model** (a cross-check from Table I, 45 nm): count the work and price it:

   * sparse-matrix SRAM reads: one 64-bit word per 8 entries (``64 // (index_bits +
     weight_bits)`` entries per word); per (PE, broadcast column) the words the slice
     ``ptr[j] : ptr[j+1]`` touches; priced as two 32-bit SRAM accesses, 2 x 5 pJ;
   * pointer reads: one per PE per broadcast (``p[j]`` and ``p[j+1]``, two 16-bit banks):
     one 32-bit SRAM access, 5 pJ;
   * per entry (padding included): a 16-bit multiply, 3.1 pJ / 5 = 0.62 pJ (the paper: a
     16-bit fixed multiply costs 5x less than 32-bit), and a 32-bit add, 0.1 pJ;
   * per entry: codebook lookup plus destination read and write, three 16-bit register
     file accesses at 0.5 pJ each (1 pJ per 32-bit register-file access is from Han's talks,
     not Table I: an assumption);
   * leading non-zero detection: one 16-bit register-file read per input activation, and
     one 16-bit write per output activation.

   It counts dynamic datapath and memory energy only: no clock tree, no leakage, no
   control, and a 32 KB SRAM price for a 128 KB array, so it comes out well below the
   power model. The ratio of the two is reported, not hidden.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cycles import CycleReport
from .layout import EIELayout
from .paper import PE_POWER_MW, TABLE_I_PJ, TABLE_II_PE_MW

SPMAT_WORD_BITS = 64
REGFILE16_PJ = 0.5  # half of the 1 pJ per 32-bit register-file access quoted in Han's talks
MULT16_PJ = TABLE_I_PJ["int32_mult"] / 5.0
ADD_PJ = TABLE_I_PJ["int32_add"]
SRAM32_PJ = TABLE_I_PJ["sram32_32kb"]


@dataclass(frozen=True)
class AccessCounts:
    """Work of one layer in memory accesses and operations, summed over PEs."""

    spmat_words: int
    pointer_reads: int
    entries: int
    input_reads: int
    output_writes: int

    def energy_pj(self) -> dict[str, float]:
        """Energy of each kind of access, in pJ (see the module docstring for the prices)."""
        return {
            "spmat_read": self.spmat_words * 2 * SRAM32_PJ,
            "ptr_read": self.pointer_reads * SRAM32_PJ,
            "arithm": self.entries * (MULT16_PJ + ADD_PJ),
            "act_rw": self.entries * 3 * REGFILE16_PJ + (self.input_reads + self.output_writes) * REGFILE16_PJ,
        }


@dataclass(frozen=True)
class EnergyReport:
    """Both estimates for one layer, in µJ."""

    power_model_uj: float
    power_breakdown_uj: dict[str, float]
    access_model_uj: float
    access_breakdown_uj: dict[str, float]
    counts: AccessCounts

    @property
    def access_to_power_ratio(self) -> float:
        return self.access_model_uj / self.power_model_uj if self.power_model_uj else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "power_model_uj": self.power_model_uj,
            "power_breakdown_uj": dict(self.power_breakdown_uj),
            "access_model_uj": self.access_model_uj,
            "access_breakdown_uj": dict(self.access_breakdown_uj),
            "spmat_words": self.counts.spmat_words,
            "pointer_reads": self.counts.pointer_reads,
            "entries": self.counts.entries,
        }


def access_counts(layout: EIELayout, active: np.ndarray) -> AccessCounts:
    """Count SRAM words, pointer reads and entries for broadcasting columns ``active``."""
    active = np.asarray(active, dtype=np.int64)
    per_word = max(SPMAT_WORD_BITS // (layout.index_bits + layout.weight_bits), 1)
    start = layout.col_ptr[:, active]
    end = layout.col_ptr[:, active + 1]
    nonempty = end > start
    words = np.where(nonempty, (end - 1) // per_word - start // per_word + 1, 0)
    return AccessCounts(
        spmat_words=int(words.sum()),
        pointer_reads=int(layout.n_pes * active.size),
        entries=int((end - start).sum()),
        input_reads=int(layout.n_cols),
        output_writes=int(layout.n_rows),
    )


def power_model_uj(cycles: int, n_pes: int, clock_mhz: float, pe_power_mw: float = PE_POWER_MW) -> float:
    """``cycles / clock * n_pes * pe_power`` in µJ."""
    seconds = cycles / (clock_mhz * 1e6)
    return seconds * n_pes * pe_power_mw * 1e-3 * 1e6


def estimate_energy(layout: EIELayout, active: np.ndarray, report: CycleReport) -> EnergyReport:
    """Both energy estimates for a simulated layer (``active`` = broadcast column indices)."""
    total = power_model_uj(report.cycles, report.n_pes, report.clock_mhz)
    module_sum = sum(TABLE_II_PE_MW.values())
    power_breakdown = {k: total * v / module_sum for k, v in TABLE_II_PE_MW.items()}
    counts = access_counts(layout, active)
    pj = counts.energy_pj()
    return EnergyReport(
        power_model_uj=total,
        power_breakdown_uj=power_breakdown,
        access_model_uj=sum(pj.values()) * 1e-6,
        access_breakdown_uj={k: v * 1e-6 for k, v in pj.items()},
        counts=counts,
    )
