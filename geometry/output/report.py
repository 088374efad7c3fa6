"""Writing a report folder: JSON and CSV numbers, interactive HTML figures, one readable index.html.

:func:`write_report` writes a :class:`geometry.study.report.Report` (computed by
:func:`geometry.study.report.build_report`, for ``boundary-atlas report`` and the app's "Prepare
report" alike); no geometry is computed in this module. JSON is strict (non-finite floats become ``null``), CSV cells
of non-finite floats are empty, and every HTML figure refers to one ``plotly.min.js`` written next
to it, so a folder opens offline.
"""

from __future__ import annotations

import csv
import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..study.noise import median_norm
from ..study.readings import curvature_reading, fooling_reading, section_reading

if TYPE_CHECKING:  # plotly is imported where the report is written
    import plotly.graph_objects as go

    from ..study.report import Report

__all__ = [
    "write_report",
    "report_facts",
    "report_summary",
    "plain",
    "write_json",
    "write_csv",
    "write_html",
    "write_index",
    "fmt",
    "pct",
    "FILE_DESCRIPTIONS",
    "ReportPanel",
]


def plain(obj: Any) -> Any:
    """JSON-safe copy: tensors / arrays → lists, non-finite floats → None (strict JSON)."""
    try:
        import numpy as np
        import torch
    except Exception:  # pragma: no cover
        np = torch = None  # type: ignore[assignment]
    if torch is not None and isinstance(obj, torch.Tensor):
        return plain(obj.detach().cpu().tolist())
    if np is not None and isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if np is not None and isinstance(obj, np.generic):
        return plain(obj.item())
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(plain(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for row in rows:
            w.writerow(["" if (isinstance(v, float) and not math.isfinite(v)) else v for v in row])


def write_html(fig: Any, path: Path) -> None:
    # one plotly.min.js per folder, referenced by every figure: works offline, written once
    fig.write_html(str(path), include_plotlyjs="directory", full_html=True)


def fmt(x: float | None, spec: str = ".4g") -> str:
    """A number for a summary line ("n/a" when missing or not finite)."""
    return "n/a" if x is None or not math.isfinite(x) else format(x, spec)


def pct(x: float | None) -> str:
    """A share as a percentage ("n/a" when missing or not finite)."""
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.1f} %"


FILE_DESCRIPTIONS = {
    "model_card.json": "model card: format, architecture, input shape, classes, parameters, accuracy, normalisation",
    "deepfool.json": "DeepFool statistics: ρ_adv, mean / median ‖r‖₂, converged share",
    "deepfool.csv": "DeepFool per point: index, label, adv_label, norm, converged, true_label",
    "deepfool_norms.html": "histogram of ‖r(x)‖₂",
    "sections.json": "the cross-sections drawn (points, labels, ‖r‖, curvature along v)",
    "subspaces.json": "S_c (Ritz values, re-evaluated curvatures, asymmetry, method, h, n), S_f, principal angles",
    "curvature_vs_m.csv": "curvature K_S versus m, S_c / S_f / random (table)",
    "curvature_vs_m.html": "curvature K_S versus m, mean ± std (Fig. 7a)",
    "fooling_rate_vs_m.json": "ξ, the random-noise norm, fooling rates (or why skipped)",
    "fooling_rate_vs_m.csv": "fooling rate versus m (table)",
    "fooling_rate_vs_m.html": "fooling rate of random vectors of S_c / S_f / random versus m (Fig. 7b)",
    "report.json": "settings, timings, file list",
    "plotly.min.js": "the Plotly library used by every figure (keep it next to the HTML files)",
}


@dataclass(frozen=True)
class ReportPanel:
    """One figure of ``index.html``, drawn inline beside its numbers.

    Attributes
    ----------
    title : str
        The panel's heading.
    figure : plotly.graph_objects.Figure
        Drawn inline (the page loads ``plotly.min.js`` once).
    reading : str
        One line: how to read the figure, with its main number.
    numbers : sequence of (str, str)
        The figure's numbers, shown as a small table beside it.
    files : sequence of str
        The files behind the panel (the figure alone, its CSV / JSON), linked under it.
    """

    title: str
    figure: go.Figure
    reading: str = ""
    numbers: tuple = ()
    files: tuple = field(default_factory=tuple)


def _panel_html(p: ReportPanel, height: int = 460) -> str:
    import plotly.graph_objects as go

    esc = html.escape
    # the numbers come first in the page (shown on the right: CSS order), so that the figure's inline script
    # sizes it to its column, not to the whole row
    fig = go.Figure(p.figure)  # a copy: the figure's own file keeps its size
    h = int(fig.layout.height or height)
    fig.update_layout(width=None, height=None, autosize=True)  # as wide as its column, as tall as the box
    div = fig.to_html(full_html=False, include_plotlyjs=False, config={"responsive": True})
    div = f'<div class="plot" style="height:{h}px">{div}</div>'
    nums = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in p.numbers)
    links = " · ".join(f'<a href="{esc(f)}">{esc(f)}</a>' for f in p.files)
    return f"""<section class="panel"><h2>{esc(p.title)}</h2>
<p class="reading">{esc(p.reading)}</p>
<div class="row"><div class="nums">{f"<table>{nums}</table>" if nums else ""}{f'<p class="files">{links}</p>' if links else ""}</div>
<div class="fig">{div}</div></div>
</section>"""


