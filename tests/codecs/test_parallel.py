"""The codecs' thread pools and prefaulted output buffers."""

from __future__ import annotations

import numpy as np
import pytest

from deepcompress.codecs import buffers, parallel


def test_map_largest_first_keeps_input_order_and_submits_the_largest_first(monkeypatch):
    monkeypatch.setattr(parallel, "threads", lambda: 2)
    submitted: list[int] = []
    real_pool = parallel._pool

    class Recording:
        def __init__(self, pool):
            self.pool = pool

        def submit(self, fn, x):
            submitted.append(x)
            return self.pool.submit(fn, x)

    monkeypatch.setattr(parallel, "_pool", lambda kind, workers: Recording(real_pool(kind, workers)))
    items = list(range(10))
    sizes = [1, 5, 3, 9, 0, 9, 2, 2, 7, 4]
    assert parallel.map_largest_first(lambda x: x * x, items, sizes) == [x * x for x in items]
    assert submitted == [3, 5, 8, 1, 9, 2, 6, 7, 0, 4]  # by size, then by position


def test_map_largest_first_raises_the_first_failure_in_input_order(monkeypatch):
    monkeypatch.setattr(parallel, "threads", lambda: 2)
    done: list[int] = []

    def work(x: int) -> int:
        if x in (2, 6):
            raise ValueError(f"bad {x}")
        done.append(x)
        return x

    with pytest.raises(ValueError, match="bad 2"):
        parallel.map_largest_first(work, list(range(8)), [0, 0, 1, 0, 0, 0, 5, 0])
    assert sorted(done) == [0, 1, 3, 4, 5, 7]  # every task finished before the error was raised


def test_run_ranges_covers_every_unit_once(monkeypatch):
    monkeypatch.setattr(parallel, "threads", lambda: 3)
    hits = np.zeros(100, np.int64)

    def kernel(out, u0, u1):
        out[u0:u1] += 1

    parallel.run_ranges(kernel, 100, True, hits)
    parallel.run_ranges(kernel, 100, False, hits)
    assert np.all(hits == 2)


@pytest.mark.parametrize("n", [0, 1, 1000, (buffers.MMAP_BYTES // 4) + 3, 5 * buffers.PIECE_BYTES // 4 + 17])
def test_zeroed_is_zero_writable_and_sized(n):
    arr = buffers.zeroed(n, np.float32)
    assert arr.shape == (n,) and arr.dtype == np.float32 and arr.flags.writeable and arr.flags.c_contiguous
    assert not arr.view(np.uint32).any()  # +0.0 everywhere
    if n:
        arr[0] = -2.0
        arr[-1] = 1.5
        assert arr[-1] == 1.5 and arr[0] == (-2.0 if n > 1 else 1.5)


def test_zeroed_without_madvise_falls_back_to_a_populated_mapping(monkeypatch):
    monkeypatch.setattr(buffers, "_MADVISE", False)
    arr = buffers.zeroed(buffers.MMAP_BYTES // 4 + 1, np.float32)
    assert not arr.any() and arr.flags.writeable


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_map_ordered_keeps_order_bounds_the_window_and_raises_the_first_failure(monkeypatch, threads):
    import threading
    import time

    monkeypatch.setattr(parallel, "threads", lambda: threads)
    taken, running, peak = [], [0], [0]
    lock = threading.Lock()

    def items():
        for i in range(20):
            taken.append(i)
            yield i

    def fn(i):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.002 * (i % 3))  # later items may finish first
        with lock:
            running[0] -= 1
        return i * i

    got = []
    for value in parallel.map_ordered(fn, items(), window=threads + 1):
        got.append(value)
        assert len(taken) - len(got) <= threads + 1  # never more than the window taken ahead
    assert got == [i * i for i in range(20)] and peak[0] <= threads + 1  # the window bounds what runs at once

    def boom(i):
        if i in (5, 7):
            raise ValueError(f"item {i}")
        return i

    with pytest.raises(ValueError, match="item 5"):
        list(parallel.map_ordered(boom, range(20)))


def test_map_ordered_keeps_the_weight_in_flight_under_the_budget(monkeypatch):
    """With a weight budget, the items in flight never weigh more than it, except one heavy item alone."""
    import threading

    monkeypatch.setattr(parallel, "threads", lambda: 2)
    weights = [5, 1, 1, 1, 9, 1, 1, 3, 3, 3]
    lock = threading.Lock()
    running: list[int] = []
    seen: list[int] = []

    def fn(i):
        with lock:
            running.append(weights[i])
            seen.append(sum(running))
        import time
        time.sleep(0.003)
        with lock:
            running.remove(weights[i])
        return i

    got = list(parallel.map_ordered(fn, range(len(weights)), window=10, weight=lambda i: weights[i], budget=6))
    assert got == list(range(len(weights)))
    assert all(s <= 6 or s == 9 for s in seen)  # at most the budget at once; the 9 (over budget) alone
