"""Sharded studies (issue 15): 2-process gloo runs equal the single-process results; resume skips finished shards.

The 2-process runs are started inside the tests (``torch.multiprocessing.start_processes``, forked;
a process group on ``tcp://127.0.0.1:<free port>``, gloo). The sharded runs are the one-process functions
with the process group as their executor (:class:`~geometry.runtime.distributed.ShardContext`); the
references are the same functions without one (:func:`geometry.hessian.hvp` averaged by hand,
:func:`geometry.deepfool.deepfool`, :func:`geometry.curvature.curved_subspace`,
:func:`geometry.curvature.average_curvature`, :func:`geometry.study.curvature_study`).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from geometry.curvature import LocalExecutor, average_boundary_hvp, average_curvature, curved_subspace
from geometry.data import load_dataset
from geometry.deepfool import deepfool
from geometry.errors import InvalidInputError
from geometry.hessian import CurvatureEstimator, hvp
from geometry.runtime.distributed import (
    ShardContext,
    cached_shard,
    env_world,
    init_distributed,
    principal_cosines,
    shard,
    shard_bounds,
    sharded_deepfool,
    shutdown,
)
from geometry.subspaces import random_subspace
from geometry.universal import fooling_rate_vs_m

N_POINTS = 23  # odd: the two shards differ in size (12 + 11)
M = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _points():
    return load_dataset("digits", split="train").images[:N_POINTS]


def _directions(d: int) -> torch.Tensor:
    return torch.randn(3, d, generator=torch.Generator().manual_seed(5), dtype=torch.float64)


def _fooling_bases() -> dict:
    return {"a": random_subspace(64, M, random_state=3).basis, "b": random_subspace(64, M, random_state=4).basis}


def _xi(df: dict) -> float:
    """A norm that fools some but not all points: twice the median DeepFool distance."""
    return 2.0 * float(df["r"].flatten(1).norm(dim=1).median())


def _spawn(worker, world: int, *args) -> None:
    """Run ``worker(rank, world, port, *args)`` in ``world`` processes (forked: they inherit the
    imported modules, which saves seconds per process; a process group on a free local port)."""
    mp.start_processes(worker, args=(world, _free_port(), *args), nprocs=world, join=True, start_method="fork")


def _join(rank: int, world: int, port: int) -> ShardContext:
    torch.set_num_threads(1)
    return init_distributed(backend="gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)


# ---------------------------------------------------------------------------------------- workers
def _study_settings():
    from geometry import study

    split = study.PointSplit(n_estimate=N_POINTS, n_heldout=9, n_uap=0, seed=0)
    return study.split_points(load_dataset("digits", split="test"), load_dataset("digits", split="train"), split), (
        study.CurvatureSettings(points=split, m_max=4, n_directions=3, method="smoothed")
    )


def _equality_worker(rank: int, world: int, port: int, out: str) -> None:
    from geometry import study, zoo
    from geometry.runtime.distributed import sharded_fooling_rate_vs_m

    ctx = _join(rank, world, port)
    clf = zoo.load_model("digits-lenet", train=False)
    xs = _points()
    df = ctx.deepfool(clf, xs)  # the executor's DeepFool: sharded_deepfool
    ref_df = torch.load(Path(out) / "reference_df.pt")
    keep = ref_df["keep"]
    z = (xs + ref_df["r"])[keep]
    plain = CurvatureEstimator(tangent=False)
    hv = average_boundary_hvp(
        clf, z, ref_df["label"][keep], ref_df["adv_label"][keep], _directions(clf.d), estimator=plain, executor=ctx
    )
    smoothed = CurvatureEstimator(method="smoothed")
    S = curved_subspace(
        clf, xs, M, estimator=smoothed, random_state=0, deepfool_result=df, solver="eigsh", executor=ctx
    )
    curve = average_curvature(clf, xs, S, [1, 3, M], n_directions=4, random_state=1, deepfool_result=df, executor=ctx)
    fool = sharded_fooling_rate_vs_m(clf, xs, _fooling_bases(), [1, 3, M], ctx, xi=_xi(ref_df), n_samples=5)
    points, settings = _study_settings()
    cs = study.curvature_study(clf, points, settings, executor=ctx)
    if ctx.is_leader:
        torch.save(
            {
                "r": df.r,
                "label": df.label,
                "adv_label": df.adv_label,
                "converged": df.converged,
                "hv": hv,
                "basis": S.basis,
                "curvatures": S.curvatures,
                "per_point": curve.per_point,
                "mean": curve.mean,
                "fooling_rates": fool.rates,
                "fooling_std": fool.std,
                "fooling_n": fool.n_points,
                "study_basis": cs.curved.basis,
                "study_curves": {k: c.per_point for k, c in cs.curves.items()},
                "study_flat": cs.flat.basis,
            },
            Path(out) / "sharded.pt",
        )
    # every rank holds the same S_c and the same average HVP
    torch.save({"basis": S.basis, "hv": hv}, Path(out) / f"rank{rank}.pt")
    shutdown(ctx)


def _resume_worker(rank: int, world: int, port: int, out: str, crash: bool) -> None:
    """Sharded DeepFool with a counter of DeepFool runs per rank; with ``crash``, rank 1 dies
    (os._exit, as if killed) once rank 0's shard is on disk, before the gather."""
    import geometry.runtime.distributed as gd
    from geometry import zoo
    from geometry.cache import cache_dir

    ctx = _join(rank, world, port)
    clf = zoo.load_model("digits-lenet", train=False)
    xs = _points()
    os.environ["BOUNDARY_ATLAS_CACHE"] = str(Path(out) / "cache")  # a fresh shard cache for this test
    real = gd.deepfool
    log = Path(out) / f"log{rank}.txt"

    def counted(*args, **kwargs):
        with (Path(out) / f"calls{rank}.txt").open("a") as fh:
            fh.write("x\n")
        if crash and rank == 1:
            for _ in range(600):  # wait (≤ 60 s) for rank 0's finished shard, then die without a word
                if list(cache_dir("shards").glob("deepfool-0of2-*.safetensors")):
                    os._exit(3)
                __import__("time").sleep(0.1)
            os._exit(4)
        return real(*args, **kwargs)

    def write_log(msg: str) -> None:
        with log.open("a") as fh:
            fh.write(msg + "\n")

    gd.deepfool = counted
    ctx = dataclasses.replace(ctx, log=write_log)
    df = sharded_deepfool(clf, xs, ctx, cache=True)
    if ctx.is_leader:
        torch.save({"r": df.r, "label": df.label, "converged": df.converged}, Path(out) / "resumed.pt")
    shutdown(ctx)


