"""The same bytes at any intra-op thread count (CPU).

Training and evaluation on the CPU were bit-for-bit repeatable with one thread
only. With more, three kernels made results depend on the thread count (torch
2.13, MKL 2024.2, oneDNN 3.12); docs/benchmarks/determinism.md has the bisection:

1. The backward of the centroid gather of fine-tuning (``table[index]``:
   ``index_put_(accumulate=True)``) adds into the centroids' gradient from all
   threads at once, in whatever order they arrive: two runs with 2 threads
   differ. :func:`shared_gather` computes that gradient with ``bincount``
   (one serial pass in index order), which is the 1-thread ``index_put``
   result exactly, at any thread count.
2. MKL's ``sgemm`` splits the inner (K) dimension across threads when the output
   is small and K large, as in a Linear layer's weight gradient (``grad_out^T @
   input``, K = the batch): each thread count sums in its own order. MKL's
   *strict* conditional numerical reproducibility (``MKL_CBWR=AUTO,STRICT``)
   fixes the order whatever the thread count; it can only be chosen before
   MKL's first computation in the process: :func:`request_reproducible_blas`.
3. oneDNN's convolution weight gradient (and the bias gradient computed with
   it) adds per-thread partial sums over the minibatch. :class:`thread_invariant`
   runs ``aten.convolution_backward`` on one intra-op thread; the convolution
   forward and the input gradient give the same bits at any thread count and
   stay parallel. The same pin covers the other CPU kernels found to use
   per-thread partial sums: LayerNorm's weight gradient, BatchNorm on
   ``(N, C)`` or channels-last input, a sum or mean of 32,768+ elements to one
   value, and ``dot``. tests/core/test_determinism.py checks each kernel, and
   the common layers, at 1, 2 and 3 threads.

``with thread_invariant():`` around a training or evaluation loop applies (3),
or, when strict BLAS is not in force (MKL was used before it could be chosen,
or torch has no MKL), runs the whole block on one intra-op thread, which is
thread-invariant for every kernel. Both give the 1-thread bytes.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: The MKL setting that makes GEMM results independent of the thread count.
MKL_CBWR_STRICT_SETTING = "AUTO,STRICT"
_MKL_CBWR_ALL = -1  # MKL_CBWR_ALL (~0): ask for the whole mode
_MKL_CBWR_STRICT = 0x10000

_local = threading.local()


@functools.lru_cache(maxsize=1)
def _mkl_lib() -> Any | None:
    """torch's own MKL (linked into libtorch_cpu), or None when this build has none.

    ``mkl_serv_cbwr_get`` is what ``mkl_cbwr_get`` is called inside the static
    MKL that torch links; a build without it counts as not strict.
    """
    import torch

    if not torch.backends.mkl.is_available():
        return None
    path = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    try:
        lib = ctypes.CDLL(path)
        get = lib.mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
    return lib


def request_reproducible_blas() -> None:
    """Ask MKL for GEMM results that do not depend on the thread count (strict CNR).

    Call it at process start, before any matrix product (a CLI entry point):
    MKL fixes its mode at its first computation. It sets ``MKL_CBWR``
    (inherited by child processes) unless the user set it, and imports
    nothing. Calling it again, or too late, is harmless:
    :func:`blas_thread_invariant` tells whether strict mode is on.
    """
    os.environ.setdefault("MKL_CBWR", MKL_CBWR_STRICT_SETTING)


def blas_thread_invariant() -> bool:
    """True when torch's GEMM gives the same bits at any thread count (MKL in strict CNR mode)."""
    lib = _mkl_lib()
    if lib is None:
        return False
    mode = lib.mkl_serv_cbwr_get(_MKL_CBWR_ALL)
    return mode > 0 and bool(mode & _MKL_CBWR_STRICT)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run the block on one intra-op thread, then restore the thread count."""
    import torch

    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


#: A reduction to one value over at least this many elements splits across threads (ATen's GRAIN_SIZE).
_PARALLEL_GRAIN = 32768


def _channels_last_bn(x: Any) -> bool:
    """True when ATen's batch norm takes its channels-last kernels (per-thread partial sums)."""
    import torch

    if x.dim() == 2:
        return True
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(x.dim())
    return fmt is not None and x.is_contiguous(memory_format=fmt)


