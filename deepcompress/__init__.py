"""deepcompress: make trained PyTorch networks genuinely small.

Importing this package is light: torch is imported only by the functions that
need it.
"""

from __future__ import annotations

import os as _os

from ._version import __version__
from .errors import DeepCompressError


def _source_checkout_path() -> None:
    """Run from a source checkout, find ``deepcompress.cli`` and ``deepcompress.models`` beside this folder.

    pyproject.toml maps the top-level ``cli/`` and ``models/`` folders to
    ``deepcompress.cli`` and ``deepcompress.models``; an installed package holds
    them inside it. Python run from the repository root imports this source
    folder rather than the installed package (the current folder comes first
    on ``sys.path``), so the repository root becomes a second search location
    for subpackages here. Installed, ``models/`` is beside this file and
    nothing changes.
    """
    here = _os.path.dirname(_os.path.abspath(__file__))
    root = _os.path.dirname(here)
    if _os.path.isdir(_os.path.join(here, "models")) or root in __path__:
        return
    beside = all(_os.path.isfile(_os.path.join(root, folder, "__init__.py")) for folder in ("cli", "models"))
    if beside and _os.path.isfile(_os.path.join(root, "pyproject.toml")):
        __path__.append(root)


_source_checkout_path()
del _source_checkout_path, _os

__all__ = ["__version__", "DeepCompressError"]


def load(path, model=None, *, trust_arch: bool = False, eval_mode: bool = True, sparse: bool | float = False):
    """Rebuild a ready ``nn.Module`` from a ``.dcz`` file (see :func:`deepcompress.api.load`)."""
    from .api import load as _load

    return _load(path, model, trust_arch=trust_arch, eval_mode=eval_mode, sparse=sparse)


def load_state_dict(path):
    """Decode a ``.dcz`` file into a ``{name: torch.Tensor}`` state dict."""
    from .api import load_state_dict as _load_state_dict

    return _load_state_dict(path)


def compress(model, output, **kwargs):
    """Compress an ``nn.Module`` into a ``.dcz`` file (see :func:`deepcompress.compression.compress`)."""
    from .compression import compress as _compress

    return _compress(model, output, **kwargs)


__all__ += ["load", "load_state_dict", "compress"]
