"""Architectures as data: build a module from ``(name, kwargs)`` or an allowed import path.

An architecture record is ``{"name": ZOO_NAME, "kwargs": {...}}`` or
``{"import": "package.module:Class", "kwargs": {...}}``. Checkpoints and
``.dcz`` files store one, so a model is rebuilt without unpickling anything.
An import path is followed only when the caller trusts it (``trust_arch``) and
must name an ``nn.Module`` subclass. Its module is looked up in the current
folder first, then on ``sys.path`` (``PYTHONPATH``), as ``python -m`` would.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from .errors import ConfigError, DeepCompressError, ModelError

__all__ = [
    "arch_label",
    "arch_spec",
    "build_arch",
    "fill_state_dict",
    "import_object",
    "parse_arch_kwargs",
]


def parse_arch_kwargs(text: str | None) -> dict[str, Any]:
    """Parse ``--arch-kwargs`` JSON into a dict."""
    if text is None or text == "":
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--arch-kwargs is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(value, dict):
        raise ConfigError("--arch-kwargs must be a JSON object, e.g. '{\"input_size\": 8}'")
    return value


def arch_spec(arch: str, kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``--arch NAME|module:Class`` as an arch record."""
    key = "import" if ":" in arch else "name"
    return {key: arch, "kwargs": dict(kwargs or {})}


def arch_label(record: Mapping[str, Any]) -> str:
    """The zoo name or import path of an arch record, for messages."""
    return str(record.get("name") or record.get("import"))


def build_arch(arch: Mapping[str, Any], *, trust_arch: bool = True):
    """Build a module from ``{"name", "kwargs"}`` (zoo) or ``{"import", "kwargs"}``.

    An import path is only followed when ``trust_arch`` is true, and the class must
    be an ``nn.Module`` subclass.
    """
    import torch

    from deepcompress.models import build_model

    kwargs = dict(arch.get("kwargs") or {})
    if "name" in arch:
        try:
            return build_model(str(arch["name"]), **kwargs)
        except DeepCompressError:
            raise
        except Exception as exc:  # e.g. torch refusing a negative or impossible layer size
            raise ModelError(f"cannot build {str(arch['name'])!r} with {kwargs}: {exc}") from None
    if "import" not in arch:
        raise ModelError("the model names no architecture; name it with --arch NAME|module:Class")
    target = str(arch["import"])
    if not trust_arch:
        raise ModelError(
            f"the model names the class {target!r} outside the zoo; importing it runs its code. "
            "Pass trust_arch=True (--trust-arch) if you trust it"
        )
    cls = import_object(target)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ModelError(f"{target!r} is not an nn.Module subclass")
    try:
        return cls(**kwargs)
    except Exception as exc:  # user code may raise anything
        raise ModelError(f"cannot build {target!r} with {kwargs}: {exc}") from None


def import_object(target: str) -> Any:
    """Import ``package.module:Name``, looking for the module in the current folder, then on ``sys.path``.

    The current folder is put on ``sys.path`` only for this import (as
    ``PYTHONPATH=.`` would), so ``--arch mynet:Net`` finds ``./mynet.py``.
    """
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ModelError(f"bad import path {target!r}; expected package.module:Class")
    try:
        module = import_user_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise ModelError(
                f"cannot import {module_name!r}: no module named {missing!r} in the current folder "
                "or on PYTHONPATH"
            ) from None
        raise ModelError(f"cannot import {module_name!r}: it imports {missing!r}, "
                         "which is not installed") from None
    except Exception as exc:  # the module's own code failed
        raise ModelError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelError(f"{module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def import_user_module(module_name: str) -> Any:
    """``importlib.import_module`` with the current folder first on ``sys.path`` for the call."""
    with cwd_on_path():
        return importlib.import_module(module_name)


@contextlib.contextmanager
def cwd_on_path() -> Iterator[None]:
    """The current folder first on ``sys.path`` for the block (as ``python -m`` has it), unless it is there."""
    cwd = os.getcwd()
    if any(os.path.abspath(p or os.curdir) == cwd for p in sys.path if isinstance(p, str)):
        yield
        return
    importlib.invalidate_caches()  # a file written since the folder was last listed
    sys.path.insert(0, cwd)
    try:
        yield
    finally:
        try:
            sys.path.remove(cwd)
        except ValueError:  # the imported code removed it itself
            pass


def fill_state_dict(model, state_dict: Mapping[str, Any], arch_label: str) -> None:
    """Load ``state_dict`` strictly; explain a mismatch in one line."""
    import torch

    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()):
        raise ModelError("the state_dict holds entries that are not tensors")
    state_dict = complete_ties(model, state_dict)
    own = model.state_dict()
    # BatchNorm's step counter is absent from many checkpoints in the wild (older
    # PyTorch, or stripped); it never changes the outputs, so the model's own fills it.
    counters = {k: own[k] for k in own if k.endswith(".num_batches_tracked") and k not in state_dict}
    if counters:
        state_dict = {**state_dict, **counters}
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            parts.append("shape mismatch: " + ", ".join(mismatched[:3]))
        if missing:
            parts.append("missing: " + ", ".join(missing[:3]))
        if unexpected:
            parts.append("unexpected: " + ", ".join(unexpected[:3]))
        raise ModelError(f"the weights do not fit architecture {arch_label}: " + "; ".join(parts))
    _adopt_dtypes(model, state_dict)
    model.load_state_dict(state_dict, strict=True)


def _adopt_dtypes(model, state_dict: Mapping[str, Any]) -> None:
    """Give each floating-point parameter and buffer of ``model`` the dtype of its tensor in ``state_dict``,
    so a float16 or bfloat16 checkpoint stays float16 or bfloat16 (no silent float32)."""
    import torch

    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            given = state_dict.get(name)
            if (given is not None and tensor.is_floating_point() and given.is_floating_point()
                    and given.dtype != tensor.dtype):
                tensor.data = tensor.data.to(given.dtype)


def complete_ties(model, state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """``state_dict`` with every name of a tied parameter of ``model`` filled from another name it has.

    A file that stores a tied tensor once (safetensors from Hugging Face drop the
    duplicate; a ``.dcz`` file stores it under the first name) then loads strictly.
    """
    from .layers import tied_parameters

    out = dict(state_dict)
    groups: dict[str, list[str]] = {}
    for alias, canonical in tied_parameters(model).items():
        groups.setdefault(canonical, [canonical]).append(alias)
    for names in groups.values():
        present = [n for n in names if n in out]
        if present:
            for n in names:
                out.setdefault(n, out[present[0]])
    return out


def retie(model, ties: Mapping[str, str]) -> None:
    """Make every tied name (``{alias: canonical}``) one Parameter again after a load that gave each its own
    (``load_state_dict(assign=True)`` does)."""
    for alias, canonical in ties.items():
        owner_name, _, pname = alias.rpartition(".")
        owner = model.get_submodule(owner_name) if owner_name else model
        setattr(owner, pname, model.get_parameter(canonical))
