"""deepcompress.determinism: kernels give the 1-thread bits at any intra-op thread count.

The op matrix runs in a fresh interpreter: strict MKL (thread-invariant GEMM)
can only be chosen before MKL's first computation, which in this pytest
process has long happened.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from deepcompress import determinism as det


@pytest.fixture()
def threads():
    """Set the intra-op thread count for a test; restored afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def _centroid_grad(table_size: int, index: torch.Tensor, grad: torch.Tensor, gather) -> torch.Tensor:
    centroids = torch.zeros(table_size - 1, requires_grad=True)
    table = torch.cat((centroids, centroids.new_zeros(1)))
    gather(table, index).backward(grad)
    return centroids.grad


def test_shared_gather_matches_one_thread_index_put_at_any_thread_count(threads):
    gen = torch.Generator().manual_seed(0)
    index = torch.randint(0, 33, (300, 784), generator=gen)  # 32 centroids + the pruned slot, fc1 of LeNet-300
    grad = torch.randn(300, 784, generator=gen)
    threads(1)
    reference = _centroid_grad(33, index, grad, lambda t, i: t[i])  # autograd's index_put_, one thread
    exact = torch.zeros(33, dtype=torch.float64).index_add_(0, index.reshape(-1), grad.reshape(-1).double())[:32]
    for n in (1, 2, 3):
        threads(n)
        for _ in range(3):
            got = _centroid_grad(33, index, grad, det.shared_gather)
            assert torch.equal(got, reference), f"{n} threads"
    assert torch.allclose(reference.double(), exact, rtol=0, atol=1e-3)


def test_shared_gather_forward_and_no_grad_paths():
    table = torch.tensor([1.0, -2.0, 0.0])
    index = torch.tensor([[0, 2], [1, 1]])
    assert torch.equal(det.shared_gather(table, index), table[index])
    with torch.no_grad():
        leaf = table.clone().requires_grad_()
        assert det.shared_gather(leaf, index).grad_fn is None


def test_shared_gather_half_precision_gradient():
    table = torch.zeros(3, dtype=torch.bfloat16, requires_grad=True)
    out = det.shared_gather(table, torch.tensor([0, 0, 1, 2]))
    out.backward(torch.ones(4, dtype=torch.bfloat16))
    assert table.grad.dtype == torch.bfloat16 and table.grad.tolist() == [2.0, 1.0, 1.0]


def test_thread_invariant_restores_threads_and_nests(threads):
    threads(2)
    with det.thread_invariant() as how:
        assert how in ("pin-ops", "single")
        with det.thread_invariant() as inner:
            assert inner == how
        if how == "single":
            assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    threads(1)
    with det.thread_invariant() as how:
        assert how == "off"


def test_thread_invariant_restores_threads_after_an_error(threads):
    threads(2)
    with pytest.raises(RuntimeError):
        with det.thread_invariant():
            torch.nn.functional.conv2d(torch.ones(1, 1, 3, 3), torch.ones(2, 2, 1, 1))  # channel mismatch
    assert torch.get_num_threads() == 2