def _full_reduction(x: Any, dims: Any = None) -> bool:
    """True when a sum/mean of ``x`` over ``dims`` is one value over many elements (a two-pass reduction)."""
    if x.numel() < _PARALLEL_GRAIN:
        return False
    if not dims:
        return True
    dims = {d % x.dim() for d in ([dims] if isinstance(dims, int) else dims)}
    return all(size == 1 for i, size in enumerate(x.shape) if i not in dims)


def _pin_rules() -> dict[Any, Any]:
    """aten op -> predicate(args) telling when its CPU result depends on the thread count."""
    import torch

    aten = torch.ops.aten
    always = lambda args: True  # noqa: E731
    return {
        aten.convolution_backward.default: always,  # oneDNN weight/bias gradient: per-thread minibatch sums
        aten.native_layer_norm_backward.default: always,  # per-thread gamma/beta gradient buffers
        aten.native_batch_norm.default: lambda a: bool(a[5]) and _channels_last_bn(a[0]),  # batch statistics
        aten.native_batch_norm_backward.default: lambda a: _channels_last_bn(a[1]),
        aten.sum.default: lambda a: _full_reduction(a[0]),
        aten.mean.default: lambda a: _full_reduction(a[0]),
        aten.sum.dim_IntList: lambda a: _full_reduction(a[0], a[1] if len(a) > 1 else None),
        aten.mean.dim: lambda a: _full_reduction(a[0], a[1] if len(a) > 1 else None),
        aten.dot.default: always,
        aten.vdot.default: always,
    }


def _pin_mode() -> Any:
    from torch.utils._python_dispatch import TorchDispatchMode

    rules = _pin_rules()

    class _PinOps(TorchDispatchMode):
        """Run the ops whose CPU result depends on the thread count on one thread."""

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            rule = rules.get(func)
            if rule is not None and rule(args):
                with single_thread():
                    return func(*args, **(kwargs or {}))
            return func(*args, **(kwargs or {}))

    return _PinOps()


def mode() -> str:
    """How :class:`thread_invariant` works in this process: ``"single"``, ``"pin-ops"`` or ``"off"``."""
    import torch

    if torch.get_num_threads() == 1:
        return "off"
    request_reproducible_blas()
    return "pin-ops" if blas_thread_invariant() else "single"


@contextlib.contextmanager
def thread_invariant() -> Iterator[str]:
    """Make the CPU kernels run inside the block give the 1-thread bits; yields the :func:`mode` used.

    Re-entrant (an inner use is free) and per thread. With one intra-op
    thread there is nothing to do.
    """
    depth = getattr(_local, "depth", 0)
    if depth:
        _local.depth = depth + 1
        try:
            yield _local.mode
        finally:
            _local.depth -= 1
        return
    how = mode()
    ctx = _pin_mode() if how == "pin-ops" else single_thread() if how == "single" else contextlib.nullcontext()
    _local.depth, _local.mode = 1, how
    try:
        with ctx:
            yield how
    finally:
        _local.depth = 0


class _SharedGather:
    """``table[index]`` whose backward sums with ``bincount`` (serial, in index order)."""

    _fn: Any = None

    @classmethod
    def get(cls) -> Any:
        if cls._fn is None:
            import torch

            class SharedGather(torch.autograd.Function):
                @staticmethod
                def forward(ctx, table, index):  # noqa: D401 - autograd signature
                    ctx.save_for_backward(index)
                    ctx.rows = table.shape[0]
                    return table[index]

                @staticmethod
                @torch.autograd.function.once_differentiable
                def backward(ctx, grad):
                    (index,) = ctx.saved_tensors
                    weights = grad.reshape(-1)
                    narrow = weights.dtype not in (torch.float32, torch.float64)
                    sums = torch.bincount(index.reshape(-1), weights=weights.float() if narrow else weights,
                                          minlength=ctx.rows)
                    return sums.to(grad.dtype), None

            cls._fn = SharedGather
        return cls._fn


def shared_gather(table: "torch.Tensor", index: "torch.Tensor") -> "torch.Tensor":
    """``table[index]`` (``table`` 1-D) with a gradient that is the same at any thread count.

    The gradient of ``table[k]`` is the sum of the output gradient over the
    positions where ``index == k`` (Deep Compression Eq. 3), added serially
    in index order, which is what ``index_put_`` does with one thread. On a
    device other than the CPU it is plain ``table[index]``.
    """
    if table.device.type != "cpu" or not (table.requires_grad and _grad_enabled()):
        return table[index]
    return _SharedGather.get().apply(table, index)


def _grad_enabled() -> bool:
    import torch

    return torch.is_grad_enabled()
