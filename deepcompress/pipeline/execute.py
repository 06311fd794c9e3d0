"""The function behind each stage config: ``run(config, state, ctx) -> state``."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

from .. import distributed as dist
from ..atomic import write_bytes_atomic
from ..errors import ConfigError, PipelineError
from ..layerspec import LayerSpec, parse_layer_spec, sparsity_value
from .context import RunContext
from .stages import EncodeConfig, FinetuneConfig, PruneConfig, QuantizeConfig, RetrainConfig, StageConfig
from .state import PipelineState

EXECUTORS: dict[type, Callable[[Any, PipelineState, RunContext], PipelineState]] = {}


def executes(cls: type) -> Callable:
    def deco(fn: Callable) -> Callable:
        EXECUTORS[cls] = fn
        return fn

    return deco


def run_stage(cfg: StageConfig, state: PipelineState, ctx: RunContext) -> PipelineState:
    """Run one stage and return the new state."""
    try:
        fn = EXECUTORS[type(cfg)]
    except KeyError:
        raise PipelineError(f"no executor for stage type {cfg.TYPE!r}") from None
    return fn(cfg, state, ctx)


# -- training with epoch checkpoints ------------------------------------------------------


class EpochCheckpoint:
    """Resume support inside a training stage: one file, rewritten atomically after each epoch."""

    def __init__(self, ctx: RunContext) -> None:
        folder = ctx.stage_dir()
        self.path = folder / "epoch.pt" if folder is not None else None
        self.resume = ctx.resume

    def load(self) -> dict[str, Any] | None:
        if dist.is_distributed():  # rank 0 reads, every rank gets its payload
            return dist.broadcast_object(self._read() if dist.is_main() else None)
        return self._read()

    def _read(self) -> dict[str, Any] | None:
        import torch

        if self.path is None or not self.resume or not self.path.is_file():
            return None
        return torch.load(self.path, map_location="cpu", weights_only=True)

    def save(self, payload: dict[str, Any]) -> None:
        import torch

        if self.path is None or not dist.is_main():
            return
        buf = io.BytesIO()
        torch.save(payload, buf)
        write_bytes_atomic(self.path, buf.getvalue())


def _train_config(cfg: Any, epochs: int, seed: int):
    from ..training import TrainConfig

    return TrainConfig(
        epochs=epochs,
        lr=cfg.lr,
        momentum=getattr(cfg, "momentum", 0.9),
        weight_decay=getattr(cfg, "weight_decay", 0.0),
        optimizer=getattr(cfg, "optimizer", "sgd"),
        batch_size=getattr(cfg, "batch_size", 128),
        seed=seed,
    )


def _epoch_loop(
    ctx: RunContext,
    model: Any,
    optimizer: Any,
    train_cfg: Any,
    desc: str,
    before_epoch: Callable[[int], None] | None = None,
    extra_state: Callable[[], dict[str, Any]] | None = None,
    restore_extra: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Train epoch by epoch, checkpointing after each so ``--resume`` continues mid-stage."""
    from ..training import train_one_epoch

    ckpt = EpochCheckpoint(ctx)
    start = 0
    saved = ckpt.load()
    if saved is not None:
        if restore_extra is not None:
            restore_extra(saved.get("extra", {}))
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        start = int(saved["epoch"]) + 1
        ctx.log(f"{desc}: resuming after epoch {start}/{train_cfg.epochs}")
    train_loader = None if ctx.train_fn is not None else dist.shard_loader(ctx.loaders(train_cfg.batch_size)[0], ctx.log)
    trained = dist.wrap_ddp(model)  # the model itself in a single process
    for epoch in range(start, train_cfg.epochs):
        if before_epoch is not None:
            before_epoch(epoch)
        lr = train_cfg.lr_at(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch + 1000 * ctx.stage_index)
        t0 = time.perf_counter()
        if ctx.train_fn is not None:
            trained.train()
            stats = ctx.train_fn(trained, optimizer, epoch) or {}
        else:
            stats = train_one_epoch(trained, train_loader, optimizer, desc=f"{desc} {epoch + 1}", progress=ctx.progress)
        line = f"{desc} epoch {epoch + 1}/{train_cfg.epochs}: loss {stats.get('loss', float('nan')):.4f}"
        metrics = ctx.evaluate(model) if ctx.has_data else None
        if metrics is not None:
            line += f", test error {metrics['error_pct']:.2f}%"
        ctx.log(line + f" ({time.perf_counter() - t0:.1f}s)")
        ckpt.save(
            {
                "epoch": epoch,
                "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
                "optimizer": optimizer.state_dict(),
                "extra": extra_state() if extra_state is not None else {},
            }
        )
    if trained is not model:  # drop DDP's gradient hooks before the next stage trains these parameters
        del trained
        dist.release_ddp()