# ---------------------------------------------------------------------------------------- tests
def test_shard_bounds_cover_in_order():
    for n in (0, 1, 5, 23, 100):
        for world in (1, 2, 3, 7):
            parts = [shard(list(range(n)), r, world) for r in range(world)]
            assert [i for p in parts for i in p] == list(range(n))
            sizes = [len(p) for p in parts]
            assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    assert shard(range(10), 1, 3) == range(4, 7)
    assert shard_bounds(23, 1, 2) == (12, 23)
    with pytest.raises(InvalidInputError):
        shard_bounds(5, 2, 2)


def test_runtime_is_an_executor_not_a_second_protocol():
    """runtime imports no private name of the core and nothing of the study layer; the study and core
    functions take the process group as their executor."""
    import ast
    import inspect

    import geometry.runtime.distributed as gd
    from geometry import study
    from geometry.curvature import PointExecutor

    tree = ast.parse(Path(gd.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert "study" not in (node.module or ""), node.module
            assert not [a.name for a in node.names if a.name.startswith("_")], (node.module, node.names)
    for fn in (study.curvature_study, curved_subspace, average_curvature, average_boundary_hvp):
        assert "executor" in inspect.signature(fn).parameters
    ctx: PointExecutor = ShardContext()  # structurally an executor (mypy checks this line)
    assert ctx.world_size == 1 and ctx.is_leader and ctx.bounds(5) == (0, 5)
    parts = ctx.map_shards(4, "p", dict, lambda lo, hi: {"x": torch.arange(lo, hi)})
    assert len(parts) == 1 and torch.equal(parts[0]["x"], torch.arange(4))


def test_single_process_without_torchrun(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert env_world() == (0, 1, 0)
    ctx = init_distributed()
    assert not ctx.distributed and ctx.backend is None
    t = torch.arange(3.0)
    assert ctx.all_reduce_sum(t) is t and ctx.all_gather(7) == [7] and ctx.broadcast("x") == "x"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    from geometry.runtime.distributed import DistributedError

    with pytest.raises(DistributedError):
        env_world()


def test_one_rank_is_bitwise_the_single_process_study(digits_lenet):
    xs = _points()
    df = deepfool(digits_lenet, xs)
    ref = curved_subspace(digits_lenet, xs, M, deepfool_result=df, random_state=0)  # dense: d = 64
    for executor in (ShardContext(), LocalExecutor()):  # a group of one and the one-process executor
        got = curved_subspace(digits_lenet, xs, M, deepfool_result=df, random_state=0, executor=executor)
        assert torch.equal(ref.basis, got.basis) and torch.equal(ref.curvatures, got.curvatures)
        assert torch.equal(ref.spectrum, got.spectrum) and torch.equal(ref.kappas, got.kappas)
        assert ref.n_matvec == got.n_matvec and ref.asymmetry == got.asymmetry
        c_ref = average_curvature(digits_lenet, xs, ref, [1, M], n_directions=3, deepfool_result=df)
        c_got = average_curvature(digits_lenet, xs, got, [1, M], n_directions=3, deepfool_result=df, executor=executor)
        assert torch.equal(c_ref.per_point, c_got.per_point) and torch.equal(c_ref.std, c_got.std)
    with pytest.raises(InvalidInputError, match="random_state must be an int"):
        curved_subspace(
            digits_lenet, xs, M, deepfool_result=df, random_state=torch.Generator(), executor=ShardContext()
        )


def test_the_study_on_one_rank_is_bitwise_the_one_process_study(digits_lenet, tmp_path, monkeypatch):
    """One Fig. 7a protocol: ``curvature_study`` with a one-rank executor (and its shard cache) equals
    the plain call, and a rerun reads every part back from the shard cache."""
    from geometry import study

    points, settings = _study_settings()
    monkeypatch.setenv("BOUNDARY_ATLAS_CACHE", str(tmp_path / "one"))
    ref = study.curvature_study(digits_lenet, points, settings)
    monkeypatch.setenv("BOUNDARY_ATLAS_CACHE", str(tmp_path / "sharded"))  # nothing shared with the plain run
    lines: list[str] = []
    ctx = ShardContext(log=lines.append, cache=True)
    got = study.curvature_study(digits_lenet, points, settings, executor=ctx)
    for name in ("curved", "flat", "random"):
        a, b = getattr(ref, name), getattr(got, name)
        for field in ("basis", "spectrum", "curvatures", "kappas"):  # NaN (random, S_f) compared as 0
            assert torch.equal(getattr(a, field).nan_to_num(), getattr(b, field).nan_to_num()), (name, field)
    for k, c in ref.curves.items():
        assert torch.equal(c.per_point, got.curves[k].per_point) and torch.equal(c.kappa_mean, got.curves[k].kappa_mean)
    assert (got.method, got.h, got.beta, got.h_text) == (ref.method, ref.h, ref.beta, ref.h_text)
    assert sum("computed" in line for line in lines) == 5  # 2 DeepFool shards + 3 curves
    lines.clear()
    again = study.curvature_study(digits_lenet, points, settings, executor=ctx)
    assert sum("cached" in line for line in lines) == 5 and not any("computed" in line for line in lines)
    assert torch.equal(again.curves["S_c"].per_point, ref.curves["S_c"].per_point)


def test_two_gloo_processes_equal_the_single_process_run(digits_lenet, tmp_path):
    clf = digits_lenet
    xs = _points()
    df = deepfool(clf, xs)
    keep = df.converged & (df.label != df.adv_label)
    assert int(keep.sum()) >= 15
    torch.save({"r": df.r, "label": df.label, "adv_label": df.adv_label, "keep": keep}, tmp_path / "reference_df.pt")
    _spawn(_equality_worker, 2, str(tmp_path))
    got = torch.load(tmp_path / "sharded.pt")

    # DeepFool: each shard's points, gathered back in their original order
    assert torch.equal(got["label"], df.label) and torch.equal(got["adv_label"], df.adv_label)
    assert torch.equal(got["converged"], df.converged)
    torch.testing.assert_close(got["r"], df.r, rtol=1e-4, atol=1e-6)

    # average HVP: the all-reduced shares equal the mean of the per-point HVPs (public hvp)
    z = (xs + df.r)[keep]
    V = _directions(clf.d)
    per_point = hvp(clf, z, df.label[keep], df.adv_label[keep], V.float()[None].expand(len(z), -1, -1)).hv
    ref_hv = per_point.double().mean(0)
    scale = float(ref_hv.abs().max())
    assert scale > 0
    torch.testing.assert_close(got["hv"], ref_hv, rtol=1e-4, atol=1e-5 * scale)

    # S_c by Lanczos on both sides (smoothed: a symmetric operator, so S_c is well defined; the
    # finite-difference operator is not, docs/benchmarks.md): the same subspace (principal cosines
    # ≈ 1) and curvatures; every rank holds the same basis
    ref = curved_subspace(clf, xs, M, deepfool_result=df, random_state=0, solver="eigsh", method="smoothed")
    assert principal_cosines(got["basis"], ref.basis).min() >= 0.999
    torch.testing.assert_close(got["curvatures"], ref.curvatures, rtol=1e-3, atol=1e-4)
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert torch.equal(r0["basis"], r1["basis"]) and torch.equal(r0["hv"], r1["hv"])

    # K_S versus m on the sharded S_c: per-point values gathered in order, same reduction
    c_ref = average_curvature(clf, xs, ref, [1, 3, M], n_directions=4, random_state=1, deepfool_result=df)
    torch.testing.assert_close(got["per_point"], c_ref.per_point, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(got["mean"], c_ref.mean, rtol=1e-3, atol=1e-3)

    # fooling rate versus m: counts of fooled points all-reduced, so the rates are exactly equal
    ref_df = {"r": df.r}
    f_ref = fooling_rate_vs_m(clf, xs, _fooling_bases(), [1, 3, M], xi=_xi(ref_df), n_samples=5)
    assert got["fooling_n"] == N_POINTS and list(got["fooling_rates"]) == list(f_ref.names)
    for k in f_ref.names:
        assert torch.equal(got["fooling_rates"][k], f_ref.rates[k]) and torch.equal(got["fooling_std"][k], f_ref.std[k])
    rates = torch.cat([f_ref.rates[k].flatten() for k in f_ref.names])
    assert float(rates.max()) > 0 and float(rates.min()) < 1  # some fooled, some not: a real comparison

    # the whole Fig. 7a study (one protocol) with the process group as its executor
    from geometry import study

    points, settings = _study_settings()
    one = study.curvature_study(clf, points, settings)
    assert principal_cosines(got["study_basis"], one.curved.basis).min() >= 0.999
    torch.testing.assert_close(got["study_flat"], one.flat.basis, rtol=1e-4, atol=1e-6)
    for k, c in one.curves.items():
        torch.testing.assert_close(got["study_curves"][k], c.per_point, rtol=1e-3, atol=1e-3)


def test_killed_sharded_run_resumes_without_recomputing_finished_shards(digits_lenet, tmp_path):
    with pytest.raises(Exception, match="exit"):  # rank 1 is killed: the run fails
        _spawn(_resume_worker, 2, str(tmp_path), True)
    shards = sorted(p.name.split("-")[1] for p in (tmp_path / "cache" / "shards").glob("deepfool-*"))
    assert shards == ["0of2"], shards  # only rank 0 finished
    calls0 = (tmp_path / "calls0.txt").read_text().count("x")
    assert calls0 == 1
    _spawn(_resume_worker, 2, str(tmp_path), False)
    # the restart ran DeepFool on rank 1's shard only; rank 0 read its shard back
    assert (tmp_path / "calls0.txt").read_text().count("x") == calls0
    assert (tmp_path / "calls1.txt").read_text().count("x") == 2  # the killed try and the restart
    assert "shard 1/2: cached (deepfool)" in (tmp_path / "log0.txt").read_text()
    assert "shard 2/2: computed (deepfool)" in (tmp_path / "log1.txt").read_text()
    got = torch.load(tmp_path / "resumed.pt")
    ref = deepfool(digits_lenet, _points())
    assert torch.equal(got["label"], ref.label) and torch.equal(got["converged"], ref.converged)
    torch.testing.assert_close(got["r"], ref.r, rtol=1e-4, atol=1e-6)


def test_cached_shard_recomputes_a_damaged_part(tmp_path, monkeypatch):
    monkeypatch.setenv("BOUNDARY_ATLAS_CACHE", str(tmp_path))
    ctx = ShardContext()
    calls = []

    def compute():
        calls.append(1)
        return {"a": torch.arange(4.0)}

    key = {"study": "t"}
    assert torch.equal(cached_shard(key, "p", ctx, compute)["a"], torch.arange(4.0))
    assert torch.equal(cached_shard(key, "p", ctx, compute)["a"], torch.arange(4.0)) and len(calls) == 1
    (path,) = (tmp_path / "shards").glob("p-*")
    path.write_bytes(path.read_bytes()[:-3] + b"xyz")
    with pytest.warns(UserWarning, match="damaged"):
        assert torch.equal(cached_shard(key, "p", ctx, compute)["a"], torch.arange(4.0))
    assert len(calls) == 2


def test_study_command_single_process_then_resumed(digits_lenet, tmp_path, capsys):
    from geometry.cli import main

    args = ["study", "deepfool", "--zoo", "digits-lenet", "--n-heldout", "12", "--out", str(tmp_path / "a")]
    assert main(args) == 0
    first = capsys.readouterr()
    assert "computed (deepfool)" in first.err
    assert main([*args[:-1], str(tmp_path / "b")]) == 0
    second = capsys.readouterr()
    assert "shard 1/1: cached (deepfool)" in second.err
    for name in ("deepfool.csv", "deepfool.json"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    rows = (tmp_path / "a" / "deepfool.csv").read_text().splitlines()
    assert rows[0].startswith("index,label,adv_label,norm,converged") and len(rows) == 13


def test_study_command_under_torchrun_writes_the_one_process_files(digits_lenet, tmp_path):
    """The real launcher: ``torchrun --nproc_per_node 2 -m geometry.cli study deepfool`` (gloo)."""
    import subprocess

    common = ["study", "deepfool", "--zoo", "digits-lenet", "--n-heldout", "12", "--no-resume", "-q"]
    from geometry.cli import main

    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           "-m", "geometry.cli", *common, "--out", str(tmp_path / "two")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).parent.parent)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "processes: 2" in res.stdout
    # the same files; the same labels and convergence, norms equal up to float rounding (batch sizes differ)
    import csv
    import json

    rows = [list(csv.reader((tmp_path / d / "deepfool.csv").open())) for d in ("one", "two")]
    assert rows[0][0] == rows[1][0] and len(rows[0]) == len(rows[1]) == 13
    for a, b in zip(rows[0][1:], rows[1][1:], strict=True):
        assert [a[i] for i in (0, 1, 2, 4, 5)] == [b[i] for i in (0, 1, 2, 4, 5)]
        assert float(a[3]) == pytest.approx(float(b[3]), rel=1e-5)
    j1, j2 = (json.loads((tmp_path / d / "deepfool.json").read_text()) for d in ("one", "two"))
    assert j1.keys() == j2.keys() and j1["n_converged"] == j2["n_converged"]
    assert j1["rho_adv"] == pytest.approx(j2["rho_adv"], rel=1e-5)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
