"""The "Downloads" expander of every page: figures (HTML, PNG, SVG), numbers (CSV, JSON), tensors
(``.npz`` + ``.safetensors`` with a README) and the command line's report (issue 14 item 3).

One call per page, near its end::

    _downloads.offer("curvature", sel, {"study": study}, {"curvature_vs_m": lambda: fig(...)}, settings)

Nothing is built on a rerun: every file is made by :mod:`geometry.output.downloads` only when its button is
pressed (Streamlit's deferred ``download_button(data=callable)``), from the page's cached study
results and the same figure builders the page draws with. The report runs the command line's own
code after "Prepare report" and is kept for the session, keyed by its command line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import streamlit as st

from geometry.errors import AtlasError
from geometry.output import downloads
from geometry.study import network_fingerprint

from .state import USER_PREFIX

_REPORT_KEY = "_dl_report"  # session: (command line, zip bytes) of the last report prepared


def bundle_for(title: str, sel, results: Mapping, settings=None, **provenance) -> downloads.DataBundle:
    """:func:`geometry.output.downloads.result_bundle` of ``results`` with the page's provenance: the network's
    name and fingerprint, the dataset, the datapoint and the settings key."""
    prov = {
        "page": title,
        "network": getattr(sel, "model_name", None),
        "network_fingerprint": network_fingerprint(sel.clf) if getattr(sel, "clf", None) is not None else None,
        "dataset": getattr(sel, "dataset_key", None),
        "datapoint_index": getattr(sel, "index", None),
        "settings_key": settings.key() if hasattr(settings, "key") else None,
        "settings": settings.describe() if hasattr(settings, "describe") else None,
        **provenance,
    }
    return downloads.result_bundle(title, results, provenance={k: v for k, v in prov.items() if v is not None})


def report_for(sel, settings=None, *, h: float | None = None) -> list[str] | None:
    """``boundary-atlas report`` arguments for the sidebar's network and the page's settings (n, m,
    method, h, β, directions, noise share, seed where the settings have them), or None for an uploaded
    network or dataset (the command line reads a model file instead)."""
    name, dataset = getattr(sel, "model_name", ""), getattr(sel, "dataset_key", "")
    if not name or name.startswith(USER_PREFIX) or dataset.startswith(USER_PREFIX):
        return None
    points = getattr(settings, "points", None)
    scale = getattr(settings, "scale", None)
    if h is None and scale is not None and scale.preset == "custom":
        h = scale.value
    m = getattr(settings, "m_max", None) or getattr(settings, "m_estimated", None)
    return downloads.report_argv(
        name,
        dataset,
        n_points=getattr(points, "n_estimate", None),
        m=min(int(m), sel.clf.d - 1) if m else None,
        method=getattr(settings, "method", None),
        h=float(h) if h else None,
        beta=getattr(settings, "beta", None),
        n_directions=getattr(settings, "n_directions", None),
        noise_share=getattr(settings, "share", None),
        seed=getattr(points, "seed", None),
        out=f"report-{name}",
    )


def offer(
    page: str,
    sel,
    results: Mapping,
    figures: Mapping[str, Callable],
    settings=None,
    *,
    title: str | None = None,
    report: list[str] | bool | None = True,
    h: float | None = None,
    main_table: str | None = None,
) -> None:
    """Draw the page's "Downloads" expander.

    Parameters
    ----------
    page : str
        Short name used in file names and widget keys (e.g. ``"curvature"``).
    sel : pages.ui.sidebar.Selection or None
        The sidebar's network, dataset and datapoint (provenance; the report's network).
    results : mapping name → study result
        The page's (cached) study results: their tensors, tables and numbers are the data files.
    figures : mapping label → callable returning a Plotly figure
        Each called only when one of its buttons is pressed.
    settings : the page's settings dataclass (its ``key()`` goes into the provenance and the report)
    report : True (derive the report's arguments from ``sel`` and ``settings``), a list of arguments,
        or False / None (no report for this page: e.g. the 2-D lab's toy networks)
    h : the resolved finite-difference scale to pass to the report (e.g. h = ξ resolved by the study)
    main_table : the bundle table offered as "Table (CSV)" (e.g. ``"study.curves"``; default: the first)
    """
    label = title or page.replace("_", " ").capitalize()

    def bundle() -> downloads.DataBundle:
        return bundle_for(label, sel, results, settings)

    # the builders, for tests (AppTest cannot read deferred download data) and for other helpers
    st.session_state.setdefault("_downloads", {})[page] = {"figures": dict(figures), "data": bundle, "results": results}
    with st.expander("Downloads", icon=":material/download:"):
        problem = downloads.static_export_problem()
        st.caption(
            "Figures as interactive HTML (opens offline) or as PNG / SVG images (a few seconds each: a headless "
            "browser draws them); every file is made when you press its button."
        )
        for name, build in figures.items():
            cols = st.columns([2, 1, 1, 1], vertical_alignment="center")
            cols[0].markdown(f"**{name}**")
            cols[1].download_button(
                "HTML",
                data=lambda b=build: downloads.figure_html(b()),
                file_name=f"{page}_{_file_stem(name)}.html",
                mime="text/html",
                key=f"dl-{page}-{_file_stem(name)}-html",
                on_click="ignore",
                width="stretch",
            )
            for col, fmt, mime in ((cols[2], "png", "image/png"), (cols[3], "svg", "image/svg+xml")):
                col.download_button(
                    fmt.upper(),
                    data=lambda b=build, f=fmt: downloads.figure_image(b(), f),
                    file_name=f"{page}_{_file_stem(name)}.{fmt}",
                    mime=mime,
                    key=f"dl-{page}-{_file_stem(name)}-{fmt}",
                    on_click="ignore",
                    disabled=problem is not None,
                    help=problem,
                    width="stretch",
                )
        if problem:
            st.caption(problem)
        cols = st.columns(3)
        cols[0].download_button(
            "Numbers (JSON)",
            data=lambda: downloads.numbers_json(bundle()),
            file_name=f"{page}_numbers.json",
            mime="application/json",
            key=f"dl-{page}-json",
            on_click="ignore",
            width="stretch",
            help="Every number of the page's results, with the network's fingerprint and the settings key.",
        )
        cols[1].download_button(
            "Table (CSV)",
            data=lambda: _main_table_csv(bundle(), main_table),
            file_name=f"{page}_table.csv",
            mime="text/csv",
            key=f"dl-{page}-csv",
            on_click="ignore",
            width="stretch",
            help="The page's main table (every table is in the data zip).",
        )
        cols[2].download_button(
            "Data (zip)",
            data=lambda: downloads.bundle_zip(bundle()),
            file_name=f"{page}_data.zip",
            mime="application/zip",
            key=f"dl-{page}-zip",
            on_click="ignore",
            width="stretch",
            help="Every table (CSV), every number (JSON) and every tensor (.npz and .safetensors: r(x), bases of "
            "S_c / S_f, perturbations, section grids, …) with a README of keys, shapes, units and provenance.",
        )
        argv = report_for(sel, settings, h=h) if report is True else (report or None)
        _report(page, argv, enabled=report is not False and report is not None, sel=sel)


def _file_stem(name: str) -> str:
    """A figure's label as part of a file name ("Curvature vs m" → "curvature_vs_m")."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() or "figure"


def _main_table_csv(bundle: downloads.DataBundle, name: str | None) -> bytes:
    """The table called ``name`` (else the first) as CSV."""
    if not bundle.tables:
        return b"no table: this page's results are in numbers.json and the tensors\n"
    return downloads.table_csv(next((t for t in bundle.tables if t.name == name), bundle.tables[0]))


def _report(page: str, argv: list[str] | None, *, enabled: bool, sel) -> None:
    """The report's command line, a "Prepare report" button, and its download once prepared."""
    if not enabled:
        return
    if argv is None:
        st.caption(
            "Report: the command line reads your model file — `boundary-atlas report --model FILE --dataset NAME "
            "--out report` (see `boundary-atlas report --help`)."
        )
        return
    command = downloads.report_command(argv)
    st.markdown(
        "**Report** — the command line's report for this network and these settings:",
        help="DeepFool, cross-sections, S_c / S_f, curvature and fooling rate versus m, as JSON / CSV and HTML "
        "figures, with an index.html that shows every figure beside its numbers.",
    )
    st.code(command, language="bash", wrap_lines=True)
    ready = st.session_state.get(_REPORT_KEY)
    if ready is not None and ready[0] == command:
        st.download_button(
            "Download report (zip)",
            data=ready[1],
            file_name=f"{argv[argv.index('--out') + 1]}.zip",
            mime="application/zip",
            key=f"dl-{page}-report",
            on_click="ignore",
            icon=":material/download:",
        )
        return
    if st.button(
        "Prepare report",
        help="Computes the report here: seconds on digits, minutes on MNIST.",
        key=f"dl-{page}-report-prepare",
    ):
        bar = st.progress(0.0, text="Report")
        try:
            data = downloads.report_zip(argv, progress=lambda f, msg: bar.progress(f, text=f"Report — {msg}"[:200]))
        except AtlasError as exc:
            bar.empty()
            st.error(f"The report could not be made: {exc}")
            return
        bar.empty()
        st.session_state[_REPORT_KEY] = (command, data)
        st.rerun()