# -- prune --------------------------------------------------------------------------------


def _scaled(spec: LayerSpec, fraction: float) -> LayerSpec:
    scale = lambda v: None if v is None else float(v) * fraction  # noqa: E731
    return LayerSpec(
        default=scale(spec.default),
        by_kind={k: scale(v) for k, v in spec.by_kind.items()},
        by_name={k: scale(v) for k, v in spec.by_name.items()},
    )


def _masks_for(cfg: PruneConfig, model: Any, sparsity: Any, granularity: Any, fc_granularity: Any):
    from ..pruning.masks import global_masks, layerwise_masks

    if cfg.scope == "global":
        return global_masks(model, float(sparsity if not isinstance(sparsity, LayerSpec) else sparsity.default),
                            granularity, fc_granularity=fc_granularity, norm=cfg.saliency)
    return layerwise_masks(model, sparsity, granularity, fc_granularity=fc_granularity, norm=cfg.saliency)


def _couple(cfg: PruneConfig, state: PipelineState, ctx: RunContext, masks: Any) -> Any:
    """With ``thin``: add masks for the biases and BatchNorm entries of pruned filters."""
    if not cfg.thin:
        return masks
    from ..pruning.maskset import COUPLED
    from ..pruning.thinning import complete_masks

    full = complete_masks(state.model, masks, ctx.example_input(state.model, state.arch))
    coupled = {n: full[n] for n in full if full.granularity(n) == COUPLED}
    return masks.with_masks(coupled, granularity=COUPLED)


def _granularities(cfg: PruneConfig) -> tuple[Any, Any]:
    from ..granularity import parse_block

    if cfg.block is not None:
        block = parse_block(cfg.block)
        return block, block
    return cfg.granularity, cfg.fc_granularity


@executes(PruneConfig)
def run_prune(cfg: PruneConfig, state: PipelineState, ctx: RunContext) -> PipelineState:
    from ..training import make_optimizer

    model = state.model
    granularity, fc_granularity = _granularities(cfg)
    target: Any
    if cfg.sparsity == "auto":
        target = _auto_sparsity(cfg, state, ctx, granularity, fc_granularity)
    else:
        target = parse_layer_spec(cfg.sparsity, sparsity_value, "--sparsity")
    if cfg.schedule == "oneshot" or not ctx.has_data or cfg.epochs_per_step == 0:
        masks = _masks_for(cfg, model, target, granularity, fc_granularity)
        if state.masks is not None:
            masks = masks.intersect(state.masks)
        masks = _couple(cfg, state, ctx, masks)
        masks.apply(model)
        state.masks = masks
        _log_sparsity(ctx, masks)
        return state

    steps = cfg.steps
    fractions = [
        (i / steps) if cfg.schedule == "iterative" else 1.0 - (1.0 - i / steps) ** 3 for i in range(1, steps + 1)
    ]
    train_cfg = _train_config(cfg, steps * cfg.epochs_per_step, ctx.stage_seed())
    optimizer = make_optimizer(model.parameters(), train_cfg)
    holder: dict[str, Any] = {"masks": state.masks, "handle": None}

    def before_epoch(epoch: int) -> None:
        if epoch % cfg.epochs_per_step:
            return
        step = epoch // cfg.epochs_per_step
        spec = _scaled(target, fractions[step]) if isinstance(target, LayerSpec) else target
        masks = _masks_for(cfg, model, spec, granularity, fc_granularity)
        if holder["masks"] is not None:
            masks = masks.intersect(holder["masks"])
        masks = _couple(cfg, state, ctx, masks)
        if holder["handle"] is not None:
            holder["handle"].remove()
        holder["masks"] = masks
        holder["handle"] = masks.attach(model, optimizer)
        ctx.log(f"prune step {step + 1}/{steps}: sparsity {masks.sparsity().overall:.4f}")

    def restore(extra: dict[str, Any]) -> None:
        from ..pruning.maskset import MaskSet

        if extra.get("masks") is not None:
            holder["masks"] = MaskSet.from_state_dict(extra["masks"])
            holder["handle"] = holder["masks"].attach(model, optimizer)

    _epoch_loop(
        ctx, model, optimizer, train_cfg, f"prune ({cfg.schedule})", before_epoch,
        extra_state=lambda: {"masks": holder["masks"].state_dict() if holder["masks"] is not None else None},
        restore_extra=restore,
    )
    if holder["handle"] is not None:
        holder["handle"].remove()
    state.masks = holder["masks"]
    state.masks.apply(model)
    _log_sparsity(ctx, state.masks)
    return state


