"""Benchmark (issue 11): training cost of each regime per epoch, and Lanczos vs a dense input Hessian.

1. **Regime cost.** One epoch of each zoo regime (``standard``, ``pgd-at``, ``fgsm-at``, ``cure``)
   on the same data, model and batches, timed in the same run; reported as the ratio to
   ``standard``. ``--dataset digits`` (default; 1397 training images, one thread as the zoo trains
   them) or ``mnist`` (the first ``--n-train`` MNIST training images, two threads).
2. **Curvature profile, Lanczos vs dense.** On a LeNet for 28×28 inputs (d = 784; random weights
   by default, or ``--model mnist-lenet`` if trained): the top-10 eigenvalues of the input Hessian
   of the loss at ``--points`` points by :func:`geometry.profile.hessian_top_eigenvalues` (eigsh on
   double-backprop HVPs) and by ``torch.autograd.functional.hessian`` + ``eigvalsh``: time ratio
   and the largest relative difference of the top-10 eigenvalues.

Speed claims are ratios within one run (DESIGN §5), printed as a markdown table.

    .venv/bin/python -m benchmarks.robust
    .venv/bin/python -m benchmarks.robust --dataset mnist --n-train 2048
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from geometry.architectures import build_architecture  # noqa: E402
from geometry.data import load_dataset  # noqa: E402
from geometry.profile import hessian_top_eigenvalues  # noqa: E402
from geometry.regimes import RegimeContext, check_regime  # noqa: E402
from geometry.zoo import REGIME_FAMILIES, ZOO  # noqa: E402


def regime_costs(dataset: str, n_train: int, batch_size: int = 64) -> list[tuple[str, float]]:
    data = load_dataset(dataset, split="train")
    x, y = data.images[:n_train], data.labels[:n_train]
    family = REGIME_FAMILIES[f"{dataset}-lenet"]
    mean = x.mean(dim=(0, 2, 3)).reshape(1, -1, 1, 1)
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3).reshape(1, -1, 1, 1)
    out = []
    for regime, name in family.items():
        entry = ZOO[name]
        model = build_architecture("lenet", input_shape=x.shape[1:], num_classes=len(data.class_names))
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        step = check_regime(entry.regime, entry.regime_params)
        gen = torch.Generator().manual_seed(0)

        def network(t: torch.Tensor, model=model) -> torch.Tensor:
            return model((t - mean) / std)

        model.train()
        t0 = time.perf_counter()
        for i in range(0, len(x), batch_size):
            ctx = RegimeContext(network, model, (0.0, 1.0), entry.regime_params, 0, 1, gen)
            loss = step(ctx, x[i : i + batch_size], y[i : i + batch_size])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        out.append((f"{regime} ({name}: {entry.regime_params or 'CE'})", time.perf_counter() - t0))
    return out


def lanczos_vs_dense(points: int, model_name: str | None) -> dict:
    if model_name:
        from geometry.zoo import load_model

        net = load_model(model_name, train=False).network
    else:
        net = build_architecture("lenet", input_shape=(1, 28, 28), num_classes=10, random_state=0)
    net.eval()
    g = torch.Generator().manual_seed(0)
    xs = torch.rand(points, 1, 28, 28, generator=g)
    ys = torch.randint(0, 10, (points,), generator=g)
    t_l = t_d = 0.0
    worst = 0.0
    for i in range(points):
        x, y = xs[i : i + 1].double(), ys[i : i + 1]
        netd = net.double()

        def loss(t, y=y, netd=netd):
            return F.cross_entropy(netd(t), y.expand(t.shape[0]), reduction="none")

        t0 = time.perf_counter()
        vals, _ = hessian_top_eigenvalues(loss, x, k=10, tol=1e-10)
        t_l += time.perf_counter() - t0
        t0 = time.perf_counter()
        H = torch.autograd.functional.hessian(
            lambda v, y=y, netd=netd: F.cross_entropy(netd(v.reshape(1, 1, 28, 28)), y), x.flatten()
        )
        ev = torch.linalg.eigvalsh(0.5 * (H + H.T)).numpy()
        t_d += time.perf_counter() - t0
        top = ev[np.argsort(-np.abs(ev))][:10]
        rel = np.abs(vals - top) / np.maximum(np.abs(top), 1e-300)
        worst = max(worst, float(rel[np.abs(top) > 1e-8 * np.abs(top[0])].max()))
    net.float()
    return {"lanczos_s": t_l, "dense_s": t_d, "ratio": t_d / t_l, "worst_rel": worst, "points": points}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="digits", choices=["digits", "mnist"])
    ap.add_argument("--n-train", type=int, default=100_000)
    ap.add_argument("--points", type=int, default=3)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    if args.dataset == "digits":
        torch.set_num_threads(1)
    costs = regime_costs(args.dataset, args.n_train)
    base = costs[0][1]
    print(f"## Regime cost per epoch ({args.dataset}, {torch.get_num_threads()} thread(s))\n")
    print("| regime | seconds / epoch | ratio to standard |\n|---|---:|---:|")
    for name, s in costs:
        print(f"| {name} | {s:.2f} | {s / base:.1f}× |")
    torch.set_num_threads(2)
    r = lanczos_vs_dense(args.points, args.model)
    print(f"\n## Curvature profile at d = 784 ({r['points']} points, {args.model or 'LeNet, random weights'})\n")
    print("| method | seconds | ratio |\n|---|---:|---:|")
    print(f"| Lanczos (eigsh, top 10, double-backprop HVPs) | {r['lanczos_s']:.2f} | 1.0× |")
    print(f"| dense Hessian (autograd.functional.hessian + eigvalsh) | {r['dense_s']:.2f} | {r['ratio']:.1f}× |")
    print(f"\nlargest relative difference of the top-10 eigenvalues: {r['worst_rel']:.2e}")


if __name__ == "__main__":
    main()
