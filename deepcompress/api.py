"""The Python API for inference scripts: ``load`` and ``load_state_dict``.

.. code-block:: python

    import deepcompress
    model = deepcompress.load("model.dcz")          # a ready nn.Module (zoo architecture)
    model = deepcompress.load("model.dcz", model=my_module)   # fill your own module
    state = deepcompress.load_state_dict("model.dcz")
"""

from __future__ import annotations

import os
from typing import Any

from .errors import InputFileError, ModelError


def _read(path: str | os.PathLike[str]):
    from .checkpoint import check_input_file
    from .container import read_dcz

    return read_dcz(check_input_file(path, "compressed model"))


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Decode every tensor of a ``.dcz`` file into a ``{name: torch.Tensor}`` state dict."""
    import torch

    dcz = _read(path)
    return {name: torch.from_numpy(array) for name, array in dcz.decode_all().items()}


def load(
    path: str | os.PathLike[str],
    model: Any = None,
    *,
    trust_arch: bool = False,
    eval_mode: bool = True,
):
    """Rebuild a ready ``nn.Module`` from a ``.dcz`` file.

    Without ``model`` the architecture the file names is built: a zoo model from
    ``(name, kwargs)``, or an import path, which is followed only with
    ``trust_arch=True`` and only to an ``nn.Module`` subclass. With ``model`` the
    decoded weights fill that module (strictly: names and shapes must match).
    """
    from .checkpoint import build_arch, fill_state_dict

    dcz = _read(path)
    state = {name: array for name, array in dcz.decode_all().items()}
    import torch

    tensors = {name: torch.from_numpy(array) for name, array in state.items()}
    arch = dcz.arch
    if model is None:
        if not arch:
            raise ModelError(f"{path} names no architecture; pass model=YourModule(...) to fill it")
        model = build_arch(arch, trust_arch=trust_arch)
        label = str(arch.get("name") or arch.get("import"))
    else:
        if not isinstance(model, torch.nn.Module):
            raise InputFileError(f"model= must be an nn.Module, got {type(model).__name__}")
        label = type(model).__name__
    fill_state_dict(model, tensors, label)
    if eval_mode:
        model.eval()
    model._deepcompress_arch = arch
    return model
