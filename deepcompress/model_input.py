"""Reading a model from every accepted input.

Accepted inputs, in the order they are recognised:

1. a ``.dcz`` compressed file (by its magic bytes);
2. a safetensors file (by its header): weights, plus the architecture when
   ``deepcompress decode`` wrote it, else ``--arch``;
3. a TorchScript archive (a zip holding ``*/constants.pkl`` and ``*/code/``);
4. a deepcompress checkpoint (a dict with ``format == "deepcompress-checkpoint"``);
5. a plain ``state_dict`` plus ``arch`` (a zoo name or ``module:Class``) and kwargs;
   or a dict in which one key clearly holds the state dict (a training
   checkpoint ``{"model": ..., "optimizer": ...}``, ``"state_dict"``,
   ``"model_state_dict"``, ``"net"``, ...). Keys that all start with
   ``module.`` (DataParallel) or ``_orig_mod.`` (``torch.compile``) lose the prefix;
6. a whole pickled ``nn.Module``, only with ``trust_pickle=True``.

Everything except 6 loads with ``torch.load(weights_only=True)`` (or
safetensors): nothing in the file is executed. Tensors saved from GPU memory
load onto the CPU.

The ``.dcz`` side (:func:`read_dcz_file`, :func:`load_dcz`) lives here too, so
:mod:`deepcompress.api` and :func:`load_model` share it without importing each
other.
"""

from __future__ import annotations

import os
import re
import struct
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .arch import arch_label, arch_spec, build_arch, complete_ties, fill_state_dict, retie
from .checkpoint import CHECKPOINT_FORMAT, SAFETENSORS_FORMAT
from .errors import ConfigError, InputFileError, ModelError

DCZ_MAGIC_PREFIX = b"\x89DCZ"
# A TorchScript/zip archive larger than this when unpacked is refused (zip bombs).
MAX_ARCHIVE_UNPACKED_BYTES = 8 * 2**30
MAX_ARCHIVE_RATIO = 200
# Keys under which training scripts commonly save the state dict, most specific first.
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "module", "weights")
# Prefixes every key carries when saved from a wrapper: DataParallel/DDP, torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")

__all__ = [
    "ModelInfo",
    "build_assigned",
    "check_archive",
    "check_input_file",
    "dcz_state_dict",
    "find_state_dict",
    "load_dcz",
    "load_model",
    "model_from_dcz",
    "read_dcz_file",
    "strip_wrapper_prefixes",
]


@dataclass
class ModelInfo:
    """What was learned about a model while loading it."""

    source: str
    kind: str  # "checkpoint", "state_dict", "safetensors", "torchscript", "pickle", "dcz"
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


# --------------------------------------------------------------------------- .dcz files


def read_dcz_file(path: str | os.PathLike[str], *, verify: bool = True):
    """The :class:`~deepcompress.container.DczFile` at ``path``: every checksum verified now, or
    (``verify=False``) each tensor's checksum when it is first decoded (the layout, the
    header's checksum and the zero padding are always checked first)."""
    from .container import read_dcz

    return read_dcz(check_input_file(path, "compressed model"), verify=verify)


