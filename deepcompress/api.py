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

The reading itself is :mod:`deepcompress.model_input` (which ``load_model``
shares for ``.dcz`` inputs); this module is its public face.
"""

from __future__ import annotations

import os
from typing import Any

from .model_input import build_assigned, dcz_state_dict, load_dcz, read_dcz_file

__all__ = ["build_assigned", "load", "load_state_dict"]


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Decode every tensor of a ``.dcz`` file into a ``{name: torch.Tensor}`` state dict, in the dtypes
    the tensors had when compressed.

    The file is memory-mapped and decoded on the codec threads a few tensors at a time; each
    tensor's checksums are verified just before it is decoded, so a damaged file raises
    ``ChecksumError`` and nothing is returned.
    """
    return dcz_state_dict(read_dcz_file(path, verify=False))


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
    return load_dcz(path, model, trust_arch=trust_arch, eval_mode=eval_mode, sparse=sparse)
