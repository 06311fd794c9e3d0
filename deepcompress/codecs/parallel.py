"""The codecs' thread pools: numba kernels release the GIL, so plain Python threads run them in parallel.

Two pools, so that work submitted from inside a pooled task never waits on its
own pool:

* the *range* pool splits one long kernel call into a few index ranges
  (:func:`run_ranges`; Huffman coding, histograms);
* the *task* pool runs independent tasks such as whole tensors
  (:func:`map_largest_first`; ``DczFile.decode_all``; :func:`map_ordered`, a
  bounded stream of them: lossless compress).

The number of threads is numba's (``NUMBA_NUM_THREADS``, default: the CPU
count). With one thread everything runs in the calling thread.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

# streams (of symbols, or of gap symbols) at least this long are split over the range pool
PARALLEL_SYMBOLS = 1 << 19

T = TypeVar("T")
R = TypeVar("R")

_LOCK = threading.Lock()
_POOLS: dict[str, tuple[ThreadPoolExecutor, int]] = {}


def threads() -> int:
    """How many threads the codecs use (numba's thread count)."""
    import numba

    return int(numba.get_num_threads())


def _pool(kind: str, workers: int) -> ThreadPoolExecutor:
    with _LOCK:
        have = _POOLS.get(kind)
        if have is None or have[1] < workers:
            have = (ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"deepcompress-{kind}"), workers)
            _POOLS[kind] = have
        return have[0]


def run_ranges(kernel: Callable[..., Any], n_units: int, parallel: bool, *args: Any) -> None:
    """Run ``kernel(*args, u0, u1)`` over ``0 .. n_units``: in one call, or in a few ranges on threads.

    The calling thread takes the first range. ``parallel=False`` (a short
    stream) always makes one call.
    """
    n = min(threads(), n_units) if parallel else 1
    if n <= 1:
        kernel(*args, 0, n_units)
        return
    # callers may themselves be task-pool workers: size the pool so that each of
    # up to threads() + 1 concurrent callers gets its n - 1 helpers without queueing
    pool = _pool("ranges", (threads() + 1) * (n - 1))
    cuts = [n_units * t // n for t in range(n + 1)]
    futures = [pool.submit(kernel, *args, cuts[t], cuts[t + 1]) for t in range(1, n)]
    kernel(*args, cuts[0], cuts[1])
    for f in futures:
        f.result()


def map_largest_first(fn: Callable[[T], R], items: Sequence[T], sizes: Sequence[int]) -> list[R]:
    """``[fn(x) for x in items]``, run on the task pool with the largest ``sizes`` started first.

    Every task is finished before this returns or raises; if tasks failed, the
    exception of the first failing item in input order is raised, so the
    error does not depend on thread timing.
    """
    n = min(threads(), len(items))
    if n <= 1:
        return [fn(x) for x in items]
    pool = _pool("tasks", n)
    order = sorted(range(len(items)), key=lambda i: (-sizes[i], i))
    futures = {i: pool.submit(fn, items[i]) for i in order}
    wait(futures.values())
    return [futures[i].result() for i in range(len(items))]


def map_ordered(fn: Callable[[T], R], items: Iterable[T], *, window: int | None = None,
                weight: Callable[[T], int] | None = None, budget: int | None = None) -> Iterator[R]:
    """``fn(x) for x in items`` on the task pool, yielded in input order, with at most ``window`` items in flight.

    ``items`` is consumed lazily (an item is taken only when a slot is free), so a
    stream of large tensors holds at most ``window`` of them plus the one being
    handed back. ``window`` defaults to ``threads() + 1``. With ``weight`` and
    ``budget``, the items in flight also weigh at most ``budget`` together (one item
    is always let through, whatever its weight): a few large tensors, or many small
    ones behind a large one. The first failing item in input order raises; items
    after it are finished (not abandoned mid-run) first.
    """
    n = threads()
    if n <= 1:
        for x in items:
            yield fn(x)
        return
    window = max(1, window if window is not None else n + 1)
    pool = _pool("tasks", n)
    pending: deque[tuple[Future[R], int]] = deque()
    load = 0
    try:
        for x in items:
            w = int(weight(x)) if weight is not None else 0
            while pending and (len(pending) >= window or (budget is not None and load + w > budget)):
                future, done_w = pending.popleft()
                load -= done_w
                yield future.result()
            pending.append((pool.submit(fn, x), w))
            load += w
        while pending:
            yield pending.popleft()[0].result()
    finally:
        wait([f for f, _ in pending])
