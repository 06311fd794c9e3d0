"""Running the granularity sweep (Mao et al. 2017): one :func:`~deepcompress.compression.compress` per point.

For every granularity and every conv-layer sparsity in a grid, one stage graph
``prune -> retrain -> quantize [-> finetune] -> encode`` runs through the front
door with one shared work folder, the data loaded once, and each distinct set
of weights evaluated once (the baseline included); a re-run reuses every
cached stage. Fully connected layers are pruned at a fixed setting (element
granularity, ``fc_sparsity``) at every point, so the points differ only in the
conv layers. :mod:`deepcompress.report.sweep` measures and reports the points.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..granularity import parse_nm
from ..report.memrefs import SCNN, ScnnArray, conv_geometry
from ..report.sweep import DEFAULT_GRANULARITIES, SweepPoint, SweepResult, measure_point, summarize_sweep


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def sweep_stages(granularity: str, sparsity: float, *, fc_sparsity: float, retrain_epochs: int,
                 finetune_epochs: int, bits: str, lr: float = 0.01, dense_layers: Sequence[str] = (),
                 distill: float = 0.0) -> tuple[Any, ...]:
    """The stage graph of one sweep point; ``dense_layers`` (tensor names) are not pruned."""
    from .stages import EncodeConfig, FinetuneConfig, PruneConfig, QuantizeConfig, RetrainConfig

    spec = f"conv={sparsity:g},fc={fc_sparsity:g}" + "".join(f",{name}=0" for name in dense_layers)
    stages: list[Any] = [PruneConfig(sparsity=spec, granularity=granularity, fc_granularity="element", lr=lr)]
    if retrain_epochs > 0:
        stages.append(RetrainConfig(epochs=retrain_epochs, lr=lr, distill=distill))
    stages.append(QuantizeConfig(bits=bits))
    if finetune_epochs > 0:
        stages.append(FinetuneConfig(epochs=finetune_epochs, distill=distill))
    stages.append(EncodeConfig())
    return tuple(stages)


def sweep_grid(granularities: Sequence[str], sparsities: Sequence[float]) -> list[tuple[str, float]]:
    """The (granularity, sparsity) points: the grid for block granularities, the one fixed point of an N:M pattern."""
    points = []
    for g in granularities:
        pattern = parse_nm(g)
        points += [(g, round(pattern.sparsity, 6))] if pattern is not None else [(g, s) for s in sparsities]
    return points


class _MemoEval:
    """top-1 of a model on the test loader, each distinct set of weights evaluated once across points."""

    def __init__(self, test_loader: Any) -> None:
        self.test_loader = test_loader
        self.memo: dict[str, float] = {}

    def __call__(self, model: Any) -> float:
        from ..training import evaluate
        from .context import _weights_digest

        key = _weights_digest(model)
        if key not in self.memo:
            self.memo[key] = evaluate(model, self.test_loader)["top1"]
        return self.memo[key]


def run_sweep(
    model: Any,
    arch: dict[str, Any] | None,
    *,
    data_spec: str,
    out_dir: str | Path,
    granularities: Sequence[str] = DEFAULT_GRANULARITIES,
    sparsities: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9),
    fc_sparsity: float = 0.9,
    retrain_epochs: int = 1,
    finetune_epochs: int = 0,
    bits: str = "conv=8,fc=5",
    lr: float = 0.01,
    seed: int = 0,
    tolerance_pp: float = 0.1,
    first_conv_dense: bool = True,
    distill: float = 0.0,
    memory_model: ScnnArray = SCNN,
    work_dir: str | Path | None = None,
    log: Callable[[str], None] = _stderr,
) -> SweepResult:
    """Run the sweep; ``.dcz`` files go to ``out_dir/dcz``, the stage cache to ``work_dir`` (``out_dir/work``).

    ``first_conv_dense`` leaves the first conv layer unpruned at every point (as
    Mao et al. do); ``distill`` is the weight of the loss towards the input model
    in retraining and fine-tuning (0: labels only). An N:M granularity has one
    point, at its fixed sparsity 1 - N/M.
    """
    from ..atomic import prepare_folder
    from ..compression import compress, dense_bytes_of
    from ..container import read_dcz
    from ..data import load_dataset
    from ..layers import compressible_layers
    from .recipe import Recipe

    if not 0.0 <= fc_sparsity < 1.0:
        raise ConfigError(f"--fc-sparsity must be in [0, 1); got {fc_sparsity}")
    convs = [r.tensor_name for r in compressible_layers(model) if r.kind == "conv"]
    if not convs:
        raise ConfigError("the model has no conv layers; the granularity sweep prunes conv layers")
    dense_layers = convs[:1] if first_conv_dense else []
    plans = [(g, s, sweep_stages(g, s, fc_sparsity=fc_sparsity, retrain_epochs=retrain_epochs,
                                 finetune_epochs=finetune_epochs, bits=bits, lr=lr, dense_layers=dense_layers,
                                 distill=distill))
             for g, s in sweep_grid(granularities, sparsities)]  # every config is checked before any work
    convs = [name for name in convs if name not in dense_layers]  # the pruned conv layers are what is compared
    out = Path(out_dir)
    prepare_folder(out / "dcz", "sweep output folder")
    work = Path(work_dir) if work_dir else out / "work"
    t0 = time.perf_counter()
    train_loader, test_loader, _ = load_dataset(data_spec, batch_size=128, seed=seed)
    loaders = {128: (train_loader, test_loader)}

    def loaders_for() -> tuple[Any, Any]:
        return loaders[128]

    evaluate_top1 = _MemoEval(test_loader)
    geometry = conv_geometry(model, next(iter(test_loader))[0][:1])
    baseline_top1 = evaluate_top1(model)
    log(f"baseline top-1 {100 * baseline_top1:.2f}%")
    dense = dense_bytes_of(model)
    points: list[SweepPoint] = []
    for g, s, stages in plans:
        t1 = time.perf_counter()
        path = out / "dcz" / f"{g.replace(':', 'of')}_{s:g}.dcz"
        result = compress(model, path, recipe=Recipe(stages, name=f"sweep {g} {s:g}"), data=data_spec,
                          loaders=loaders_for, eval_fn=evaluate_top1, arch=arch, seed=seed, work_dir=work,
                          log=lambda line: None, progress=False)
        point = measure_point(read_dcz(path), path, g, s, convs, geometry, result.history, dense, array=memory_model)
        points.append(point)
        log(f"[{len(points)}/{len(plans)}] {g:<8} sparsity {s:.2f}: top-1 {_pct(point.top1_pruned)} pruned, "
            f"{_pct(point.top1_final)} file; conv {point.conv_pqh_bytes:,} B; file {point.file_bytes:,} B; "
            f"mem refs {point.memrefs.total:,} ({time.perf_counter() - t1:.1f}s)")
    settings = {
        "granularities": list(granularities), "sparsities": list(sparsities), "points": len(plans), "fc_sparsity": fc_sparsity,
        "fc_granularity": "element", "retrain_epochs": retrain_epochs, "finetune_epochs": finetune_epochs,
        "bits": bits, "lr": lr, "seed": seed, "data": data_spec, "tolerance_pp": tolerance_pp,
        "first_conv_dense": first_conv_dense, "dense_layers": list(dense_layers), "distill": distill,
        "memory_model": memory_model.to_json(),
        "arch": arch,
    }
    result = SweepResult(baseline_top1, points, settings, seconds=round(time.perf_counter() - t0, 1))
    result.summary = summarize_sweep(result)
    return result


def _pct(top1: float | None) -> str:
    return "-" if top1 is None else f"{100 * top1:.2f}%"
