"""Checks made before long work: does the model run on the data it is given?

A model built for 8x8 digits given MNIST's 28x28 images fails deep inside its
forward pass with ``mat1 and mat2 shapes cannot be multiplied (1x784 and
64x300)``. :func:`check_model_accepts` runs one forward pass on one sample
first and turns such a failure into a one-line :class:`ConfigError` that names
the input shape the data gives and, when it can tell, what the model expects.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ConfigError, DataError, ModelError

__all__ = ["check_model_accepts", "expected_input", "is_shape_error"]

_SHAPE_ERROR = re.compile(
    r"shapes cannot be multiplied|size mismatch|must match the size of tensor|is invalid for input of size"
    r"|to have \d+ channels|expected \d+d|\(unbatched\)|kernel size can't be greater|output size is too small"
    r"|input size|dimension out of range|non-empty \d+d|expected input|number of dims",
    re.IGNORECASE,
)
_LAYER_TYPES = ("Linear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d")


def is_shape_error(exc: BaseException) -> bool:
    """Whether ``exc`` is torch saying an input's shape does not fit a layer (a norm layer raises ValueError)."""
    return isinstance(exc, (RuntimeError, ValueError)) and bool(_SHAPE_ERROR.search(str(exc)))


def _short(exc: BaseException) -> str:
    """The last line of an error (TorchScript prefixes its own traceback), without a repeated class name."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return re.sub(r"^(RuntimeError|torch\.jit\.Error): ", "", text)


def _dims(shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in shape)


def _channels(n: Any) -> str:
    return f"{n} channel" if str(n) == "1" else f"{n} channels"


def expected_input(model: Any, arch: Mapping[str, Any] | None = None) -> str | None:
    """What the model expects as one sample, in words, or None when it cannot tell.

    From the architecture's kwargs (``in_features``, ``in_channels``,
    ``input_size``) when known, else from the first Linear or Conv layer.
    """
    arch = arch if arch is not None else getattr(model, "_deepcompress_arch", None)
    kwargs = dict((arch or {}).get("kwargs") or {}) if isinstance(arch, Mapping) else {}
    label = str((arch or {}).get("name") or (arch or {}).get("import") or "") if isinstance(arch, Mapping) else ""
    where = f"{label} with " if label else ""
    if "in_features" in kwargs:
        return f"inputs of {kwargs['in_features']} values ({where}in_features={kwargs['in_features']})"
    if "in_channels" in kwargs and "input_size" in kwargs:
        c, s = kwargs["in_channels"], kwargs["input_size"]
        return f"inputs of shape {c}x{s}x{s} ({where}in_channels={c}, input_size={s})"
    if "input_size" in kwargs:
        s = kwargs["input_size"]
        return f"inputs of size {s}x{s} ({where}input_size={s})"
    if "in_channels" in kwargs:
        return f"inputs with {_channels(kwargs['in_channels'])} ({where}in_channels={kwargs['in_channels']})"
    try:
        for name, module in model.named_modules():
            kind = getattr(module, "original_name", None) or type(module).__name__  # TorchScript keeps the name
            if kind not in _LAYER_TYPES:
                continue
            if kind == "Linear":
                return f"inputs of {int(module.in_features)} values (its first layer {name} is Linear " \
                       f"with in_features={int(module.in_features)})"
            return f"inputs with {_channels(module.in_channels)} (its first layer {name} is {kind} " \
                   f"with in_channels={int(module.in_channels)})"
    except Exception:  # a module that hides its layers: nothing to say
        return None
    return None


def _first_input(sample_batch: Any):
    import torch

    batch = sample_batch
    if isinstance(batch, (tuple, list)) and batch:
        batch = batch[0]
    if not isinstance(batch, torch.Tensor):
        raise TypeError(f"sample_batch must be a tensor or an (inputs, targets) pair, got {type(batch).__name__}")
    if batch.dim() == 0 or batch.shape[0] == 0:
        raise ConfigError(f"the data gives an empty batch of shape {tuple(batch.shape)}")
    return batch[:1]


def check_model_accepts(model: Any, sample_batch: Any, *, data_spec: str,
                        arch: Mapping[str, Any] | None = None, targets: Any = None) -> None:
    """Run ``model`` on one sample of ``sample_batch``; a shape mismatch raises a one-line :class:`ConfigError`.

    ``sample_batch`` is a batch of inputs, or an ``(inputs, targets)`` pair as
    a data loader yields it; only its first sample is used. The pass runs under
    ``torch.no_grad()`` in eval mode (so BatchNorm statistics are not touched),
    and every module's train/eval mode is restored afterwards. ``arch`` (an
    architecture record; by default the one a ``.dcz`` model carries) tells
    what the model expects. Any other error of the model is a one-line :class:`ModelError` saying the model
    raised it.
    With ``targets`` (the batch's labels, when the built-in training loop will run), the output must be
    one tensor of class scores and the labels class indices it has.
    """
    import torch

    from .training import as_model_input

    x = _first_input(sample_batch)
    try:
        modes = [(m, m.training) for m in model.modules()]
    except Exception:  # not an nn.Module-like object: run it as is
        modes = []
    try:
        if hasattr(model, "eval"):
            model.eval()
        with torch.no_grad():
            out = model(as_model_input(model, x) if hasattr(model, "parameters") else x)
    except TypeError as exc:
        if "positional argument" not in str(exc):
            raise _raised(exc, x, data_spec) from None
        raise ConfigError(f"the model does not take one input tensor ({_short(exc)}); the built-in training "
                          "loop passes one: pass train_fn and eval_fn for a model with several inputs") from None
    except Exception as exc:  # noqa: BLE001 - the model's own error, said in one line as the model's
        if not is_shape_error(exc):
            raise _raised(exc, x, data_spec) from None
        shape = tuple(int(d) for d in x.shape[1:])
        gives = f"--data {data_spec} gives inputs of shape {_dims(shape)}"
        if len(shape) > 1:
            gives += f" ({math.prod(shape)} values)"
        expects = expected_input(model, arch)
        if expects and (expects.startswith(f"inputs of {math.prod(shape)} values")
                        or (len(shape) == 3 and expects.startswith(f"inputs of shape {_dims(shape)}"))):
            raise ConfigError(f"the model fails on the data's inputs of shape {_dims(shape)}, which its first layer "
                              f"takes ({expects}): the shapes meet wrongly inside the model: {_short(exc)}") from None
        but = f", but the model expects {expects}" if expects else ", on which the model does not run"
        raise ConfigError(f"the model does not fit the data: {gives}{but}: {_short(exc)}") from None
    finally:
        for module, training in modes:
            module.training = training
    if targets is not None:
        _check_output(out, targets, data_spec)


def _raised(exc: BaseException, x: Any, data_spec: str) -> ModelError:
    """The model's own error on one sample of the data, said as the model's (not deepcompress's): a model
    meeting the wrong kind of data (token ids for an image model, a window longer than its context, ...) or
    a bug in the model."""
    kind = str(x.dtype).removeprefix("torch.")
    return ModelError(f"the model raised {type(exc).__name__} on one sample of --data {data_spec} (inputs of "
                      f"shape {_dims(x.shape[1:])}, {kind}): {_short(exc)}")


def _check_output(out: Any, targets: Any, data_spec: str) -> None:
    """The built-in loop's contract: logits as one tensor, the labels class indices within them."""
    import torch

    if not isinstance(out, torch.Tensor):
        raise ConfigError(f"the model returns a {type(out).__name__}; the built-in training loop needs class "
                          "scores as one tensor: pass train_fn and eval_fn for another output")
    if isinstance(targets, torch.Tensor) and not targets.is_floating_point() and targets.numel() and out.dim() >= 2:
        top = int(targets.max())
        if top >= out.shape[-1] or int(targets.min()) < 0:
            raise DataError(f"{data_spec} gives label {top if top >= out.shape[-1] else int(targets.min())}, but the "
                            f"model gives {out.shape[-1]} class scores (labels 0..{out.shape[-1] - 1})")
