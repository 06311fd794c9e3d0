"""Pruning at element, vector, kernel, filter and channel granularity.

Modules, from primitives up:

* :mod:`.saliency` - block saliency (mean |w| or RMS over each block);
* :mod:`.masks` - choosing masks per layer or with one global threshold;
* :mod:`.maskset` - :class:`MaskSet`: masks by tensor name, the retraining
  invariant (masked weights stay exactly 0.0), save/load, sparsity reports;
* :mod:`.schedules` - one-shot, iterative and gradual (AGP) schedules and a
  driver around any training loop;
* :mod:`.channel_groups` - tracing which channels must be removed together;
* :mod:`.thinning` - physically removing pruned filters/channels;
* :mod:`.sensitivity` - per-layer sensitivity scans and budget picking.

Importing this package imports torch.
"""

from __future__ import annotations

from .masks import blocked_layers, global_masks, layer_mask, layerwise_masks, prune_count
from .maskset import LayerSparsity, MaskHandle, MaskSet, SparsityReport
from .saliency import BlockNorm, block_saliency
from .schedules import Gradual, Iterative, OneShot, prune_with_schedule, schedule_from_json
from .sensitivity import SensitivityTable, pick_sparsities, sensitivity
from .thinning import ThinningRecord, channel_groups, complete_masks, thin, thin_masks

__all__ = [
    "BlockNorm",
    "Gradual",
    "Iterative",
    "LayerSparsity",
    "MaskHandle",
    "MaskSet",
    "OneShot",
    "SensitivityTable",
    "SparsityReport",
    "ThinningRecord",
    "block_saliency",
    "blocked_layers",
    "channel_groups",
    "complete_masks",
    "global_masks",
    "layer_mask",
    "layerwise_masks",
    "pick_sparsities",
    "prune_count",
    "prune_with_schedule",
    "schedule_from_json",
    "sensitivity",
    "thin",
    "thin_masks",
]