def dcz_state_dict(dcz: Any) -> dict[str, Any]:
    """Decode every tensor of a read ``.dcz`` file into ``{name: torch.Tensor}``, in the input's dtypes.

    Dense tensors come back in their stored dtype (bfloat16 included) without a
    copy; compressed ones decode as float32 and are cast to the dtype the header
    records (``extra.dtypes``; exact, the values were rounded to it before
    coding), each as soon as it is decoded (``DczFile.decode_each``), so the
    float32 arrays of a half-precision file are never all held at once. Every tied
    name (``extra.tied``) maps to the very tensor of the name it was stored under.
    """
    from .dtypes import from_numpy, torch_dtype

    extra = dcz.extra if isinstance(getattr(dcz, "extra", None), dict) else {}
    dtypes = extra.get("dtypes") if isinstance(extra.get("dtypes"), dict) else {}
    ties = extra.get("tied") if isinstance(extra.get("tied"), dict) else {}

    # weight-shared half-precision tensors decode straight into their dtype (no float32 copy)
    halves = {n: d for n, d in dtypes.items() if d in ("float16", "bfloat16")}

    def convert(name: str, array: Any) -> Any:  # on the pool
        meta = dcz.meta(name)
        if meta.get("kind") == "quantized" and name in halves:
            return from_numpy(array, halves[name])
        tensor = from_numpy(array, meta.get("dtype") if meta.get("kind") in ("dense", "split_float") else None)
        want = dtypes.get(name)
        if isinstance(want, str) and want != "float32":
            try:
                tensor = tensor.to(torch_dtype(want))
            except ValueError:
                raise ModelError(f"the file records dtype {want!r} for {name}, which this torch does not have") from None
        return tensor

    out = dict(dcz.decode_each(convert, shared_dtypes=halves))
    for alias, canonical in ties.items():
        if isinstance(alias, str) and canonical in out:
            out[alias] = out[canonical]
    return out


def build_assigned(arch: Mapping[str, Any], tensors: Mapping[str, Any], *, trust_arch: bool = False):
    """Build the module ``arch`` names and make ``tensors`` its state, without initialising it first.

    The module is constructed on the ``meta`` device (no memory, no random
    init), then ``load_state_dict(strict=True, assign=True)`` adopts the tensors
    themselves. Names, shapes and dtypes must match exactly (ModelError in one
    line otherwise). A module that keeps state outside its ``state_dict`` (a
    non-persistent buffer, a plain tensor attribute) is built normally instead,
    so nothing is ever left on the meta device. NumPy arrays (``safetensors.numpy.load_file``) are taken as
    tensors.
    """
    import numpy as np
    import torch

    from .layers import tied_parameters

    tensors = {k: torch.from_numpy(v if v.flags.writeable else v.copy()) if isinstance(v, np.ndarray) else v
               for k, v in tensors.items()}
    with torch.device("meta"):
        model = build_arch(arch, trust_arch=trust_arch)
    ties = tied_parameters(model)
    tensors = complete_ties(model, tensors)
    own = model.state_dict()
    exact = own.keys() == tensors.keys() and all(
        own[k].shape == tensors[k].shape and own[k].dtype == tensors[k].dtype for k in own
    )
    if exact:
        model.load_state_dict(tensors, strict=True, assign=True)
        retie(model, ties)
        if not any(t.is_meta for t in (*model.parameters(), *model.buffers())):
            return model
    model = build_arch(arch, trust_arch=trust_arch)  # the slow way: real init, then copy (or a clear error)
    fill_state_dict(model, tensors, arch_label(arch))
    return model


def load_dcz(
    path: str | os.PathLike[str],
    model: Any = None,
    *,
    trust_arch: bool = False,
    eval_mode: bool = True,
    sparse: bool | float = False,
):
    """Rebuild a ready ``nn.Module`` from a ``.dcz`` file (the body of :func:`deepcompress.load`)."""
    return model_from_dcz(read_dcz_file(path), model, trust_arch=trust_arch, eval_mode=eval_mode, sparse=sparse,
                          source=path)


