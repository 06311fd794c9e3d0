"""An SCNN-like count of memory references for a sparse convolution (docs/memory_model.md).

The counting is pure numpy over a layer's keep-mask; only :func:`conv_geometry`
(the feature-map sizes, found by one forward pass) needs torch.

Model, per conv layer with weight ``(K, C, R, S)``, batch 1, dense input
activations ``C x H x W`` and output ``K x P x Q``:

* output channels that keep at least one weight are packed, in order, into
  groups of ``group_outputs`` (SCNN's ``Kc``);
* for each group ``g`` and input channel ``c`` with ``n = nnz(g, c) > 0`` kept
  weights, the weights are streamed in vectors of ``weight_vector`` (SCNN's
  ``F``) and every weight vector meets every activation of channel ``c``
  (SCNN's Cartesian product), so the activation plane is read
  ``ceil(n / F)`` times: ``ceil(n / F) * H * W`` activation reads;
* weights: one read per kept weight; index: one read per kept block (the
  coordinates inside a block follow from the block shape);
* outputs: one write per output of a kept output channel, ``P * Q`` each.

``tiles`` (spatial output tiles whose PEs each need the weights) multiplies
weight and index reads; activations and outputs are read/written once in all.

``activations_window`` is a second, optimistic count kept beside the first
(not in ``total``): each kept block reads the input window it slides over once
and reuses every activation for all its weights (a row-stationary line
buffer), ``C_b * span(P, R_b) * span(Q, S_b)`` reads per kept block of shape
``(K_b, C_b, R_b, S_b)``, where ``span(P, R) = min((P-1)*stride + R, P*R)``
counts the distinct input rows the ``R`` taps touch; a single weight reads ``P * Q``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..blocks import check_block, kept_blocks
from ..errors import ConfigError

#: SCNN's multiplier array is F x I = 4 x 4; Kc = 8 output channels per group is this model's choice.
DEFAULT_WEIGHT_VECTOR = 4
DEFAULT_GROUP_OUTPUTS = 8


@dataclass(frozen=True)
class ScnnArray:
    """SCNN's PE array and accumulator (Parashar et al., ISCA 2017, Table 3; docs/memory_model.md).

    64 PEs in an 8 x 8 grid, each with an ``F x I = 4 x 4`` multiplier array and
    an accumulator of 32 banks x 32 entries. The output plane ``P x Q`` is tiled
    over the grid (``Ht = ceil(P / 8)``, ``Wt = ceil(Q / 8)`` per PE); every PE
    with a tile needs every weight (``tiles`` = PEs used); ``Kc`` output
    channels per group are as many as the accumulator holds with the tile's
    halo: ``floor(entries / ((Wt + S - 1) * (Ht + R - 1)))``, at least 1, at most ``K``.
    """

    pe_rows: int = 8
    pe_cols: int = 8
    weight_vector: int = 4  # F
    activation_vector: int = 4  # I
    accumulator_entries: int = 32 * 32

    def layer_params(self, weight_shape: Sequence[int], out_hw: tuple[int, int]) -> dict[str, int]:
        """``{"tiles", "group_outputs", "weight_vector"}`` for a conv weight ``(K, C, R, S)`` and output ``(P, Q)``."""
        k, _, r, s = (int(v) for v in weight_shape)
        p, q = (int(v) for v in out_hw)
        ht, wt = -(-p // self.pe_rows), -(-q // self.pe_cols)
        tiles = -(-p // ht) * -(-q // wt)
        kc = max(1, min(k, self.accumulator_entries // ((wt + s - 1) * (ht + r - 1))))
        return {"tiles": tiles, "group_outputs": kc, "weight_vector": self.weight_vector}

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "source": "SCNN (Parashar et al., ISCA 2017) Table 3", "activations": "dense"}


SCNN = ScnnArray()


@dataclass(frozen=True)
class MemRefs:
    """Memory references of one layer (or a sum of layers), counted in words."""

    weights: int
    index: int
    activations: int
    outputs: int
    macs: int  # multiplications actually done (not memory references; for scale)
    activations_window: int = 0  # the optimistic window-reuse count (not in total)

    @property
    def total(self) -> int:
        """Weight + index + activation reads + output writes."""
        return self.weights + self.index + self.activations + self.outputs

    @property
    def total_window(self) -> int:
        """The total with ``activations_window`` in place of ``activations``."""
        return self.weights + self.index + self.activations_window + self.outputs

    def __add__(self, other: "MemRefs") -> "MemRefs":
        return MemRefs(*(a + b for a, b in zip(astuple(self), astuple(other))))

    def to_json(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total, "total_window": self.total_window}


def astuple(refs: MemRefs) -> tuple[int, ...]:
    return (refs.weights, refs.index, refs.activations, refs.outputs, refs.macs, refs.activations_window)


ZERO = MemRefs(0, 0, 0, 0, 0, 0)


def conv_memory_refs(
    mask: np.ndarray,
    block: Sequence[int],
    in_hw: tuple[int, int],
    out_hw: tuple[int, int],
    *,
    weight_vector: int = DEFAULT_WEIGHT_VECTOR,
    group_outputs: int = DEFAULT_GROUP_OUTPUTS,
    tiles: int = 1,
    stride: tuple[int, int] = (1, 1),
    name: str = "conv",
) -> MemRefs:
    """References of a conv layer with keep-mask ``mask`` of shape ``(K, C, R, S)`` (True = kept).

    ``block`` is the pruning block (``(1, 1, 1, 1)`` for element granularity);
    every block must be wholly kept or pruned. ``in_hw = (H, W)`` and
    ``out_hw = (P, Q)`` are the input and output feature-map sizes, ``stride``
    the convolution's (used by ``activations_window`` only).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 4:
        raise ConfigError(f"layer {name}: the memory model needs a 4-D conv mask, got shape {mask.shape}")
    blk = check_block(mask.shape, block, what=f"layer {name}")
    for what, value in (("weight_vector", weight_vector), ("group_outputs", group_outputs), ("tiles", tiles)):
        if int(value) < 1:
            raise ConfigError(f"memory model: {what} must be >= 1; got {value}")
    h, w = (int(v) for v in in_hw)
    p, q = (int(v) for v in out_hw)
    k_out, c_in = mask.shape[:2]
    per_oc = mask.reshape(k_out, c_in, -1).sum(axis=2)  # kept weights per (output, input) channel pair
    live = np.flatnonzero(per_oc.sum(axis=1) > 0)
    n_kept = int(per_oc.sum())
    n_blocks = int(kept_blocks(mask, blk, what=f"layer {name}").size)
    act_reads = 0
    for start in range(0, live.size, int(group_outputs)):
        nnz = per_oc[live[start : start + int(group_outputs)]].sum(axis=0)  # per input channel
        act_reads += int(np.sum(-(-nnz // int(weight_vector)))) * h * w
    return MemRefs(
        weights=n_kept * int(tiles),
        index=n_blocks * int(tiles),
        activations=act_reads,
        outputs=int(live.size) * p * q,
        macs=n_kept * p * q,
        activations_window=n_blocks * blk[1] * _span(p, int(stride[0]), blk[2]) * _span(q, int(stride[1]), blk[3]),
    )


def _span(outputs: int, stride: int, extent: int) -> int:
    """Distinct input rows (or columns) that ``extent`` kernel taps touch over ``outputs`` strided positions."""
    return min((outputs - 1) * stride + extent, outputs * extent)


def conv_geometry(model: Any, example_input: Any) -> dict[str, dict[str, Any]]:
    """Per Conv2d weight name: ``{"in_hw": (H, W), "out_hw": (P, Q), "stride": (sh, sw)}`` from one forward pass."""
    import torch

    found: dict[str, dict[str, Any]] = {}
    handles = []
    for module_name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            def hook(mod, inputs, output, _name=f"{module_name}.weight"):
                found[_name] = {"in_hw": tuple(int(v) for v in inputs[0].shape[-2:]),
                                "out_hw": tuple(int(v) for v in output.shape[-2:]),
                                "stride": tuple(int(v) for v in mod.stride)}
            handles.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return found
