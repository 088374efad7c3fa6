"""Issue 21 item 4's soundness check at scale: no certificate of the ladder may exceed a successful attack's radius.

Usage (from the repository root):

    python docs/scripts/certificate_soundness.py --models mnist-mlp --n 1000          # the issue's protocol
    python docs/scripts/certificate_soundness.py --models digits-mlp digits-lenet --n 0  # every digits test point

For each network, on the first ``--n`` test points (``0``: all of them) :func:`geometry.study.certify.certify_study`
computes every rung of the Certified page's ladder — the global Lipschitz certificate ``M/(√2 L)``, LMT's pair
refinement and CROWN (``--norm`` ball, on every point, bisection to ``--tol``) — and the best attack radius (the
smallest successful of the Certified page's attacks: box DeepFool, FMN and DDN since DDN joined them; the
MNIST ladder and the digits runs in docs/certification.md were made before, with box DeepFool and FMN). The script counts, per rung, the points where the radius exceeds the attack's
(each one a bug: :func:`geometry.masking.certificate_flags` raises the same flag on the pages), prints a Markdown
table with the median certificate / attack ratio per rung (the tightness), and exits with status 1 if any
certificate broke the inequality. MNIST networks train on first use (about a minute each on a free CPU);
CROWN costs seconds per point on a LeNet, so 1,000 MNIST points are a job for a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from geometry import zoo
from geometry.data import load_dataset
from geometry.masking import certificate_flags
from geometry.study.certify import CertifySettings, certify_study


def check(name: str, n: int, norm: str, tol: float) -> dict:
    """The ladder of ``name`` on its first ``n`` test points (0: all): per rung the points computed, the
    violations (certificate > attack radius) and the median certificate / attack ratio."""
    clf = zoo.load_model(name)
    test = load_dataset(zoo.ZOO[name].dataset, split="test", limit=n or None)
    points = len(test.images)
    settings = CertifySettings(n_points=points, crown_points=points, crown_tol=tol, crown_norm=norm)
    start = time.time()
    study = certify_study(clf, test.images, test.labels.numpy(), settings)
    seconds = time.time() - start
    distance = study.distance
    ok = np.isfinite(distance) & (distance > 0)
    rungs = {}
    for rung, radius in study.ladder().items():
        done = ok & np.isfinite(radius)
        rungs[rung] = {
            "computed": int(np.isfinite(radius).sum()),
            "violations": int(np.sum(done & (radius > distance))),
            "median_over_attack": float(np.median(radius[done] / distance[done])) if done.any() else None,
        }
    flags = certificate_flags(study.ladder(), distance)
    return {
        "network": name,
        "points": points,
        "attacked": int(ok.sum()),
        "rungs": rungs,
        "flag": flags[0].message if flags else "",
        "crown_note": study.crown_note,
        "seconds": round(seconds, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mnist-mlp"])
    parser.add_argument("--n", type=int, default=1000, help="first test points (0: all)")
    parser.add_argument("--norm", default="l2", choices=["l2", "linf"])
    parser.add_argument("--tol", type=float, default=0.05, help="CROWN bisection's relative tolerance")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    results = [check(name, args.n, args.norm, args.tol) for name in args.models]
    print(
        "| network | points (attack ok) | certificate | computed | certificate > attack | median certificate / attack |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        for rung, v in r["rungs"].items():
            ratio = "—" if v["median_over_attack"] is None else f"{v['median_over_attack']:.3g}"
            print(
                f"| {r['network']} | {r['points']} ({r['attacked']}) | {rung} | {v['computed']} | {v['violations']} "
                f"| {ratio} |"
            )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    broken = [r["network"] for r in results if r["flag"]]
    for r in results:
        print(f"{r['network']}: {r['seconds']} s; {r['flag'] or 'no certificate exceeds an attack radius'}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