def model_from_dcz(
    dcz: Any,
    model: Any = None,
    *,
    trust_arch: bool = False,
    eval_mode: bool = True,
    sparse: bool | float = False,
    source: str | os.PathLike[str] = "the file",
):
    """:func:`load_dcz` of a file already read (``source`` names it in messages)."""
    import torch

    from .layers import on_meta_device

    threshold = _sparse_threshold(sparse)  # checked before the caller's module is touched
    arch = dcz.arch
    if model is None:
        if not arch:
            raise ModelError(f"{source} names no architecture (a checkpoint compressed without one); name it "
                             "with --arch NAME|module:Class, or pass model=YourModule(...) in Python")
        model = build_assigned(arch, dcz_state_dict(dcz), trust_arch=trust_arch)
    else:
        if not isinstance(model, torch.nn.Module):
            raise InputFileError(f"model= must be an nn.Module, got {type(model).__name__}")
        on_meta = on_meta_device(model)
        if on_meta:
            raise ModelError(f"model= has tensors on the meta device ({on_meta}), which cannot hold values: call "
                             "model.to_empty(device='cpu') first")
        state = dcz_state_dict(dcz)
        if not set(state) <= set(model.state_dict()):  # a checkpoint saved from DataParallel / torch.compile
            state = strip_wrapper_prefixes(state)[0]
        fill_state_dict(model, state, type(model).__name__)
    if threshold is not None:
        _sparsify_pruned(model, dcz, threshold)
    if eval_mode:
        model.eval()
    model._deepcompress_arch = arch
    return model


def _sparse_threshold(sparse: Any) -> float | None:
    """``load``'s ``sparse=`` as a density threshold (None: dense), or :class:`ConfigError`."""
    from .sparse import DEFAULT_THRESHOLD_DENSITY

    if sparse is False or sparse is None:
        return None
    if sparse is True:
        return DEFAULT_THRESHOLD_DENSITY
    if isinstance(sparse, (int, float)) and not isinstance(sparse, bool) and 0.0 <= float(sparse) <= 1.0:
        return float(sparse)
    raise ConfigError(f"sparse= must be True, False or a density threshold in [0, 1]; got {sparse!r}")


def _sparsify_pruned(model: Any, dcz: Any, threshold: float) -> None:
    """Make the Linear layers the file stored pruned sparse (see :func:`deepcompress.sparse.sparsify`)."""
    from .sparse import sparsify

    names = [name for name in dcz.tensor_names
             if name.endswith(".weight") and dcz.meta(name).get("kind") in ("quantized", "float")]
    modules = {name for name, _ in model.named_modules()}
    if not {n[: -len(".weight")] for n in names} & modules:  # saved from DataParallel / torch.compile
        names = list(strip_wrapper_prefixes({n: None for n in names})[0])
    pruned = {name[: -len(".weight")] for name in names}
    sparsify(model, threshold, layers=sorted(pruned & modules))


# --------------------------------------------------------------------------- state dicts


