"""The prune stage: masks at a target sparsity, once or along a schedule with retraining between events."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..layerspec import LayerSpec, parse_layer_spec, sparsity_value
from .context import RunContext, StageSlot
from .registry import handles
from .stages import PruneConfig
from .state import PipelineState
from .training_loop import epoch_loop, train_config


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


@handles(PruneConfig)
def run_prune(cfg: PruneConfig, state: PipelineState, ctx: RunContext, slot: StageSlot) -> PipelineState:
    from ..pruning.schedules import step_fractions
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
    fractions = step_fractions(cfg.schedule, steps)
    train_cfg = train_config(cfg, steps * cfg.epochs_per_step, slot.seed)
    optimizer = make_optimizer(model.parameters(), train_cfg)
    holder: dict[str, Any] = {"masks": state.masks, "handle": None}

    def before_epoch(epoch: int) -> None:
        if epoch % cfg.epochs_per_step:
            return
        step = epoch // cfg.epochs_per_step
        spec = target.scaled(fractions[step]) if isinstance(target, LayerSpec) else target
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

    epoch_loop(
        ctx, slot, model, optimizer, train_cfg, f"prune ({cfg.schedule})", before_epoch,
        extra_state=lambda: {"masks": holder["masks"].state_dict() if holder["masks"] is not None else None},
        restore_extra=restore, shift=cfg.shift,
    )
    if holder["handle"] is not None:
        holder["handle"].remove()
    state.masks = holder["masks"]
    state.masks.apply(model)
    _log_sparsity(ctx, state.masks)
    return state


def _auto_sparsity(cfg: PruneConfig, state: PipelineState, ctx: RunContext, granularity: Any, fc_granularity: Any):
    from ..pruning.sensitivity import pick_sparsities, sensitivity

    if not ctx.has_data:
        raise ConfigError("--sparsity auto needs --data to measure each layer's sensitivity")
    baseline = ctx.evaluate(state.model)["top1"]
    table = sensitivity(state.model, lambda m: ctx.evaluate(m)["top1"], granularity, fc_granularity=fc_granularity)
    chosen = pick_sparsities(table, max_accuracy_drop=cfg.max_accuracy_drop / 100.0, baseline_accuracy=baseline)
    ctx.log("auto sparsity: " + ", ".join(f"{n}={s:.2f}" for n, s in chosen.items()))
    return LayerSpec(default=None, by_kind={}, by_name=dict(chosen))


def _log_sparsity(ctx: RunContext, masks: Any) -> None:
    report = masks.sparsity()
    parts = [f"{name} {1 - layer.sparsity:.1%}" for name, layer in report.layers.items()]
    ctx.log(f"pruned: kept {1 - report.overall:.2%} of prunable weights ({', '.join(parts)})")
