"""Exporting a ``.dcz`` file to ONNX for runtimes outside PyTorch.

.. code-block:: python

    from deepcompress.export import export_onnx
    report = export_onnx("lenet5.dcz", "lenet5.onnx", input_shape=(1, 8, 8))

The decoded model is dense (ONNX has no sparse-weight operators that runtimes
execute faster), traced by torch's TorchScript-based exporter (``dynamo=False``:
the newer exporter needs the ``onnxscript`` package) with a dynamic batch
axis, input ``"input"`` and output ``"output"``. The file's architecture record
is kept in the ONNX model's metadata (``deepcompress.arch``). When onnxruntime
is installed the export is checked: the ONNX model is run on a random batch and
compared with torch. ``pip install 'deepcompress[onnx]'`` installs both.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, ModelError, PipelineError

__all__ = ["OnnxExport", "export_onnx", "require_onnx", "DEFAULT_OPSET", "CHECK_TOLERANCE"]

DEFAULT_OPSET = 17
"""The ONNX opset written (onnxruntime has run opset 17 since 1.14)."""

CHECK_TOLERANCE = 1e-4
"""Largest |onnxruntime - torch| accepted by the export check (float32 rounding only)."""

INSTALL_HINT = "pip install 'deepcompress[onnx]' (or: pip install onnx onnxruntime)"


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote."""

    output: Path
    file_bytes: int
    input_shape: tuple[int, ...]
    opset: int
    max_abs_diff: float | None
    """|onnxruntime - torch| on a random batch, or None when onnxruntime is not installed."""


def require_onnx() -> Any:
    """The ``onnx`` module, or a one-line :class:`ConfigError` saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise ConfigError(f"ONNX export needs the onnx package, which is not installed: {INSTALL_HINT}") from None
    return onnx


def _onnxruntime() -> Any | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def _example_input(arch: dict | None, input_shape: tuple[int, ...] | None):
    from .pipeline.context import example_input_for

    if input_shape is not None:
        if not input_shape or any(int(d) < 1 for d in input_shape):
            raise ConfigError(f"input shape {tuple(input_shape)} must be positive sizes, without the batch axis")
        return example_input_for(arch, tuple(int(d) for d in input_shape))
    return example_input_for(arch, None)


def export_onnx(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    input_shape: tuple[int, ...] | None = None,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    trust_arch: bool = False,
) -> OnnxExport:
    """Decode the ``.dcz`` file ``source`` and write it as an ONNX model to ``output`` (atomically).

    ``input_shape`` is one sample's shape without the batch axis (e.g. ``(1, 8, 8)``);
    by default it comes from the file's architecture record (zoo conventions).
    With ``check`` and onnxruntime installed, the ONNX model must reproduce
    torch's outputs on a random batch of 3 to :data:`CHECK_TOLERANCE`
    (:class:`PipelineError` otherwise).
    """
    onnx = require_onnx()
    import numpy as np
    import torch

    from .api import load
    from .atomic import write_bytes_atomic
    from .container import read_dcz

    arch = read_dcz(source).arch
    model = load(source, trust_arch=trust_arch)
    x = _example_input(arch, input_shape)
    try:
        with torch.no_grad():
            model(x)
    except Exception as exc:  # the model rejects the guessed shape
        raise ConfigError(
            f"the model does not run on an input of shape {tuple(x.shape[1:])} ({type(exc).__name__}); "
            "give the shape of one sample (--input-shape CxHxW)"
        ) from None
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice and tracer warnings
        try:
            torch.onnx.export(
                model, (x,), buf, dynamo=False, opset_version=int(opset), input_names=["input"],
                output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            )
        except Exception as exc:
            raise ModelError(f"torch.onnx.export failed for this model: {type(exc).__name__}: {exc}") from None
    proto = onnx.load_from_string(buf.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = "deepcompress.arch", json.dumps(arch or {}, sort_keys=True)
    data = proto.SerializeToString()

    diff = None
    ort = _onnxruntime() if check else None
    if ort is not None:
        probe = torch.randn((3, *x.shape[1:]), generator=torch.Generator().manual_seed(0))
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        got = session.run(None, {"input": probe.numpy()})[0]
        with torch.no_grad():
            want = model(probe).numpy()
        diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
        if not diff <= CHECK_TOLERANCE:
            raise PipelineError(
                f"the ONNX model's outputs differ from torch's by {diff:.2e} (shape {got.shape} vs {want.shape}); "
                f"not written to {output}"
            )
    write_bytes_atomic(output, data)
    return OnnxExport(Path(output), len(data), tuple(int(d) for d in x.shape[1:]), int(opset), diff)
