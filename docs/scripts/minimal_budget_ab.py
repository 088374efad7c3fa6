"""Paired A/B at one pass budget: the budgeted minimal ensemble (DDN + a refinement on the boundary,
``minimal_perturbation(..., budget=B)``) against DDN alone with the whole budget, on the same points and
scored against one best-known distance per point (the 1000-step DDN + FMN reference, the four-attack
ensemble, and both contenders).

Usage (from the repository root; MNIST in ../shared/data, the zoo's networks cached or trained on first use):

    python docs/scripts/minimal_budget_ab.py --models mnist-lenet mnist-lenet-pgd --n 200 --budget 100 \\
        --out docs/results/robust-eval-mnist-budget-ab.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from geometry import zoo
from geometry.data import load_dataset
from geometry.minimal import minimal_perturbation, optimality


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["mnist-lenet", "mnist-lenet-pgd"])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--budget", type=int, default=100, help="forward+backward passes per point")
    ap.add_argument("--reference-steps", type=int, default=1000)
    ap.add_argument("--ddn-init-norm", type=float, default=1.0)
    ap.add_argument("--fmn-max-stepsize", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = {}
    for name in args.models:
        clf = zoo.load_model(name)
        x = load_dataset(zoo.ZOO[name].dataset, split="test").images[: args.n]
        init, step = args.ddn_init_norm, args.fmn_max_stepsize
        full = minimal_perturbation(clf, x, fmn_max_stepsize=step, ddn_init_norm=init)
        ref = minimal_perturbation(
            clf,
            x,
            attacks=("ddn", "fmn"),
            ddn_steps=args.reference_steps,
            fmn_steps=args.reference_steps,
            fmn_max_stepsize=step,
            ddn_init_norm=init,
        )
        budgeted = minimal_perturbation(clf, x, budget=args.budget, ddn_init_norm=init)
        # DDN alone within the same budget: 2S + 1 passes and one forward pass for the labels
        steps = (args.budget - 2) // 2
        alone = minimal_perturbation(clf, x, attacks=("ddn",), ddn_steps=steps, ddn_init_norm=init)
        best = torch.minimum(
            torch.minimum(ref.distance, full.distance), torch.minimum(budgeted.distance, alone.distance)
        )
        rows[name] = {
            "budgeted": float(optimality(budgeted.distance[None], best)[0]),
            "budgeted_total_passes": budgeted.total_passes,
            f"ddn_alone_{steps}_steps": float(optimality(alone.distance[None], best)[0]),
            "ddn_alone_total_passes": alone.total_passes,
            "four_attack_ensemble": float(optimality(full.distance[None], best)[0]),
            "four_attack_total_passes": full.total_passes,
        }
        print(name, json.dumps(rows[name]), flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        settings = vars(args) | {"out": str(args.out)}
        args.out.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
