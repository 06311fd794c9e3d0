"""The Python API for inference scripts: ``load`` and ``load_state_dict``.

.. code-block:: python

    import deepcompress
    model = deepcompress.load("model.dcz")          # a ready nn.Module (zoo architecture)
    model = deepcompress.load("model.dcz", model=my_module)   # fill your own module
    state = deepcompress.load_state_dict("model.dcz")

Loading reads the file once, verifies every checksum, validates every tensor's
meta, then decodes (no copy between the decoded arrays and the returned
tensors). A model the file names is built on PyTorch's ``meta`` device, so no
time goes into a random initialisation that the weights would overwrite; the
decoded tensors are then assigned to it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .errors import InputFileError, ModelError


def _read(path: str | os.PathLike[str]):
    from .checkpoint import check_input_file
    from .container import read_dcz

    return read_dcz(check_input_file(path, "compressed model"))


def _tensors(dcz: Any) -> dict[str, Any]:
    import torch

    return {name: torch.from_numpy(array) for name, array in dcz.decode_all().items()}


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Decode every tensor of a ``.dcz`` file into a ``{name: torch.Tensor}`` state dict."""
    return _tensors(_read(path))


def build_assigned(arch: Mapping[str, Any], tensors: Mapping[str, Any], *, trust_arch: bool = False):
    """Build the module ``arch`` names and make ``tensors`` its state, without initialising it first.

    The module is constructed on the ``meta`` device (no memory, no random
    init), then ``load_state_dict(strict=True, assign=True)`` adopts the tensors
    themselves. Names, shapes and dtypes must match exactly (ModelError in one
    line otherwise). A module that keeps state outside its ``state_dict`` (a
    non-persistent buffer, a plain tensor attribute) is built normally instead,
    so nothing is ever left on the meta device.
    """
    import torch

    from .checkpoint import build_arch, fill_state_dict

    label = str(arch.get("name") or arch.get("import"))
    with torch.device("meta"):
        model = build_arch(arch, trust_arch=trust_arch)
    own = model.state_dict()
    exact = own.keys() == tensors.keys() and all(
        own[k].shape == tensors[k].shape and own[k].dtype == tensors[k].dtype for k in own
    )
    if exact:
        model.load_state_dict(tensors, strict=True, assign=True)
        if not any(t.is_meta for t in (*model.parameters(), *model.buffers())):
            return model
    model = build_arch(arch, trust_arch=trust_arch)  # the slow way: real init, then copy (or a clear error)
    fill_state_dict(model, tensors, label)
    return model


def load(
    path: str | os.PathLike[str],
    model: Any = None,
    *,
    trust_arch: bool = False,
    eval_mode: bool = True,
    sparse: bool | float = False,
):
    """Rebuild a ready ``nn.Module`` from a ``.dcz`` file.

    Without ``model`` the architecture the file names is built: a zoo model from
    ``(name, kwargs)``, or an import path, which is followed only with
    ``trust_arch=True`` and only to an ``nn.Module`` subclass. With ``model`` the
    decoded weights fill that module (strictly: names and shapes must match).
    ``sparse=True`` (or a density threshold in [0, 1]) keeps the pruned fully
    connected layers sparse: each becomes a :class:`deepcompress.sparse.SparseLinear`
    (CSR, int32 indices) when its density is at most the threshold
    (default :data:`deepcompress.sparse.DEFAULT_THRESHOLD_DENSITY`).
    """
    import torch

    from .checkpoint import fill_state_dict

    dcz = _read(path)
    arch = dcz.arch
    if model is None:
        if not arch:
            raise ModelError(f"{path} names no architecture; pass model=YourModule(...) to fill it")
        model = build_assigned(arch, _tensors(dcz), trust_arch=trust_arch)
    else:
        if not isinstance(model, torch.nn.Module):
            raise InputFileError(f"model= must be an nn.Module, got {type(model).__name__}")
        fill_state_dict(model, _tensors(dcz), type(model).__name__)
    if sparse:
        _sparsify_pruned(model, dcz, sparse)
    if eval_mode:
        model.eval()
    model._deepcompress_arch = arch
    return model


def _sparsify_pruned(model: Any, dcz: Any, sparse: bool | float) -> None:
    """Make the Linear layers the file stored pruned sparse (see :func:`deepcompress.sparse.sparsify`)."""
    from .sparse import DEFAULT_THRESHOLD_DENSITY, sparsify

    threshold = DEFAULT_THRESHOLD_DENSITY if sparse is True else sparse
    pruned = {name[: -len(".weight")] for name in dcz.tensor_names
              if name.endswith(".weight") and dcz.meta(name).get("kind") in ("quantized", "float")}
    modules = {name for name, _ in model.named_modules()}
    sparsify(model, threshold, layers=sorted(pruned & modules))
