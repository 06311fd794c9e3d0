"""Reading models from every accepted input, and writing ``train`` checkpoints.

Accepted inputs, in the order they are recognised:

1. a ``.dcz`` compressed file (by its magic bytes);
2. a TorchScript archive (a zip holding ``*/constants.pkl`` and ``*/code/``);
3. a deepcompress checkpoint (a dict with ``format == "deepcompress-checkpoint"``);
4. a plain ``state_dict`` plus ``arch`` (a zoo name or ``module:Class``) and kwargs;
5. a whole pickled ``nn.Module``, only with ``trust_pickle=True``.

Everything except 5 loads with ``torch.load(weights_only=True)``: nothing in the
file is executed.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_write
from .errors import ConfigError, DeepCompressError, InputFileError, ModelError

CHECKPOINT_FORMAT = "deepcompress-checkpoint"
CHECKPOINT_VERSION = 1
DCZ_MAGIC_PREFIX = b"\x89DCZ"
# A TorchScript/zip archive larger than this when unpacked is refused (zip bombs).
MAX_ARCHIVE_UNPACKED_BYTES = 8 * 2**30
MAX_ARCHIVE_RATIO = 200


@dataclass
class ModelInfo:
    """What was learned about a model while loading it."""

    source: str
    kind: str  # "checkpoint", "state_dict", "torchscript", "pickle", "dcz"
    arch: dict[str, Any] | None = None  # {"name": ..., "kwargs": ...} or {"import": ..., "kwargs": ...}
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def check_input_file(path: str | os.PathLike[str], what: str = "model") -> Path:
    """A readable, non-empty regular file, or :class:`InputFileError`."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{what} file {p} does not exist")
    if p.is_dir():
        raise InputFileError(f"{what} path {p} is a directory, not a file")
    try:
        size = p.stat().st_size
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise InputFileError(f"cannot read {what} file {p}: {exc.strerror}") from None
    if size == 0:
        raise InputFileError(f"{what} file {p} is empty")
    return p


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
    target = str(arch.get("import", ""))
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
    """Import ``package.module:Name``."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ModelError(f"bad import path {target!r}; expected package.module:Class")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ModelError(f"cannot import {module_name!r}: {exc}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelError(f"{module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def arch_spec(arch: str, kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``--arch NAME|module:Class`` as an arch record."""
    key = "import" if ":" in arch else "name"
    return {key: arch, "kwargs": dict(kwargs or {})}


def fill_state_dict(model, state_dict: Mapping[str, Any], arch_label: str) -> None:
    """Load ``state_dict`` strictly; explain a mismatch in one line."""
    import torch

    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()):
        raise ModelError("the state_dict holds entries that are not tensors")
    own = model.state_dict()
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
    model.load_state_dict(state_dict, strict=True)


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile:
        return False
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def check_archive(path: Path) -> None:
    """Refuse zip archives whose unpacked size is huge or whose ratio is bomb-like."""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputFileError(f"{path} is a damaged zip archive: {exc}") from None
    unpacked = sum(i.file_size for i in infos)
    packed = max(path.stat().st_size, 1)
    if unpacked > MAX_ARCHIVE_UNPACKED_BYTES or unpacked > MAX_ARCHIVE_RATIO * packed + 2**20:
        raise InputFileError(
            f"{path} unpacks to {unpacked} bytes from {packed}: refused as a possible zip bomb"
        )


def load_model(
    path: str | os.PathLike[str],
    *,
    arch: str | None = None,
    arch_kwargs: Mapping[str, Any] | None = None,
    trust_pickle: bool = False,
    trust_arch: bool = False,
):
    """Load a model from any accepted input; returns ``(module, ModelInfo)``."""
    import torch

    p = check_input_file(path)
    with open(p, "rb") as fh:
        head = fh.read(8)
    if head.startswith(DCZ_MAGIC_PREFIX):
        from .api import load

        model = load(p, trust_arch=trust_arch or arch is not None)
        return model, ModelInfo(str(p), "dcz", arch=getattr(model, "_deepcompress_arch", None))
    check_archive(p)
    if _is_torchscript(p):
        try:
            model = torch.jit.load(str(p), map_location="cpu")
        except Exception as exc:
            raise ModelError(f"{p} is a damaged TorchScript archive: {exc}") from None
        return model, ModelInfo(str(p), "torchscript")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols; the refusal below says it all
            warnings.simplefilter("ignore")
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        return _load_untrusted(p, exc, trust_pickle)
    if isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT:
        if not isinstance(obj.get("arch"), Mapping) or not isinstance(obj.get("state_dict"), Mapping):
            raise ModelError(f"{p} is a damaged deepcompress checkpoint (no arch or state_dict)")
        record = dict(obj["arch"])
        if arch is not None:
            record = arch_spec(arch, arch_kwargs)
        model = build_arch(record, trust_arch=True if arch is not None else trust_arch)
        fill_state_dict(model, obj["state_dict"], _arch_label(record))
        info = ModelInfo(str(p), "checkpoint", arch=record, metrics=dict(obj.get("metrics") or {}))
        info.extra = {k: obj[k] for k in ("data", "train") if k in obj}
        return model, info
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        if arch is None:
            raise ModelError(f"{p} is a plain state_dict; name its architecture with --arch NAME|module:Class")
        record = arch_spec(arch, arch_kwargs)
        model = build_arch(record, trust_arch=True)
        fill_state_dict(model, obj, _arch_label(record))
        return model, ModelInfo(str(p), "state_dict", arch=record)
    raise ModelError(f"{p} holds a {type(obj).__name__}, not a model checkpoint or state_dict")


def _load_untrusted(p: Path, exc: Exception, trust_pickle: bool):
    import pickle

    import torch

    text = str(exc)
    with open(p, "rb") as fh:
        head = fh.read(2)
    looks_like_torch = head == b"PK" or head[:1] == b"\x80"
    # A pickle the restricted unpickler refuses (globals, newer opcodes) may carry code.
    pickled_object = looks_like_torch and (isinstance(exc, pickle.UnpicklingError) or "Unsupported global" in text)
    if not pickled_object:
        raise InputFileError(f"{p} is not a PyTorch file, a TorchScript archive or a .dcz file") from None
    if not trust_pickle:
        raise ModelError(
            f"{p} holds pickled Python objects; unpickling can run arbitrary code, so it is refused. "
            "Pass --trust-pickle only if you trust its source"
        )
    try:
        obj = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ModelError(f"cannot unpickle {p}: {err}") from None
    if not isinstance(obj, torch.nn.Module):
        raise ModelError(f"{p} unpickles to a {type(obj).__name__}, not an nn.Module")
    return obj, ModelInfo(str(p), "pickle")


def _arch_label(record: Mapping[str, Any]) -> str:
    return str(record.get("name") or record.get("import"))


def save_checkpoint(
    path: str | os.PathLike[str],
    model,
    arch: Mapping[str, Any],
    *,
    metrics: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write a checkpoint that loads with ``torch.load(weights_only=True)``, atomically."""
    import torch

    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "arch": {k: v for k, v in arch.items()},
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "metrics": dict(metrics or {}),
    }
    payload.update(dict(extra or {}))
    buf = io.BytesIO()
    torch.save(payload, buf)
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())