def _is_tensor_dict(obj: Any) -> bool:
    import torch

    return (isinstance(obj, Mapping) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def _is_big_tensor(obj: Any) -> bool:
    """A tensor of more than one element: weights, not a step counter or a scalar loss kept beside them."""
    import torch

    return isinstance(obj, torch.Tensor) and obj.numel() > 1


def strip_wrapper_prefixes(state_dict: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Drop ``module.`` / ``_orig_mod.`` from every key when *every* key has it; returns ``(dict, prefixes)``."""
    out = dict(state_dict)
    stripped: list[str] = []
    changed = True
    while changed and out:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) and len(k) > len(prefix) for k in out):
                out = {k[len(prefix):]: v for k, v in out.items()}
                stripped.append(prefix)
                changed = True
    return out, stripped


def _keys_text(obj: Mapping[Any, Any], limit: int = 12) -> str:
    keys = [repr(k) for k in list(obj)[:limit]]
    more = f", ... ({len(obj)} keys)" if len(obj) > limit else ""
    return "[" + ", ".join(keys) + more + "]"


def find_state_dict(obj: Any, source: str | os.PathLike[str] = "the file") -> tuple[dict[str, Any], str | None]:
    """The state dict ``obj`` is or clearly holds: ``(state_dict, key it was under or None)``.

    ``obj`` is a state dict itself, or a dict in which exactly one value is a
    state dict (``{"model": sd, "optimizer": ..., "epoch": 3}``); when several
    values are, the one under the single well-known key (:data:`STATE_DICT_KEYS`)
    among them. Otherwise, and when tensors of more than one element sit at the
    top level beside a nested state dict (they would be lost), :class:`ModelError`
    names the keys found.
    Wrapper prefixes are left to :func:`strip_wrapper_prefixes`.
    """
    if not isinstance(obj, Mapping):
        raise ModelError(f"{source} holds a {type(obj).__name__}, not a model checkpoint or state_dict")
    if _is_tensor_dict(obj):
        return dict(obj), None
    candidates = [k for k, v in obj.items() if _is_tensor_dict(v)]
    known = [k for k in STATE_DICT_KEYS if k in candidates]
    loose = [k for k, v in obj.items() if _is_big_tensor(v)]
    if candidates and loose:  # taking the nested dict would silently drop these tensors
        raise ModelError(
            f"{source} holds tensors at its top level ({_keys_text({k: None for k in loose}, 4)}) beside "
            f"state_dicts under {', '.join(repr(k) for k in candidates)}: it is not clear which are the weights; "
            f"save the one to use on its own, e.g. torch.save(ckpt[{candidates[0]!r}], 'weights.pt')"
        )
    if len(candidates) == 1:
        key = candidates[0]
    elif len(candidates) > 1 and len(known) == 1:
        key = known[0]
    elif candidates:
        raise ModelError(
            f"{source} holds several state_dicts, under {', '.join(repr(k) for k in candidates)} "
            f"(top-level keys: {_keys_text(obj)}); save the one to use on its own, e.g. "
            f"torch.save(ckpt[{candidates[0]!r}], 'weights.pt')"
        )
    else:
        raise ModelError(
            f"{source} holds a dict with the top-level keys {_keys_text(obj)}, none of which is a "
            "state_dict (a dict of tensors by name)"
        )
    return dict(obj[key]), key


# --------------------------------------------------------------------------- archives, safetensors


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


def _is_safetensors(head: bytes, size: int) -> bool:
    """An 8-byte little-endian header length that fits the file, then a JSON object."""
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def _load_safetensors(p: Path) -> tuple[dict[str, Any], dict[str, str]]:
    try:
        from safetensors import safe_open

        tensors = {}
        with safe_open(str(p), framework="pt", device="cpu") as fh:
            meta = dict(fh.metadata() or {})
            for name in fh.keys():
                tensors[name] = fh.get_tensor(name)
    except Exception as exc:  # the library raises its own error types
        raise InputFileError(f"{p} is a damaged safetensors file: {exc}") from None
    return tensors, meta


def _safetensors_arch(p: Path, meta: Mapping[str, str]) -> dict[str, Any] | None:
    import json

    if meta.get("format") != SAFETENSORS_FORMAT or "arch" not in meta:
        return None
    try:
        record = json.loads(meta["arch"])
    except json.JSONDecodeError:
        raise InputFileError(f"{p}: its metadata holds an architecture that is not valid JSON") from None
    return dict(record) if isinstance(record, dict) and record else None


# --------------------------------------------------------------------------- every input


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
    size = p.stat().st_size
    with open(p, "rb") as fh:
        head = fh.read(16)
    if head.startswith(DCZ_MAGIC_PREFIX):
        if arch is not None:  # the architecture named on the command line fills with the file's weights
            record = arch_spec(arch, arch_kwargs)
            model = load_dcz(p, build_arch(record, trust_arch=True), trust_arch=True)
            return model, ModelInfo(str(p), "dcz", arch=record)
        model = load_dcz(p, trust_arch=trust_arch)
        return model, ModelInfo(str(p), "dcz", arch=getattr(model, "_deepcompress_arch", None))
    if _is_safetensors(head, size):
        tensors, meta = _load_safetensors(p)
        record = arch_spec(arch, arch_kwargs) if arch is not None else _safetensors_arch(p, meta)
        if record is None:
            raise ModelError(f"{p} is a safetensors file naming no architecture; "
                             "name it with --arch NAME|module:Class")
        state, stripped = strip_wrapper_prefixes(tensors)
        model = build_arch(record, trust_arch=True if arch is not None else trust_arch)
        fill_state_dict(model, state, arch_label(record))
        return model, ModelInfo(str(p), "safetensors", arch=record, extra={"stripped_prefixes": stripped})
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
        obj = _load_untrusted(p, exc, trust_pickle)
        if isinstance(obj, torch.nn.Module):
            return obj, ModelInfo(str(p), "pickle")
    return _model_from_object(p, obj, arch=arch, arch_kwargs=arch_kwargs, trust_arch=trust_arch)


def _model_from_object(p: Path, obj: Any, *, arch: str | None, arch_kwargs: Mapping[str, Any] | None,
                       trust_arch: bool):
    """A model from what ``torch.load`` returned: a deepcompress checkpoint or (a dict holding) a state dict."""
    if isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT:
        if not isinstance(obj.get("arch"), Mapping) or not isinstance(obj.get("state_dict"), Mapping):
            raise ModelError(f"{p} is a damaged deepcompress checkpoint (no arch or state_dict)")
        record = dict(obj["arch"])
        if arch is not None:
            record = arch_spec(arch, arch_kwargs)
        model = build_arch(record, trust_arch=True if arch is not None else trust_arch)
        fill_state_dict(model, obj["state_dict"], arch_label(record))
        info = ModelInfo(str(p), "checkpoint", arch=record, metrics=dict(obj.get("metrics") or {}))
        info.extra = {k: obj[k] for k in ("data", "train") if k in obj}
        return model, info
    state, key = find_state_dict(obj, p)
    state, stripped = strip_wrapper_prefixes(state)
    if arch is None:
        where = "a plain state_dict" if key is None else f"a checkpoint holding a state_dict under {key!r}"
        raise ModelError(f"{p} is {where}; name its architecture with --arch NAME|module:Class")
    record = arch_spec(arch, arch_kwargs)
    model = build_arch(record, trust_arch=True)
    fill_state_dict(model, state, arch_label(record))
    return model, ModelInfo(str(p), "state_dict", arch=record,
                            extra={"state_dict_key": key, "stripped_prefixes": stripped})


_GLOBAL_RE = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def pickled_objects(p: str | os.PathLike[str], exc: Exception) -> str | None:
    """When ``torch.load(weights_only=True)`` refused ``p`` (raising ``exc``) because it pickles Python objects,
    which may carry code: ``" (the.Global)"`` naming the first one (or ``""``); else None (not such a file)."""
    import pickle

    with open(p, "rb") as fh:
        head = fh.read(2)
    text = str(exc)
    if not (head == b"PK" or head[:1] == b"\x80") or not (isinstance(exc, pickle.UnpicklingError)
                                                           or "Unsupported global" in text):
        return None
    found = _GLOBAL_RE.search(text)
    return f" ({found.group(1)})" if found else ""


def _load_untrusted(p: Path, exc: Exception, trust_pickle: bool) -> Any:
    """What a file ``torch.load(weights_only=True)`` refused unpickles to, with ``trust_pickle`` only."""
    import torch

    what = pickled_objects(p, exc)
    if what is None:
        raise InputFileError(f"{p} is not a PyTorch file, a safetensors file, a TorchScript archive "
                             "or a .dcz file") from None
    if not trust_pickle:
        raise ModelError(
            f"{p} holds pickled Python objects{what}; unpickling can run arbitrary code, so it is refused. "
            "Pass --trust-pickle only if you trust its source"
        )
    from .arch import cwd_on_path

    try:
        with cwd_on_path():  # the pickled module's class may live in a file in the current folder, as for --arch
            obj = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ModelError(f"cannot unpickle {p}: {err}") from None
    if not isinstance(obj, (torch.nn.Module, Mapping)):
        raise ModelError(f"{p} unpickles to a {type(obj).__name__}, not an nn.Module or a checkpoint dict")
    return obj
