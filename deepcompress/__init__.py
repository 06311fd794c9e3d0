"""deepcompress: make trained PyTorch networks genuinely small.

Importing this package is light: torch is imported only by the functions that
need it.
"""

from __future__ import annotations

from ._version import __version__
from .errors import DeepCompressError

__all__ = ["__version__", "DeepCompressError"]