def write_index(
    out: Path,
    name: str,
    facts: Sequence[tuple[str, str]],
    files: Sequence[str],
    notes: Sequence[str],
    panels: Sequence[ReportPanel] = (),
) -> None:
    """``index.html``: one page to read — the summary facts, the notes, every figure in ``panels``
    inline beside its numbers with a one-line reading, and a described link to every file.

    The inline figures use the ``plotly.min.js`` written next to the page (offline)."""
    esc = html.escape
    rows = "\n".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
    items = []
    for f in files:
        if f == "index.html":
            continue
        desc = FILE_DESCRIPTIONS.get(
            f, "normal cross-section along (r(x), random v)" if f.startswith("section_") else ""
        )
        items.append(f'<li><a href="{esc(f)}">{esc(f)}</a> — {esc(desc)}</li>')
    note_html = "".join(f"<li>{esc(m)}</li>" for m in notes)
    panel_html = "\n".join(_panel_html(p) for p in panels)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Boundary Atlas report: {esc(name)}</title>
{'<script src="plotly.min.js"></script>' if panels else ""}
<style>body{{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse}}th,td{{text-align:left;padding:.3em .8em;border-bottom:1px solid #ddd;vertical-align:top}}
th{{white-space:nowrap}}.panel{{margin-top:2.5em}}.reading{{margin:.2em 0 .8em;color:#333}}
.row{{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}}.fig{{flex:3 1 560px;min-width:0}}
.nums{{flex:1 1 260px;font-size:.92em;order:2}}.nums th{{white-space:normal}}.files{{color:#555}}</style></head>
<body><h1>Boundary Atlas report: {esc(name)}</h1>
<table>{rows}</table>
<p>Distances are ℓ2 norms in pixel space (inputs in [0, 1]). Curvatures: positive means the other class wraps
around x. The figures below are interactive (zoom, hover); each is also a file of its own, linked beside it,
sharing <code>plotly.min.js</code> in this folder: they open offline as long as the folder is kept together.</p>
{f"<h2>Notes</h2><ul>{note_html}</ul>" if notes else ""}
{panel_html}
<h2>All files</h2><ul>
{chr(10).join(items)}
</ul>
<p>References: Moosavi-Dezfooli et al., DeepFool (CVPR 2016); Universal adversarial perturbations (CVPR 2017);
Robustness of classifiers to universal perturbations: a geometric perspective (ICLR 2018).</p>
</body></html>
"""
    (out / "index.html").write_text(page, encoding="utf-8")


# ------------------------------------------------------------------------------------------ the report
_SECTION_PANELS = 6  # sections drawn inline in index.html; more stay one link each


def _deepfool_files(report: Report, out: Path) -> ReportPanel:
    from ..plotting import norm_histogram_figure

    df, stats, n = report.deepfool, report.deepfool_stats, report.n
    conv, norms = df.converged.bool(), df.norms.double()
    idx = report.points.heldout_indices
    write_json(out / "deepfool.json", stats)
    write_csv(
        out / "deepfool.csv",
        ["index", "label", "adv_label", "norm", "converged", "true_label"],
        [
            [int(idx[i]), int(df.label[i]), int(df.adv_label[i]), float(norms[i]), bool(conv[i]),
             int(report.true_labels[i])]
            for i in range(n)
        ],
    )  # fmt: skip
    rho = stats["rho_adv"]
    fig = norm_histogram_figure(
        norms,
        conv,
        title=f"DeepFool ‖r(x)‖₂ of {report.name} on {int(conv.sum())} "
        f"{report.dataset} {report.split} points (ρ_adv = {fmt(rho, '.3f')})",
    )
    write_html(fig, out / "deepfool_norms.html")
    return ReportPanel(
        "Distance to the decision boundary (DeepFool)",
        fig,
        f"Each point's smallest perturbation ‖r(x)‖₂ that changes the label: the median point is "
        f"{fmt(stats['median_norm'], '.3g')} away (ρ_adv = {fmt(rho, '.3f')} of ‖x‖).",
        (
            ("ρ_adv", fmt(rho, ".4f")),
            ("median ‖r‖₂", fmt(stats["median_norm"])),
            ("mean ‖r‖₂", fmt(stats["mean_norm"])),
            ("converged", f"{pct(stats['converged_share'])} of {n}"),
        ),
        ("deepfool_norms.html", "deepfool.csv", "deepfool.json"),
    )


def _section_files(report: Report, out: Path) -> tuple[list[str], list[ReportPanel]]:
    from ..plotting import section_figure

    names = report.card["classes"]
    files, panels, rows = [], [], []
    for k, s in enumerate(report.sections):
        df, sec, kappa = s.study.deepfool, s.study.section, s.kappa
        lab, adv = int(df.label[0]), int(df.adv_label[0])
        name = f"section_{k + 1}.html"
        fig = section_figure(
            sec,
            names,
            direction_label=f"random v (seed {s.settings.seed})",
            curvature=kappa,
            title=f"Point #{s.index} ({names[lab]} → {names[adv]}): normal cross-section along (r(x), random v)",
        )
        write_html(fig, out / name)
        files.append(name)
        if k < _SECTION_PANELS:
            along = section_reading(s.study)
            panels.append(
                ReportPanel(
                    f"Cross-section {k + 1}: point #{s.index}, {names[lab]} → {names[adv]}",
                    fig,
                    "The plane through x spanned by r(x) and a random v: x at the origin, the nearest boundary "
                    "point at (‖r‖, 0). " + along,
                    (
                        ("‖r(x)‖₂", fmt(sec.r_norm)),
                        ("κ along v (1/pixel)", fmt(kappa)),
                        ("cos(v, r)", fmt(sec.cos_v_r, ".3f")),
                    ),
                    (name, "sections.json"),
                )
            )
        rows.append(
            {
                "file": name,
                "index": s.index,
                "label": lab,
                "adv_label": adv,
                "true_label": s.true_label,
                "r_norm": sec.r_norm,
                "kappa_along_v": kappa,
                "cos_v_r": sec.cos_v_r,
                "extent": list(sec.extent),
                "resolution": s.settings.resolution,
                "seed": s.settings.seed,
                "n_forward": sec.n_forward,
                "dense_forward": sec.dense_forward,
            }
        )
    write_json(
        out / "sections.json",
        {
            "direction": "random unit vector (uniform on the sphere, seed = points' seed + k), orthogonalised "
            "against r(x); geometry.study.section_study, as on the Cross-sections page",
            "kappa_unit": "normal curvature κ = K/‖∇F(z)‖ along v at z = x + r(x), 1/pixel distance; > 0: the other "
            "class wraps around x",
            "method": report.settings.curvature.method,
            "h": report.curvature.h,
            "sections": rows,
        },
    )
    return [*files, "sections.json"], panels


def _subspace_files(report: Report, out: Path) -> ReportPanel:
    from ..plotting import curvature_vs_m_figure

    cs, settings = report.curvature, report.settings.curvature
    S_c, S_f, curves, m_values = cs.curved, cs.flat, cs.curves, list(cs.m_values)
    c0 = curves["S_c"]
    write_json(
        out / "subspaces.json",
        {
            "method": S_c.method,
            "h": S_c.h,
            "h_rule": cs.h_text,
            "beta": S_c.beta,
            "n": S_c.n,
            "n_dropped": S_c.n_dropped,
            "estimation_split": report.fit_split,
            "estimation_indices": report.points.estimate_indices.tolist(),
            "m": S_c.m,
            "points": report.points.source,
            "settings": settings.describe(),
            "settings_key": settings.key(),
            "eigenvalues": S_c.spectrum,
            "curvatures": S_c.curvatures,
            "kappas": S_c.kappas,
            "asymmetry": S_c.asymmetry,
            "solver": S_c.solver,
            "point": S_c.point,
            "tangent": S_c.tangent,
            "n_hvp": S_c.n_hvp,
            "n_matvec": S_c.n_matvec,
            "units": {
                "eigenvalues": "Ritz values of the average tangent Hessian (logit / pixel²); NOT curvatures at a "
                "finite-difference scale — read 'curvatures'",
                "curvatures": "paper's unnormalised K(u_k) = u_kᵀ P H P u_k re-evaluated along each S_c vector, "
                "mean over the n points (logit / pixel²)",
                "kappas": "normal curvature K/‖∇F(z)‖ (1/pixel distance)",
                "asymmetry": "relative asymmetry of the averaged operator (≈ 0 when symmetric)",
            },
            "S_f": {"m": S_f.m, "singular_values": S_f.spectrum, "n": S_f.n, "n_dropped": S_f.n_dropped},
            "principal_angles_S_c_S_f": {
                "cosines": report.cosines,
                "note": "cosines of the principal angles between S_c and S_f, descending",
            },
            "curvature_vs_m": {
                "m_values": m_values,
                "n_points": c0.n,
                "n_dropped": c0.n_dropped,
                "n_directions": c0.n_directions,
                "split": report.split,
                "quantity": "K_S(x) = E_v (Pv)ᵀH(Pv)/‖Pv‖² over random unit v of the first m directions (logit / "
                "pixel²), mean ± std over held-out points; kappa = K_S/‖∇F(z)‖ (1/pixel)",
                **{
                    nm: {
                        "m_values": c.m_values,
                        "mean": c.mean,
                        "std": c.std,
                        "kappa_mean": c.kappa_mean,
                        "kappa_std": c.kappa_std,
                        "share_positive": c.share_positive,
                    }
                    for nm, c in curves.items()
                },
            },
        },
    )
    rows = [
        [nm, mm, float(c.mean[a]), float(c.std[a]), float(c.kappa_mean[a]), float(c.kappa_std[a]),
         float(c.share_positive[a]), c.n, c.n_directions]
        for nm, c in curves.items()
        for a, mm in enumerate(c.m_values.tolist())
    ]  # fmt: skip
    write_csv(
        out / "curvature_vs_m.csv",
        ["subspace", "m", "mean", "std", "kappa_mean", "kappa_std", "share_positive", "n_points", "n_directions"],
        rows,
    )
    fig = curvature_vs_m_figure(curves)
    fig.update_layout(
        title=f"Curvature versus m: {report.name}, {c0.n} held-out points ({S_c.method}{_h_text(report)})"
    )
    write_html(fig, out / "curvature_vs_m.html")
    return ReportPanel(
        "Curvature versus m (ICLR 2018 Fig. 7a)",
        fig,
        "Mean curvature K_S of held-out points along random directions of the first m directions of each "
        f"subspace (positive: the other class wraps around x). {curvature_reading(report.curvature, m=m_values[0])}",
        tuple(
            (f"{nm}, m = {mm}", f"{fmt(float(c.mean[a]), '+.3g')} ± {fmt(float(c.std[a]), '.2g')}")
            for nm, c in curves.items()
            for a, mm in ((0, m_values[0]), (len(m_values) - 1, m_values[-1]))
        ),
        ("curvature_vs_m.html", "curvature_vs_m.csv", "subspaces.json"),
    )


def _fooling_files(report: Report, out: Path) -> tuple[list[str], list[ReportPanel]]:
    from ..plotting import fooling_rate_vs_m_figure
    from ..study.settings import XI_DIVISOR

    noise, fool, xi, h = report.noise, report.fooling, report.xi, report.curvature.h
    ratio, x_norm = report.settings.xi_ratio, median_norm(report.points)
    info: dict[str, Any] = {
        "noise_norm_share": noise.share,
        "noise_norm_quantile": noise.quantile,
        "infinite_share": noise.infinite_share,
        "max_norm": noise.max_norm,
        "noise_points": len(report.points.noise),
        "n_points": report.n,
        "split": report.split,
        "xi_rule": f"ξ = 1/{XI_DIVISOR:g} of the ℓ2 norm of random noise that changes the label of "
        f"{100 * noise.share:g} % of the first {len(report.points.noise)} evaluated points (ICLR 2018 Fig. 7b)"
        if ratio is None
        else f"ξ = {ratio:g} × the median ‖x‖₂ = {x_norm:.4g} of the first {len(report.points.noise)} evaluated "
        "points (CVPR 2017 §3: ξ = 2000 on ImageNet images of ‖x‖₂ ≈ 5·10⁴)",
        "xi_ratio": ratio,
        "x_norm": x_norm,
    }
    if fool is None or xi is None:
        info.update({"skipped": True, "reason": next((m for m in report.notes if "infinite" in m), ""), "xi": None})
        write_json(out / "fooling_rate_vs_m.json", info)
        return ["fooling_rate_vs_m.json"], []
    info.update(
        {
            "skipped": False,
            "xi": xi,
            "h": h,
            "m_values": fool.m_values,
            "n_samples": fool.n_samples,
            **{nm: {"mean": fool.mean[nm], "std": fool.std[nm], "best": fool.best[nm]} for nm in fool.names},
        }
    )
    rows = [
        [nm, mm, float(fool.mean[nm][a]), float(fool.std[nm][a]), float(fool.best[nm][a]), xi, fool.n_points,
         fool.n_samples]
        for nm in fool.names
        for a, mm in enumerate(fool.m_values.tolist())
    ]  # fmt: skip
    write_csv(
        out / "fooling_rate_vs_m.csv", ["subspace", "m", "mean", "std", "best", "xi", "n_points", "n_samples"], rows
    )
    fig = fooling_rate_vs_m_figure(fool, h=h)
    fig.update_layout(
        title=f"Fooling rate of random vectors of norm ξ = {xi:.3g} in the first m directions "
        f"({report.name}, {report.n} points)"
    )
    write_html(fig, out / "fooling_rate_vs_m.html")
    write_json(out / "fooling_rate_vs_m.json", info)
    last = len(fool.m_values) - 1
    m_last = int(fool.m_values[last])
    panel = ReportPanel(
        "Fooling rate versus m (ICLR 2018 Fig. 7b)",
        fig,
        "Share of points whose label a random vector of norm ξ in the first m directions changes. "
        + fooling_reading(fool, xi=xi, h=h, x_norm=median_norm(report.points)),
        (("ξ", fmt(xi, ".3g")), *((f"{nm}, m = {m_last}", pct(float(fool.mean[nm][last]))) for nm in fool.names)),
        ("fooling_rate_vs_m.html", "fooling_rate_vs_m.csv", "fooling_rate_vs_m.json"),
    )
    return ["fooling_rate_vs_m.csv", "fooling_rate_vs_m.html", "fooling_rate_vs_m.json"], [panel]


def _h_text(report: Report) -> str:
    S_c = report.curvature.curved
    if S_c.h is not None:
        return f", h = {S_c.h:.3g}"
    return f", β = {S_c.beta:.3g}" if S_c.beta is not None else ""


def report_facts(report: Report) -> list[tuple[str, str]]:
    """The report's summary: (what, value) rows of ``index.html`` and of the command line's output."""
    card, stats, cs = report.card, report.deepfool_stats, report.curvature
    S_c, curves, m_values = cs.curved, cs.curves, list(cs.m_values)
    facts = [
        ("network", f"{report.name} ({card['format']}, {card['architecture']}), {card['parameters']:,} parameters"),
        (
            "data",
            f"{report.dataset}, input {tuple(card['input_shape'])}, d = {card['d']}, {card['num_classes']} classes",
        ),
        (f"accuracy ({report.split} split)", f"{pct(report.accuracy)} of {card['accuracy_n']} images"),
        (
            "DeepFool",
            f"ρ_adv = {fmt(stats['rho_adv'], '.4f')}, median ‖r‖₂ = {fmt(stats['median_norm'])}, mean ‖r‖₂ = "
            f"{fmt(stats['mean_norm'])}, converged {pct(stats['converged_share'])} of n = {report.n}"
            + (f"; {stats['rx']}" if "rx" in stats else ""),
        ),
        (
            "S_c",
            f"m = {S_c.m} from {S_c.n} {report.fit_split} points, {S_c.method}{_h_text(report)} ({cs.h_text}); top "
            f"curvature (re-evaluated) K = {fmt(float(S_c.curvatures[0]))}, top Ritz value "
            f"{fmt(float(S_c.spectrum[0]))}, asymmetry {fmt(S_c.asymmetry, '.3f')}",
        ),
        (
            f"curvature at m = {m_values[-1]}",
            ", ".join(f"{nm} {fmt(float(c.mean[-1]))} ± {fmt(float(c.std[-1]), '.2g')}" for nm, c in curves.items()),
        ),
    ]
    fool = report.fooling
    if fool is not None:
        last = len(fool.m_values) - 1
        facts.append(
            (
                f"fooling rate at m = {int(fool.m_values[last])}",
                f"ξ = {fmt(fool.xi, '.3g')}: "
                + ", ".join(f"{nm} {pct(float(fool.mean[nm][last]))}" for nm in fool.names),
            )
        )
    else:
        facts.append(("fooling rate versus m", "skipped (random-noise norm infinite)"))
    facts.append(("time", f"{report.timings.get('total', float('nan')):.1f} s"))
    return facts


def write_report(report: Report, out_dir: str | Path) -> Path:
    """Write ``report`` (:func:`geometry.study.report.build_report`) into the folder ``out_dir`` (created; files
    overwritten): the files of the table in :mod:`geometry.cli.commands`, ``report.json`` and ``index.html``.

    Returns
    -------
    Path — ``out_dir / "index.html"``.

    Raises
    ------
    InvalidInputError
        ``out_dir`` exists and is not a folder.
    OSError
        the folder cannot be written.
    """
    from ..errors import InvalidInputError

    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"the report folder {str(out)!r} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "model_card.json", report.card)
    files = ["model_card.json", "deepfool.json", "deepfool.csv", "deepfool_norms.html"]
    panels = [_deepfool_files(report, out)]
    section_files, section_panels = _section_files(report, out)
    files += section_files
    panels += section_panels
    panels.append(_subspace_files(report, out))
    files += ["subspaces.json", "curvature_vs_m.csv", "curvature_vs_m.html"]
    fooling_files, fooling_panels = _fooling_files(report, out)
    files += fooling_files
    panels += fooling_panels
    files += ["report.json", "index.html", "plotly.min.js"]
    write_json(
        out / "report.json",
        {
            "settings": report.settings.describe(),
            "settings_key": report.settings.key(),
            "data": {"dataset": report.dataset, "split": report.split, "estimation_split": report.fit_split},
            "timings_s": report.timings,
            "files": files,
            "notes": list(report.notes),
            "evaluated_indices": report.points.heldout_indices.tolist(),
        },
    )
    write_index(out, report.name, report_facts(report), files, list(report.notes), panels)
    return out / "index.html"


def report_summary(report: Report, index: Path) -> str:
    """The command line's summary of a written report: the facts, the notes and the index file."""
    facts = report_facts(report)
    width = max(len(k) for k, _ in facts)
    lines = [f"Boundary Atlas report: {report.name} on {report.dataset} ({report.split} split)"]
    lines += [f"  {k:<{width}}  {v}" for k, v in facts]
    lines += [f"  note: {m}" for m in report.notes]
    lines.append(f"  report: {index.resolve()}")
    return "\n".join(lines)
