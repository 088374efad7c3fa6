"""Issue 21 items 4-5 in the plane: every certificate and every attack radius against the exact distance to
the boundary, on a grid of points for each 2-D toy network (docs/certification.md, "The ladder in the plane").

Usage (from the repository root; about a minute per dataset on 2 busy CPU cores):

    python docs/scripts/ladder_2d.py --grid 10

The exact ℓ2 / ℓ∞ distance is :func:`geometry.regions2d.exact_distance` (linear regions); the certificates are
:func:`geometry.certify.certify` (global Lipschitz, LMT pair) and :func:`geometry.crown.crown_radius` (ℓ2 and
ℓ∞); the attacks :func:`geometry.deepfool.deepfool` (overshoot 0.02) and
:func:`geometry.minimal.minimal_perturbation`. A row prints the median (min–max) of radius / exact over the
grid and the number of points where a certificate exceeds the exact distance or an attack falls below it.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from geometry.certify import certify
from geometry.crown import crown_radius
from geometry.deepfool import deepfool
from geometry.minimal import minimal_perturbation
from geometry.regions2d import exact_distance
from geometry.toy2d import as_points, toy_classifier, toy_data


def _cell(ratio: np.ndarray) -> str:
    return f"{np.median(ratio):.3f} ({ratio.min():.3f}–{ratio.max():.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=10, help="points per side of the grid over the data's box")
    ap.add_argument("--datasets", nargs="+", default=["moons", "circles", "xor", "spirals"])
    ap.add_argument("--models", nargs="+", default=["mlp-relu", "linear"])
    a = ap.parse_args()
    print(
        "| data | model | points | global Lipschitz | LMT pair | CROWN ℓ2 | CROWN ℓ∞ (÷ exact ℓ∞) | DeepFool ‖r‖ "
        "| minimal ensemble | cert. > exact | attack < exact |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in a.datasets:
        data = toy_data(name, n_points=200, noise=0.08)
        lo, hi = data.x.min(0).values.numpy() - 0.5, data.x.max(0).values.numpy() + 0.5
        box = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
        g1, g2 = np.meshgrid(np.linspace(box[0], box[1], a.grid), np.linspace(box[2], box[3], a.grid))
        pts = np.stack([g1.ravel(), g2.ravel()], 1)
        for model in a.models:
            clf = toy_classifier(model, data)
            xs = as_points(torch.from_numpy(pts))
            label = clf.predict(xs)
            ex2 = exact_distance(clf, pts, norm="l2", box=box)
            exi = exact_distance(clf, pts, norm="linf", box=box)
            keep = ex2.exact & exi.exact & (ex2.distance > 0)
            e2, ei = ex2.distance[keep], exi.distance[keep]
            cert = certify(clf, xs)
            assert cert.radius_pair is not None
            c2 = crown_radius(clf, xs, label, norm="l2").numpy()
            ci = crown_radius(clf, xs, label, norm="linf").numpy()
            wide = dataclasses.replace(clf, bounds=(float(pts.min()) - 10, float(pts.max()) + 10))
            df = deepfool(wide, xs, max_iter=50)
            dfn = np.where(df.converged.numpy(), df.norms.numpy(), np.inf)
            mp = minimal_perturbation(wide, xs, fmn_max_stepsize=0.1).distance.numpy()
            certs = [cert.radius_plain[keep] / e2, cert.radius_pair[keep] / e2, c2[keep] / e2, ci[keep] / ei]
            attacks = [dfn[keep] / e2, mp[keep] / e2]
            over = sum(int((r > 1 + 1e-9).sum()) for r in certs)
            under = sum(int((r < 1 - 1e-9).sum()) for r in attacks)
            cells = " | ".join(_cell(r) for r in certs + attacks)
            print(f"| {name} | {model} | {int(keep.sum())} | {cells} | {over} | {under} |", flush=True)


if __name__ == "__main__":
    main()
