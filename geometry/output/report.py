"""Writing a report folder: JSON and CSV numbers, interactive HTML figures, one readable index.html.

The command line's ``report`` computes through :mod:`geometry.study` and writes through here; no
geometry is computed in this module. JSON is strict (non-finite floats become ``null``), CSV cells
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

if TYPE_CHECKING:  # plotly is imported where the report is written
    import plotly.graph_objects as go

__all__ = [
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


def write_html(fig, path: Path) -> None:
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


def write_index(out: Path, name: str, facts, files, notes, panels: Sequence[ReportPanel] = ()) -> None:
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
