"""EIE reference engine: reproduce Table IV, the FIFO-depth and PE-count sweeps, and time the simulator.

Run: cd /work/main && PYTHONPATH=. OPENBLAS_NUM_THREADS=1 /work/venv/bin/python benchmarks/bench_eie.py

Prints Markdown tables and writes PNG plots to docs/img/eie_*.png. The Table III layers
are seeded random matrices at the table's sizes and densities (the paper's matrices are not
public); every layer uses the same global model (64 PEs, FIFO 8, 800 MHz).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from deepcompress.eie.cycles import CycleConfig, simulate_active  # noqa: E402
from deepcompress.eie.energy import estimate_energy  # noqa: E402
from deepcompress.eie.functional import nonzero_activations  # noqa: E402
from deepcompress.eie.layout import build_layout  # noqa: E402
from deepcompress.eie.paper import TABLE_III  # noqa: E402
from deepcompress.eie.synthetic import random_activations, random_layer_coo  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
IMG = REPO / "docs" / "img"
FIFO_DEPTHS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
PE_COUNTS = [1, 2, 4, 8, 16, 32, 64, 128, 256]


def layer_case(spec, seed: int):
    """COO of the random matrix and the broadcast columns for one Table III layer."""
    rows, cols, codes, cb = random_layer_coo(spec.n_out, spec.n_in, spec.weight_density, seed=seed)
    active = nonzero_activations(random_activations(spec.n_in, spec.act_density, seed=seed + 1000))
    return (rows, cols, codes, cb), active


def layout_for(spec, coo, n_pes: int):
    rows, cols, codes, cb = coo
    return build_layout((spec.n_out, spec.n_in), rows, cols, codes, cb, n_pes=n_pes)


def table_iv(seeds: list[int]) -> dict:
    base, col1 = CycleConfig(), CycleConfig(min_column_cycles=1)
    out = {}
    print("\n## Table IV: simulated time vs EIE (64 PEs, FIFO 8, 800 MHz)\n")
    print(f"Seeds {seeds}: mean time, with min..max over seeds.\n")
    print("| Layer | work/64 (µs) | simulated (µs) | paper theoretical | paper actual | sim vs actual "
          "| load-balance eff. | real/total work | variant: 1 cycle per column (µs, vs actual) "
          "| energy, power model (µJ) | energy, access model (µJ) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for spec in TABLE_III:
        times, times1, ideal, lb, pad, e_pow, e_acc = [], [], [], [], [], [], []
        for seed in seeds:
            coo, active = layer_case(spec, seed)
            layout = layout_for(spec, coo, 64)
            r = simulate_active(layout, active, base)
            r1 = simulate_active(layout, active, col1)
            e = estimate_energy(layout, active, r)
            times.append(r.time_us)
            times1.append(r1.time_us)
            ideal.append(r.ideal_cycles / r.clock_mhz)
            lb.append(r.load_balance_efficiency)
            pad.append(r.padding_efficiency)
            e_pow.append(e.power_model_uj)
            e_acc.append(e.access_model_uj)
        t, t1 = float(np.mean(times)), float(np.mean(times1))
        dev, dev1 = t / spec.actual_us - 1, t1 / spec.actual_us - 1
        out[spec.name] = {"time": t, "time_col1": t1, "dev": dev, "dev_col1": dev1, "lb": float(np.mean(lb)),
                          "pad": float(np.mean(pad))}
        mark = "" if abs(dev) <= 0.15 else " **miss**"
        mark1 = "" if abs(dev1) <= 0.15 else " **miss**"
        print(f"| {spec.name} | {np.mean(ideal):.1f} | {t:.1f} ({min(times):.1f}..{max(times):.1f}) "
              f"| {spec.theoretical_us} | {spec.actual_us} | {100 * dev:+.1f}%{mark} | {np.mean(lb):.3f} "
              f"| {np.mean(pad):.3f} | {t1:.1f} ({100 * dev1:+.1f}%{mark1}) | {np.mean(e_pow):.2f} "
              f"| {np.mean(e_acc):.2f} |")
    within = sum(abs(v["dev"]) <= 0.15 for v in out.values())
    within1 = sum(abs(v["dev_col1"]) <= 0.15 for v in out.values())
    print(f"\nWithin 15% of 'EIE actual': {within}/9 (base model), {within1}/9 (1 cycle per column).")
    return out


def fifo_sweep(seed: int) -> dict:
    eff = {}
    for spec in TABLE_III:
        coo, active = layer_case(spec, seed)
        layout = layout_for(spec, coo, 64)
        eff[spec.name] = [simulate_active(layout, active, CycleConfig(fifo_depth=d)).load_balance_efficiency
                          for d in FIFO_DEPTHS]
    print("\n## Load-balance efficiency vs FIFO depth (64 PEs; 1 - bubble cycles / total)\n")
    print("| Layer | " + " | ".join(str(d) for d in FIFO_DEPTHS) + " |")
    print("|---|" + "---|" * len(FIFO_DEPTHS))
    for name, row in eff.items():
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    mean = np.mean(list(eff.values()), axis=0)
    print("| mean | " + " | ".join(f"{v:.3f}" for v in mean) + " |")
    return eff


def pe_sweep(seed: int) -> dict:
    cycles, pad, lb = {}, {}, {}
    for spec in TABLE_III:
        coo, active = layer_case(spec, seed)
        cycles[spec.name], pad[spec.name], lb[spec.name] = [], [], []
        for n in PE_COUNTS:
            r = simulate_active(layout_for(spec, coo, n), active, CycleConfig())
            cycles[spec.name].append(r.cycles)
            pad[spec.name].append(r.padding_efficiency)
            lb[spec.name].append(r.load_balance_efficiency)
    print("\n## Speedup vs number of PEs (FIFO 8; cycles on 1 PE / cycles on N PEs)\n")
    print("| Layer | " + " | ".join(str(n) for n in PE_COUNTS) + " | 256 PEs / 64 PEs |")
    print("|---|" + "---|" * (len(PE_COUNTS) + 1))
    ratios = []
    for name, row in cycles.items():
        sp = [row[0] / c for c in row]
        ratio = row[PE_COUNTS.index(64)] / row[PE_COUNTS.index(256)]
        ratios.append(ratio)
        print(f"| {name} | " + " | ".join(f"{s:.1f}" for s in sp) + f" | {ratio:.2f}x |")
    geo = float(np.exp(np.mean(np.log(ratios))))
    print(f"\nThroughput of 256 PEs over 64 PEs: geometric mean {geo:.2f}x over the nine layers "
          f"(paper: 3.25x).")
    print("\n## Real work / total work (padding) vs number of PEs\n")
    print("| Layer | " + " | ".join(str(n) for n in PE_COUNTS) + " |")
    print("|---|" + "---|" * len(PE_COUNTS))
    for name, row in pad.items():
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    print("\n## Load-balance efficiency vs number of PEs (FIFO 8)\n")
    print("| Layer | " + " | ".join(str(n) for n in PE_COUNTS) + " |")
    print("|---|" + "---|" * len(PE_COUNTS))
    for name, row in lb.items():
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    return {"cycles": cycles, "pad": pad, "lb": lb, "ratio_geo": geo}


def row_skew_sensitivity(seed: int) -> None:
    """Not a fit: how much non-uniform row densities (real pruned layers) move the simulated time."""
    print("\n## Sensitivity: rows of unequal density (not used for Table IV)\n")
    print("Each row's density is the layer's density times a Gamma(shape) factor of mean 1 "
          "(smaller shape = more skew), same expected number of weights; seed 0.\n")
    print("| Layer | uniform (µs) | Gamma shape 4 (µs) | Gamma shape 1 (µs) | paper actual |")
    print("|---|---|---|---|---|")
    for spec in [s for s in TABLE_III if s.name in ("Alex-8", "VGG-6", "NT-LSTM")]:
        active = nonzero_activations(random_activations(spec.n_in, spec.act_density, seed=seed + 1000))
        times = []
        for shape in (None, 4.0, 1.0):
            rng = np.random.default_rng(seed)
            if shape is None:
                dens = np.full(spec.n_out, spec.weight_density)
            else:
                dens = np.minimum(spec.weight_density * rng.gamma(shape, 1.0 / shape, spec.n_out), 1.0)
            rows_l, cols_l = [], []
            for i, d in enumerate(dens):
                c = np.flatnonzero(rng.random(spec.n_in) < d)
                rows_l.append(np.full(c.size, i))
                cols_l.append(c)
            rows, cols = np.concatenate(rows_l), np.concatenate(cols_l)
            codes = rng.integers(1, 16, rows.size)
            cb = np.concatenate(([0.0], np.linspace(-1, 1, 16)[np.linspace(-1, 1, 16) != 0][:15])).astype(np.float32)
            layout = build_layout((spec.n_out, spec.n_in), rows, cols, codes, cb, n_pes=64)
            times.append(simulate_active(layout, active, CycleConfig()).time_us)
        print(f"| {spec.name} | {times[0]:.1f} | {times[1]:.1f} | {times[2]:.1f} | {spec.actual_us} |")


def speed(repeats: int) -> None:
    spec = TABLE_III[0]
    t0 = time.perf_counter()
    coo, active = layer_case(spec, 0)
    t1 = time.perf_counter()
    layout = layout_for(spec, coo, 64)
    t2 = time.perf_counter()
    simulate_active(layout, active, CycleConfig())  # numba compile or cache load
    t3 = time.perf_counter()
    sims = []
    for _ in range(repeats):
        s = time.perf_counter()
        simulate_active(layout, active, CycleConfig())
        sims.append(time.perf_counter() - s)
    sim = float(np.median(sims))
    np_times = []
    for _ in range(3):
        s = time.perf_counter()
        simulate_active(layout, active, CycleConfig(), engine="numpy")
        np_times.append(time.perf_counter() - s)

    import torch

    torch.manual_seed(0)
    dense = torch.from_numpy(layout.to_dense())
    a = torch.from_numpy(random_activations(spec.n_in, spec.act_density, seed=1000))
    csr = dense.to_sparse_csr()
    csr = torch.sparse_csr_tensor(csr.crow_indices().to(torch.int32), csr.col_indices().to(torch.int32),
                                  csr.values(), size=csr.shape)

    def bench(fn) -> float:
        fn()
        ts = []
        for _ in range(repeats):
            s = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - s)
        return float(np.median(ts))

    t_dense = bench(lambda: torch.mv(dense, a))
    t_csr = bench(lambda: torch.mv(csr, a))
    print("\n## Simulator speed on Alex-6 (9216 -> 4096, 9% weights, 35.1% activations, 64 PEs, FIFO 8)\n")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of {repeats} runs.\n")
    print("| Step | Time |")
    print("|---|---|")
    print(f"| random matrix (COO) + activations | {t1 - t0:.3f} s |")
    print(f"| EIE layout build (64 PEs, {layout.n_entries} entries incl. {layout.n_padding} padding) "
          f"| {t2 - t1:.3f} s |")
    print(f"| first cycle simulation (numba compile or cache load) | {t3 - t2:.3f} s |")
    print(f"| cycle simulation, numba recurrence | {1e3 * sim:.2f} ms |")
    print(f"| cycle simulation, numpy recurrence | {1e3 * float(np.median(np_times)):.1f} ms |")
    print(f"| torch dense matvec (float32, context) | {1e3 * t_dense:.2f} ms |")
    print(f"| torch CSR matvec, int32 indices (context) | {1e3 * t_csr:.2f} ms |")
    print(f"\nSimulation / torch dense matvec: {sim / t_dense:.2f}x; simulation / torch CSR int32: "
          f"{sim / t_csr:.2f}x. The simulated EIE time of this layer is about 29 µs.")


def plots(fifo: dict, pes: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMG.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, row in fifo.items():
        ax.plot(FIFO_DEPTHS, row, marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("FIFO depth")
    ax.set_ylabel("load-balance efficiency")
    ax.set_title("EIE model: load balance vs FIFO depth (64 PEs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(IMG / "eie_fifo_depth.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, row in pes["cycles"].items():
        ax.plot(PE_COUNTS, [row[0] / c for c in row], marker="o", label=name)
    ax.plot(PE_COUNTS, PE_COUNTS, "k--", lw=0.8, label="linear")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("number of PEs")
    ax.set_ylabel("speedup over 1 PE")
    ax.set_title("EIE model: scalability (FIFO 8)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(IMG / "eie_pe_scaling.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name in pes["pad"]:
        axes[0].plot(PE_COUNTS, pes["pad"][name], marker="o", label=name)
        axes[1].plot(PE_COUNTS, pes["lb"][name], marker="o", label=name)
    for ax, title in zip(axes, ("real work / total work (padding)", "load-balance efficiency")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("number of PEs")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(IMG / "eie_padding_balance.png", dpi=110)
    plt.close(fig)
    print(f"\nPlots: {', '.join(sorted(p.name for p in IMG.glob('eie_*.png')))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per layer for the Table IV comparison")
    parser.add_argument("--repeats", type=int, default=20, help="timing repeats")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args()
    t0 = time.perf_counter()
    table_iv(list(range(args.seeds)))
    fifo = fifo_sweep(0)
    pes = pe_sweep(0)
    row_skew_sensitivity(0)
    speed(args.repeats)
    if not args.no_plots:
        plots(fifo, pes)
    print(f"\nTotal benchmark time: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
