"""The model zoo, registered by name.

Every model is built from ``(name, kwargs)`` alone, so a compressed file can name
its architecture as data, without pickle::

    from deepcompress.models import build_model
    model = build_model("lenet5", input_size=8)   # digits-sized LeNet-5
"""

from __future__ import annotations

from .registry import ARCHITECTURES, register
from .zoo import accepted_kwargs, build_model, constructor, describe

__all__ = ["ARCHITECTURES", "accepted_kwargs", "build_model", "constructor", "describe", "register"]
