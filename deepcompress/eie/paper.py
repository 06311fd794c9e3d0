"""Published EIE figures the model is built from and compared with (Han et al., ISCA 2016).

Transcribed in /work/shared/reference/papers.md §2: Table I (energy per operation, 45 nm),
Table II (one PE's power by module), Table III (benchmark layers) and Table IV (EIE rows).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Table I: energy per operation in pJ, 45 nm CMOS (Horowitz).
TABLE_I_PJ: dict[str, float] = {
    "int32_add": 0.1,
    "float32_add": 0.9,
    "int32_mult": 3.1,
    "float32_mult": 3.7,
    "sram32_32kb": 5.0,
    "dram32": 640.0,
}

#: Table II: power of one PE in mW at 800 MHz, by module (sums to the 9.157 mW total).
TABLE_II_PE_MW: dict[str, float] = {
    "act_queue": 0.112,
    "ptr_read": 1.807,
    "spmat_read": 4.955,
    "arithm_unit": 1.162,
    "act_rw": 1.122,
}
PE_POWER_MW = 9.157
PAPER_CLOCK_MHZ = 800.0
PAPER_PES = 64
PAPER_FIFO_DEPTH = 8


@dataclass(frozen=True)
class BenchmarkLayer:
    """A Table III layer and its Table IV EIE times."""

    name: str
    n_in: int
    n_out: int
    weight_density: float
    act_density: float
    theoretical_us: float
    actual_us: float


#: Table III sizes and densities with Table IV "EIE theoretical" and "EIE actual" (µs).
TABLE_III: tuple[BenchmarkLayer, ...] = (
    BenchmarkLayer("Alex-6", 9216, 4096, 0.09, 0.351, 28.1, 30.3),
    BenchmarkLayer("Alex-7", 4096, 4096, 0.09, 0.353, 11.7, 12.2),
    BenchmarkLayer("Alex-8", 4096, 1000, 0.25, 0.375, 8.9, 9.9),
    BenchmarkLayer("VGG-6", 25088, 4096, 0.04, 0.183, 28.1, 34.4),
    BenchmarkLayer("VGG-7", 4096, 4096, 0.04, 0.375, 7.9, 8.7),
    BenchmarkLayer("VGG-8", 4096, 1000, 0.23, 0.411, 7.3, 8.4),
    BenchmarkLayer("NT-We", 4096, 600, 0.10, 1.0, 5.2, 8.0),
    BenchmarkLayer("NT-Wd", 600, 8791, 0.11, 1.0, 13.0, 13.9),
    BenchmarkLayer("NT-LSTM", 1201, 2400, 0.10, 1.0, 6.5, 7.5),
)