def _auto_sparsity(cfg: PruneConfig, state: PipelineState, ctx: RunContext, granularity: Any, fc_granularity: Any):
    if not ctx.has_data:
        raise ConfigError("--sparsity auto needs --data to measure each layer's sensitivity")
    try:
        from ..pruning.sensitivity import pick_sparsities, sensitivity
    except ImportError:
        raise ConfigError("--sparsity auto is not available in this build") from None
    baseline = ctx.evaluate(state.model)["top1"]
    table = sensitivity(state.model, lambda m: ctx.evaluate(m)["top1"], granularity, fc_granularity=fc_granularity)
    chosen = pick_sparsities(table, max_accuracy_drop=float(ctx.max_accuracy_drop), baseline_accuracy=baseline)
    ctx.log("auto sparsity: " + ", ".join(f"{n}={s:.2f}" for n, s in chosen.items()))
    return LayerSpec(default=None, by_kind={}, by_name=dict(chosen))


def _log_sparsity(ctx: RunContext, masks: Any) -> None:
    report = masks.sparsity()
    parts = [f"{name} {1 - layer.sparsity:.1%}" for name, layer in report.layers.items()]
    ctx.log(f"pruned: kept {1 - report.overall:.2%} of prunable weights ({', '.join(parts)})")


# -- retrain ------------------------------------------------------------------------------


@executes(RetrainConfig)
def run_retrain(cfg: RetrainConfig, state: PipelineState, ctx: RunContext) -> PipelineState:
    from ..training import make_optimizer

    train_cfg = _train_config(cfg, cfg.epochs, ctx.stage_seed())
    optimizer = make_optimizer(state.model.parameters(), train_cfg)
    handle = state.masks.attach(state.model, optimizer) if state.masks is not None else None
    _epoch_loop(ctx, state.model, optimizer, train_cfg, "retrain")
    if handle is not None:
        handle.remove()
        state.masks.apply(state.model)
        state.masks.check(state.model)
    return state


# -- quantize and fine-tune ---------------------------------------------------------------


@executes(QuantizeConfig)
def run_quantize(cfg: QuantizeConfig, state: PipelineState, ctx: RunContext) -> PipelineState:
    from ..quantize.sharing import share_weights

    from ..layers import compressible_layers

    names = {ref.tensor_name for ref in compressible_layers(state.model)}
    masks = {n: m for n, m in state.masks.masks.items() if n in names} if state.masks is not None else None
    state.codebooks = dict(share_weights(state.model, cfg.bits, masks=masks, init=cfg.init, seed=ctx.stage_seed()))
    ctx.log("quantized: " + ", ".join(f"{n} {cb.bits}b/{len(cb.centroids)}" for n, cb in state.codebooks.items()))
    return state


@executes(FinetuneConfig)
def run_finetune(cfg: FinetuneConfig, state: PipelineState, ctx: RunContext) -> PipelineState:
    from ..quantize.finetune import SharedWeights
    from ..training import make_optimizer

    shared = SharedWeights.attach(state.model, state.codebooks)
    train_cfg = _train_config(cfg, cfg.epochs, ctx.stage_seed())
    optimizer = make_optimizer(state.model.parameters(), train_cfg)
    try:
        _epoch_loop(ctx, state.model, optimizer, train_cfg, "finetune")
    finally:
        state.codebooks = dict(shared.codebooks())
        shared.detach()
    return state


# -- encode -------------------------------------------------------------------------------


@executes(EncodeConfig)
def run_encode(cfg: EncodeConfig, state: PipelineState, ctx: RunContext) -> PipelineState:
    import numpy as np

    from ..codecs.tensor import encode_dense, encode_float, encode_quantized
    from ..layers import compressible_layers

    model = state.model
    layer_names = {ref.tensor_name for ref in compressible_layers(model)}
    masks = state.masks
    encoded = []
    items = list(model.state_dict().items())
    progress = ctx.progress and len(items) > 1
    if progress:
        import sys

        from tqdm.auto import tqdm

        items = tqdm(items, desc="encode", unit="tensor", leave=False, file=sys.stderr, disable=None)
    for name, tensor in items:
        array = tensor.detach().cpu().numpy()
        if name in state.codebooks:
            cb = state.codebooks[name]
            granularity = masks.granularity(name) if masks is not None and name in masks else "element"
            block = masks.block(name) if masks is not None and name in masks else (1,) * array.ndim
            encoded.append(
                encode_quantized(name, cb.labels, cb.centroids, granularity=granularity, block=tuple(block),
                                 bits=int(cb.bits), index_bits=cfg.index_bits_value)
            )
        elif masks is not None and name in masks and name in layer_names:
            mask = masks[name].cpu().numpy()
            encoded.append(
                encode_float(name, array.astype(np.float32), mask, granularity=masks.granularity(name),
                             block=tuple(masks.block(name)), index_bits=cfg.index_bits_value)
            )
        else:
            encoded.append(encode_dense(name, array))
    state.encoded = encoded
    return state
