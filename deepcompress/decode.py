"""What ``deepcompress decode`` writes from a ``.dcz`` file, as library functions.

- :func:`decode_dense`: a dense deepcompress checkpoint (``.pt``, loads with
  ``torch.load(weights_only=True)``) or a safetensors file, both through the
  writers of :mod:`deepcompress.checkpoint`;
- :func:`export_thinned`: the model with its pruned filters/channels physically
  removed (:func:`thin_dcz`, checked against the masked model), as TorchScript;
- ONNX is :func:`deepcompress.export.export_onnx`.

Every function refuses an output that is the input file (also through a
symlink or a hard link) before decoding anything.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import check_output_path, write_bytes_atomic
from .errors import ConfigError, PipelineError

__all__ = [
    "DENSE_FORMATS",
    "THIN_TOLERANCE",
    "DenseDecode",
    "ThinExport",
    "Thinned",
    "decode_dense",
    "export_thinned",
    "output_format",
    "thin_dcz",
]

DENSE_FORMATS = ("pt", "safetensors")
THIN_TOLERANCE = 1e-5
"""Largest |thinned - masked| output difference accepted: removing zeroed channels only reorders float sums."""


def output_format(output: str | os.PathLike[str], fmt: str = "auto") -> str:
    """``pt``, ``safetensors`` or ``onnx``: ``fmt``, or with ``auto`` the output's suffix (``.pt``, ``.pth``,
    ``.bin``, ``.safetensors``, ``.onnx``); another suffix with ``auto`` is a :class:`ConfigError`."""
    if fmt != "auto":
        if fmt not in (*DENSE_FORMATS, "onnx"):
            raise ConfigError(f"unknown output format {fmt!r}; use auto, pt, safetensors or onnx")
        return fmt
    suffix = Path(output).suffix.lower()
    formats = {".safetensors": "safetensors", ".onnx": "onnx", ".pt": "pt", ".pth": "pt", ".bin": "pt"}
    if suffix not in formats:
        raise ConfigError(f"cannot tell the output format from {Path(output).name!r}; name it .pt, .safetensors or "
                          ".onnx, or give --format")
    return formats[suffix]


@dataclass(frozen=True)
class DenseDecode:
    """What :func:`decode_dense` wrote."""

    output: Path
    format: str
    n_tensors: int


def decode_dense(
    source: str | os.PathLike[str], output: str | os.PathLike[str], *, fmt: str = "auto"
) -> DenseDecode:
    """Decode the ``.dcz`` file ``source`` into a dense checkpoint or safetensors file at ``output``.

    The checkpoint holds the file's architecture record and metrics, and
    ``source``; the safetensors file holds the architecture in its metadata.
    """
    from .checkpoint import save_checkpoint, save_safetensors
    from .model_input import dcz_state_dict, read_dcz_file

    out = check_output_path(output, inputs=[source])
    fmt = output_format(output, fmt)
    if fmt not in DENSE_FORMATS:
        raise ConfigError(f"decode_dense writes {' or '.join(DENSE_FORMATS)}, not {fmt} (use export_onnx)")
    dcz = read_dcz_file(source)
    state = dcz_state_dict(dcz)
    if fmt == "safetensors":
        save_safetensors(out, state, dcz.arch)
    else:
        save_checkpoint(out, state, dcz.arch, metrics=dcz.metrics, extra={"source": str(source)})
    return DenseDecode(out, fmt, len(state))


@dataclass
class Thinned:
    """A decoded model and its thinned copy (:func:`thin_dcz`)."""

    model: Any
    """The decoded (masked) model."""
    thinned: Any
    """The smaller model, in eval mode."""
    record: Any
    """The :class:`~deepcompress.pruning.thinning.ThinningRecord`."""
    example_input: Any
    """One zero sample (batch of 1) the models were traced with."""
    max_abs_diff: float
    """|thinned - masked| on a seeded random batch of 4."""

    @property
    def params_before(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def params_after(self) -> int:
        return sum(p.numel() for p in self.thinned.parameters())


def thin_dcz(
    source: str | os.PathLike[str],
    *,
    input_shape: tuple[int, ...] | None = None,
    trust_arch: bool = False,
    tolerance: float = THIN_TOLERANCE,
) -> Thinned:
    """Decode ``source``, remove its pruned filters/channels, and check the outputs are unchanged.

    ``input_shape`` is one sample's shape without the batch axis; by default it
    comes from the file's architecture record. :class:`ConfigError` when the
    file has no pruned layers; :class:`PipelineError` when the thinned model's
    outputs differ from the masked model's by more than ``tolerance`` (biases or
    BatchNorm entries of pruned filters that were not zeroed: compress with
    ``--thin``).
    """
    import torch

    from .model_input import model_from_dcz, read_dcz_file
    from .pipeline.context import example_input_for
    from .pruning.from_file import masks_from_dcz
    from .pruning.thinning import thin

    dcz = read_dcz_file(source)
    model = model_from_dcz(dcz, trust_arch=trust_arch, source=source)
    x = example_input_for(dcz.arch, tuple(int(d) for d in input_shape) if input_shape else None)
    masks = masks_from_dcz(dcz, model)
    if not len(masks):
        raise ConfigError(f"{source} has no pruned layers to thin")
    smaller, record = thin(model, masks, x)
    smaller.eval()
    probe = torch.randn((4, *x.shape[1:]), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = float((smaller(probe) - model(probe)).abs().max())
    if not diff <= tolerance:
        raise PipelineError(
            f"thinned outputs differ from the masked model by {diff:.2e}; compress with --thin so biases "
            "and BatchNorm entries of pruned filters are zeroed too"
        )
    return Thinned(model, smaller, record, x, diff)


@dataclass(frozen=True)
class ThinExport:
    """What :func:`export_thinned` wrote."""

    output: Path
    removed_channels: int
    params_before: int
    params_after: int
    max_abs_diff: float


def export_thinned(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    input_shape: tuple[int, ...] | None = None,
    trust_arch: bool = False,
) -> ThinExport:
    """:func:`thin_dcz`, then save the smaller model as TorchScript (traced) at ``output``, atomically."""
    import torch

    out = check_output_path(output, inputs=[source])
    result = thin_dcz(source, input_shape=input_shape, trust_arch=trust_arch)
    traced = torch.jit.trace(result.thinned, result.example_input)
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    write_bytes_atomic(out, buf.getvalue())
    return ThinExport(out, result.record.removed_channels, result.params_before, result.params_after,
                      result.max_abs_diff)
