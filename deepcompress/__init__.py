"""deepcompress: make trained PyTorch networks genuinely small.

Importing this package is light: torch is imported only by the functions that
need it.
"""

from __future__ import annotations

from ._version import __version__
from .errors import DeepCompressError

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