# The kernels of the zoo and of common layers, each at 1, 2 and 3 intra-op threads. Without
# thread_invariant the conv, BatchNorm-on-(N,C)/channels-last, LayerNorm and full-sum cases
# differ between thread counts; with it every output and gradient has the 1-thread bits.
OP_MATRIX = textwrap.dedent(
    """
    import json, sys
    import torch
    from torch import nn
    from deepcompress import determinism as det

    det.request_reproducible_blas()
    strict = det.blas_thread_invariant()
    B = 128
    cases = {
        "linear-10-out": (nn.Linear(500, 10), (B, 500)),
        "conv5x5": (nn.Conv2d(20, 50, 5), (B, 20, 12, 12)),
        "conv-grouped-nobias": (nn.Conv2d(16, 32, 3, padding=1, groups=2, bias=False), (B, 16, 16, 16)),
        "bn2d": (nn.BatchNorm2d(32), (B, 32, 16, 16)),
        "bn1d": (nn.BatchNorm1d(256), (B, 256)),
        "bn2d-channels-last": (nn.BatchNorm2d(32), "channels_last"),
        "layernorm": (nn.LayerNorm(256), (B, 64, 256)),
        "groupnorm": (nn.GroupNorm(4, 32), (B, 32, 16, 16)),
        "embedding": (nn.Embedding(65, 128), "tokens"),
        "lstm": (nn.LSTM(64, 128, batch_first=True), (B, 16, 64)),
        "attention": (nn.MultiheadAttention(128, 4, batch_first=True), (B, 32, 128)),
        "maxpool-overlapping": (nn.Sequential(nn.Conv2d(8, 16, 3), nn.MaxPool2d(3, 2)), (B, 8, 27, 27)),
        "dropout": (nn.Sequential(nn.Linear(256, 4096), nn.Dropout(0.5)), (B, 256)),
        "full-sum": (nn.Linear(256, 1024), (B, 256)),
    }

    def run(name, module, shape, threads, invariant):
        torch.set_num_threads(threads)
        torch.manual_seed(1)
        if shape == "tokens":
            x = torch.randint(0, 65, (B, 64))
        elif shape == "channels_last":
            x = torch.randn(B, 32, 16, 16).to(memory_format=torch.channels_last).requires_grad_()
        else:
            x = torch.randn(*shape, requires_grad=True)
        module.zero_grad(set_to_none=True)
        module.train()
        import contextlib
        with det.thread_invariant() if invariant else contextlib.nullcontext():
            out = module(x, x, x)[0] if isinstance(module, nn.MultiheadAttention) else module(x)
            out = out[0] if isinstance(out, tuple) else out
            if name == "full-sum":
                out = out.sum().reshape(1)
            out.backward(torch.randn_like(out))
        got = {"out": out.detach()}
        if x.grad is not None:
            got["dx"] = x.grad
        got.update({"d" + n: p.grad for n, p in module.named_parameters()})
        return got

    report = {"strict": strict, "mode": None, "raw": {}, "invariant": {}}
    torch.set_num_threads(2)
    with det.thread_invariant() as how:
        report["mode"] = how
    for name, (module, shape) in cases.items():
        for invariant in (False, True):
            runs = {n: run(name, module, shape, n, invariant) for n in (1, 2, 3)}
            differ = sorted({k for n in (2, 3) for k in runs[1] if not torch.equal(runs[1][k], runs[n][k])})
            report["invariant" if invariant else "raw"][name] = differ
    print(json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def op_matrix() -> dict:
    proc = subprocess.run([sys.executable, "-c", OP_MATRIX], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_kernel_gives_the_one_thread_bits_at_2_and_3_threads(op_matrix):
    assert op_matrix["invariant"] == {name: [] for name in op_matrix["invariant"]}


@pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="strict CNR is an MKL mode")
def test_strict_mkl_keeps_the_cheap_mode(op_matrix):
    """Requested before MKL's first product, strict CNR is on and only the listed ops are pinned."""
    assert op_matrix["strict"] is True and op_matrix["mode"] == "pin-ops"


def test_the_matrix_still_catches_thread_dependent_kernels(op_matrix):
    """Without thread_invariant the conv weight gradient differs: the test above is not vacuous.

    (If a torch upgrade makes these kernels thread-invariant, drop the pins in determinism.py.)
    """
    assert "dweight" in op_matrix["raw"]["conv5x5"]


def test_late_request_falls_back_to_one_thread():
    """MKL already computed without strict mode: thread_invariant runs the block on one thread."""
    code = (
        "import os, torch\n"
        "os.environ['MKL_CBWR'] = 'COMPATIBLE'\n"
        "torch.ones(64, 64) @ torch.ones(64, 64)\n"
        "from deepcompress import determinism as det\n"
        "torch.set_num_threads(2)\n"
        "det.request_reproducible_blas()\n"
        "print(det.blas_thread_invariant())\n"
        "with det.thread_invariant() as how:\n"
        "    print(how, torch.get_num_threads())\n"
        "print(torch.get_num_threads())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "single", "1", "2"]
