"""The sandbox's limits measure the model, not the machine (issue 22, item 3).

A valid upload is accepted while the machine is overloaded (an artificial load this test makes and
stops: 2 × cores busy processes, each ending by itself); a looping model is still refused by its CPU
budget, and the message says CPU time; a wall-clock backstop names the server's load, not the model.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from torch import nn

from geometry.errors import ModelLoadError
from geometry.loading import load_classifier
from geometry.loading.sandbox import DEFAULT_LIMITS, SandboxLimits
from geometry.zoo import LeNet

SHAPE = (1, 8, 8)
_BUSY = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


@contextmanager
def busy_machine(per_core: int = 2, seconds: float = 240.0) -> Iterator[int]:
    """``per_core`` × cores processes that spin for at most ``seconds`` (each stops by itself, and
    all are killed on leaving). Yields how many were started."""
    n = per_core * (os.cpu_count() or 1)
    procs = [
        subprocess.Popen([sys.executable, "-c", _BUSY.format(seconds=seconds)], stdin=subprocess.DEVNULL)
        for _ in range(n)
    ]
    try:
        yield n
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def _script_bytes(module: nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(module.eval()), buf)
    return buf.getvalue()


class _Loops(nn.Module):
    def forward(self, x):
        out = x.flatten(1)
        for _ in range(1000000000000):
            out = out + 1.0
        return out


def test_defaults_budget_cpu_and_keep_the_wall_clock_a_generous_backstop():
    assert DEFAULT_LIMITS.cpu_seconds == 30
    assert DEFAULT_LIMITS.wall_seconds >= 5 * DEFAULT_LIMITS.cpu_seconds  # a tenth of a core still passes
    assert DEFAULT_LIMITS.start_seconds >= 120
    assert "s CPU" in DEFAULT_LIMITS.describe() and "backstop" in DEFAULT_LIMITS.describe()


def test_a_valid_upload_is_accepted_on_an_overloaded_machine():
    """Torch's import under 2 × cores spinning processes takes many times its quiet wall time; it is
    outside the model's budget, and the LeNet's load + probe needs a small fraction of its 30 s CPU."""
    data = _script_bytes(LeNet(SHAPE, 10))
    with busy_machine(per_core=2) as n:
        clf = load_classifier(data, input_shape=SHAPE)
    iso = clf.info["isolation"]
    print(f"{n} busy processes: child {iso['child_seconds']} s wall, {iso['child_cpu_seconds']} s CPU after ready")
    assert clf.class_names == tuple(str(i) for i in range(10))
    assert iso["child_cpu_seconds"] < DEFAULT_LIMITS.cpu_seconds / 3  # the model's share, the start excluded


def test_a_looping_model_is_refused_by_cpu_time_even_under_load():
    limits = SandboxLimits(cpu_seconds=3, wall_seconds=600, memory_bytes=2**30)
    with busy_machine(per_core=1), pytest.raises(ModelLoadError, match=r"more than 3 s of CPU time") as err:
        load_classifier(_script_bytes(_Loops()), input_shape=SHAPE, limits=limits)
    assert "does forward loop" in str(err.value) and "try again" not in str(err.value)


def test_the_wall_clock_backstop_blames_the_load_not_the_model():
    """A start budget no interpreter can meet: the message says the server is busy and nothing about the model."""
    limits = SandboxLimits(start_seconds=0.01)
    with pytest.raises(ModelLoadError, match=r"server is busy") as err:
        load_classifier(_script_bytes(LeNet(SHAPE, 10)), input_shape=SHAPE, limits=limits)
    assert "loop" not in str(err.value)


def test_the_wall_clock_backstop_after_ready_reports_the_cpu_used():
    limits = SandboxLimits(wall_seconds=2, cpu_seconds=600, memory_bytes=2**30)
    with pytest.raises(ModelLoadError, match=r"did not finish within 2 s of wall-clock time .* CPU budget") as err:
        load_classifier(_script_bytes(_Loops()), input_shape=SHAPE, limits=limits)
    assert "backstop" in str(err.value)
