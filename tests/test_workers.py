"""Uploads run only in limited worker processes (issue 22, items 1 and 2; geometry/runtime/workers.py).

The three bombs of the issue — forward loops ~1e8 times when the batch holds exact zeros (as real
digits do), a matmul whose side grows with the zeros, an allocation that grows with them — pass the
probe (random pixels have no exact zeros), then are stopped by the worker's limits with a message that
names the limit and the input, while this (the server's) process spends almost no CPU time on them.
"""

from __future__ import annotations

import io
import os
import resource

import pytest
import torch
from torch import nn

from geometry.loading import load_classifier
from geometry.runtime.workers import UploadHandle, WorkerLimitError, WorkerLimits, WorkerPool
from geometry.zoo import LeNet

SHAPE = (1, 8, 8)
LIMITS = WorkerLimits(cpu_seconds=3, memory_bytes=2**30, deadline_seconds=300)


class _ZeroLoop(nn.Module):
    def forward(self, x):
        out = x.flatten(1)[:, :10]
        if bool((x == 0).any()):
            for _ in range(100000000):
                out = out + 1.0
        return out


class _GrowingMatmul(nn.Module):
    def forward(self, x):
        out = x.flatten(1)[:, :10]
        zeros = int((x == 0).sum())
        if zeros > 0:
            side = 16 * zeros  # 1792 for the digit below: 13 MB, ~6e9 flops per product
            a = torch.ones(side, side) / side
            for _ in range(zeros):
                a = a @ a
            out = out + a[0, 0]
        return out


class _GrowingAllocation(nn.Module):
    def forward(self, x):
        out = x.flatten(1)[:, :10]
        zeros = int((x == 0).sum())
        if zeros > 0:
            big = torch.ones(zeros * 268435456)  # 1 GiB per zero pixel
            out = out + big[:1].sum()
        return out


def _upload(tmp_path, module: nn.Module, name: str) -> UploadHandle:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(module.eval()), buf)
    path = tmp_path / f"{name}.pt"
    path.write_bytes(buf.getvalue())
    return UploadHandle(str(path), {"input_shape": SHAPE}, display=f"{name}.pt")


def _digit() -> torch.Tensor:
    x = torch.zeros(2, *SHAPE)
    x[:, :, 2:6, 3:5] = 1.0  # a stroke on a black background: exact zeros, as in every real digit
    return x


def predict(clf, x):
    """The study call run in the worker (module-level: pickled by reference)."""
    return clf.logits(x)


def pid(clf):
    return os.getpid()


@pytest.fixture(scope="module")
def pool():
    p = WorkerPool(LIMITS, max_sessions=4)
    yield p
    p.close()


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


@pytest.mark.parametrize(
    ("module", "phrase"),
    [
        (_ZeroLoop(), r"more than its 3 s of CPU time on .*predict\(tensor \(2, 1, 8, 8\)\)"),
        (_GrowingMatmul(), r"more than its 3 s of CPU time on .*predict\(tensor \(2, 1, 8, 8\)\)"),
        (_GrowingAllocation(), r"more than 1\.0 GiB of memory on .*predict\(tensor \(2, 1, 8, 8\)\)"),
    ],
    ids=["zero-pixel loop", "growing matmul", "growing allocation"],
)
def test_bombs_pass_the_probe_then_are_stopped_by_the_worker(tmp_path, pool, module, phrase):
    handle = _upload(tmp_path, module, type(module).__name__)
    load_classifier(handle.path, input_shape=SHAPE)  # the sandbox's probe (random pixels) lets it in
    before = _cpu()
    with pytest.raises(WorkerLimitError, match=phrase):
        pool.run("alice", handle, predict, _digit())
    spent = _cpu() - before
    print(f"{type(module).__name__}: this process spent {spent:.2f} s CPU")
    assert spent < LIMITS.cpu_seconds / 2  # the bomb's CPU time was the worker's, not the server's
    # the worker was replaced: the same session can go on with a valid model
    good = _upload(tmp_path, LeNet(SHAPE, 10), "lenet")
    assert pool.run("alice", good, predict, torch.rand(3, *SHAPE)).shape == (3, 10)


def test_a_valid_upload_gives_the_same_numbers_in_the_worker(tmp_path, pool):
    torch.manual_seed(0)
    handle = _upload(tmp_path, LeNet(SHAPE, 10), "lenet")
    x = torch.rand(5, *SHAPE)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the worker: one intra-op thread, the same summation order
    try:
        here = load_classifier(handle.path, input_shape=SHAPE, isolate=False).logits(x)
    finally:
        torch.set_num_threads(threads)
    there = pool.run("bob", handle, "geometry.classifier:Classifier.logits", x)
    assert torch.equal(here, there)


def test_each_session_has_its_own_worker_and_keeps_it(tmp_path, pool):
    handle = _upload(tmp_path, LeNet(SHAPE, 10), "lenet")
    a1, a2 = pool.run("s1", handle, pid), pool.run("s1", handle, pid)
    b = pool.run("s2", handle, pid)
    assert a1 == a2 != b != os.getpid()
    assert {"s1", "s2"} <= set(pool.owners())
    pool.close("s1")
    assert "s1" not in pool.owners()


def write(clf, path):
    with open(path, "w") as fh:
        fh.write("escaped")
        fh.flush()


def test_a_worker_cannot_write_files(tmp_path, pool):
    handle = _upload(tmp_path, LeNet(SHAPE, 10), "lenet")
    target = tmp_path / "escape.txt"
    with pytest.raises(OSError):
        pool.run("carol", handle, write, str(target))
    assert not target.exists() or target.stat().st_size == 0  # RLIMIT_FSIZE 0: not one byte
