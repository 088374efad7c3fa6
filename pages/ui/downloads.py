"""The "Downloads" expander of every page: figures (HTML, PNG, SVG), numbers (CSV, JSON), tensors
(``.npz`` + ``.safetensors`` with a README) and the report (issue 14 item 3; issue 19 item 2).

One call per page, near its end::

    _downloads.offer("curvature", sel, {"study": study}, {"curvature_vs_m": lambda: fig(...)}, settings)

Nothing is built on a rerun: every file is made by :mod:`geometry.output.downloads` only when its button is
pressed (Streamlit's deferred ``download_button(data=callable)``), from the page's cached study
results and the same figure builders the page draws with. "Prepare report" builds the report of the
page's settings (:meth:`geometry.study.report.ReportSettings.following`) with
:func:`geometry.study.report.build_report`, as ``boundary-atlas report`` does, and keeps it for the
session, keyed by the network and the settings' key; the equivalent command line is shown beside it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

from geometry.cli.options import report_argv
from geometry.errors import AtlasError
from geometry.output import downloads
from geometry.runtime import jobs
from geometry.runtime.uploads import in_worker
from geometry.study import network_fingerprint
from geometry.study.report import ReportSettings, load_report_data, zoo_source

from . import jobs as _jobs
from .state import USER_PREFIX

_REPORT_KEY = "_dl_report"  # session: ((network, settings key), zip bytes) of the last report prepared
_FIGURES_KEY = "_dl_figures"  # session: ((page, view key), zip bytes) of the last "Prepare all figures"


def bundle_for(title: str, sel: Any, results: Mapping, settings: Any = None, **provenance: Any) -> downloads.DataBundle:
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


def report_for(sel: Any, settings: Any = None) -> ReportSettings | None:
    """The report of the page's ``settings`` (:meth:`ReportSettings.following`: points, m, estimator, h, noise
    share, samples where the settings have them; m at most d − 1), or None for an uploaded network or dataset
    (the command line reads a model file instead)."""
    name, dataset = getattr(sel, "model_name", ""), getattr(sel, "dataset_key", "")
    if not name or name.startswith(USER_PREFIX) or dataset.startswith(USER_PREFIX):
        return None
    report = ReportSettings.following(settings)
    c = report.curvature
    if c.m_max > sel.clf.d - 1:
        report = dataclasses.replace(report, curvature=dataclasses.replace(c, m_max=max(1, sel.clf.d - 1)))
    return report


def offer(
    page: str,
    sel: Any,
    results: Mapping,
    figures: Mapping[str, Callable],
    settings: Any = None,
    *,
    title: str | None = None,
    report: bool | None = True,
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
    report : True (the report of ``settings``, :func:`report_for`), or False / None (no report for this page:
        e.g. the 2-D lab's toy networks)
    h : unused (kept for the pages' calls): the report resolves the settings' own h preset on the same points
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
            "Figures as interactive HTML (opens offline) or as PNG / SVG images. HTML is made when you press its "
            "button; a PNG / SVG is drawn in the background by a headless browser of its own (seconds, up to half a "
            "minute on a busy machine) with a progress bar, and its download button then takes the place of the "
            "button you pressed. **Prepare all figures** below draws every figure in one browser."
        )
        view_key = (sel_key(sel), settings.key() if hasattr(settings, "key") else None)
        drawing: list[str] = []  # job keys of the images being drawn, for one progress panel under the figures
        for name, build in figures.items():
            cols = st.columns([2, 1, 1, 1], vertical_alignment="center")
            cols[0].markdown(f"**{name}**")
            cols[1].download_button(
                "HTML",
                data=functools.partial(_figure_html, build),
                file_name=f"{page}_{_file_stem(name)}.html",
                mime="text/html",
                key=f"dl-{page}-{_file_stem(name)}-html",
                on_click="ignore",
                width="stretch",
            )
            for col, fmt, mime in ((cols[2], "png", "image/png"), (cols[3], "svg", "image/svg+xml")):
                job_key = _image_cell(col, page, name, build, fmt, mime, problem, view_key)
                if job_key is not None:
                    drawing.append(job_key)
        if drawing:
            _images_progress(tuple(drawing))
        if problem:
            st.caption(problem)
        _all_figures(page, figures, problem, view_key)
        row = st.columns(3)
        row[0].download_button(
            "Numbers (JSON)",
            data=lambda: downloads.numbers_json(bundle()),
            file_name=f"{page}_numbers.json",
            mime="application/json",
            key=f"dl-{page}-json",
            on_click="ignore",
            width="stretch",
            help="Every number of the page's results, with the network's fingerprint and the settings key.",
        )
        row[1].download_button(
            "Table (CSV)",
            data=lambda: _main_table_csv(bundle(), main_table),
            file_name=f"{page}_table.csv",
            mime="text/csv",
            key=f"dl-{page}-csv",
            on_click="ignore",
            width="stretch",
            help="The page's main table (every table is in the data zip).",
        )
        row[2].download_button(
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
        _report(page, report_for(sel, settings) if report else None, enabled=bool(report), sel=sel)


def sel_key(sel: Any) -> tuple:
    """What a page's figures depend on besides its settings: the network, the datapoint and the URL's view."""
    params = tuple(sorted((k, tuple(st.query_params.get_all(k))) for k in st.query_params))
    return (getattr(sel, "model_name", None), getattr(sel, "index", None), params)


def _all_figures(page: str, figures: Mapping[str, Callable], problem: str | None, key: tuple) -> None:
    """ "Prepare all figures": every figure of the page as HTML (sharing one plotly.min.js), PNG and SVG in one zip
    (:func:`geometry.output.downloads.figures_zip`), made with a progress bar and kept for the session until the
    view (``key``: network, datapoint, URL, settings) changes; then its download button."""
    if not figures:
        return
    formats = ("html",) if problem else ("html", "png", "svg")
    held = st.session_state.get(_FIGURES_KEY)
    what = "HTML" if problem else "HTML, PNG and SVG"
    if held is not None and held[0] == (page, key):
        st.download_button(
            f"All figures (zip: {what})",
            data=held[1],
            file_name=f"{page}_figures.zip",
            mime="application/zip",
            key=f"dl-{page}-figures",
            on_click="ignore",
            icon=":material/download:",
            help=f"Every HTML file loads the one {downloads.PLOTLY_JS} beside it: unzip the folder whole.",
        )
        return
    if not st.button(
        f"Prepare all figures ({len(figures)}: {what}, one zip)",
        key=f"dl-{page}-figures-prepare",
        help="The HTML files share one copy of Plotly.js (4.7 MB) instead of one each; PNG and SVG are drawn by one "
        "headless browser. A progress bar follows the work.",
    ):
        return
    bar = st.progress(0.0, text="All figures")

    def progress(fraction: float, message: str) -> None:
        bar.progress(min(max(fraction, 0.0), 1.0), text=f"All figures — {message}"[:200])

    try:
        data = downloads.figures_zip(figures, formats, progress=progress)
    except AtlasError as exc:
        bar.empty()
        st.error(f"The figures could not be made: {exc}")
        return
    bar.empty()
    st.session_state[_FIGURES_KEY] = ((page, key), data)
    st.rerun()


def _figure_html(build: Callable[[], Any]) -> bytes:
    return downloads.figure_html(build())


def _figure_image(build: Callable[[], Any], fmt: str, *, progress=None) -> bytes:
    """The figure ``build()`` as PNG / SVG bytes (:func:`geometry.output.downloads.figure_image`), reporting its two
    steps; run as a background job by :func:`_image_cell`."""
    if progress is not None:
        progress(0.0, "building the figure")
    fig = build()
    if progress is not None:  # below the registry's ETA threshold: the ETA stays the measured estimate
        progress(0.01, f"drawing the {fmt.upper()} in a headless browser")
    return downloads.figure_image(fig, fmt)


#: Seconds one PNG / SVG takes, shown as the ETA while it is drawn: 11–35 s each measured under load (issue 20).
IMAGE_SECONDS = 20.0


def image_job_key(page: str, name: str, fmt: str, view_key: tuple) -> str:
    """The job key of one figure's PNG / SVG: the page, the figure, the format and the view it shows (network,
    datapoint, URL, settings key) — a changed view draws a new image."""
    digest = hashlib.sha256(repr(view_key).encode("utf-8")).hexdigest()[:16]
    return f"figure-image:{page}:{_file_stem(name)}:{fmt}:{digest}"


def _image_cell(
    col: Any, page: str, name: str, build: Callable, fmt: str, mime: str, problem: str | None, view_key: tuple
) -> str | None:
    """One figure's PNG or SVG cell (issue 20, item 3): a button that starts drawing it as a background job; while
    the job runs, a disabled "PNG …" (its progress is in :func:`_images_progress`); once drawn, the download button
    with the image. Returns the job key while it is being drawn, else None."""
    stem, label = _file_stem(name), fmt.upper()
    if problem is not None:
        col.button(label, key=f"dl-{page}-{stem}-{fmt}-prepare", disabled=True, help=problem, width="stretch")
        return None
    registry = jobs.registry()
    key = image_job_key(page, name, fmt, view_key)
    job = registry.get(key)
    if job is not None and job.state == "done":
        col.download_button(
            label,
            data=job.result,
            file_name=f"{page}_{stem}.{fmt}",
            mime=mime,
            key=f"dl-{page}-{stem}-{fmt}",
            on_click="ignore",
            icon=":material/download:",
            help=f"Drawn in {job.elapsed() or 0:.0f} s; ready to save.",
            width="stretch",
        )
        return None
    if job is not None and not job.finished:
        col.button(f"{label} …", key=f"dl-{page}-{stem}-{fmt}-prepare", disabled=True, width="stretch")
        return key
    if job is not None:  # failed or cancelled: said once, and the button draws it again
        col.caption(f"{label} not made: {job.error or job.state}")
    if not col.button(
        label,
        key=f"dl-{page}-{stem}-{fmt}-prepare",
        help=f"Draws the {label} in the background (a headless browser: seconds, up to half a minute on a busy "
        "machine) with a progress bar below; its download button then takes this place.",
        width="stretch",
    ):
        return None
    if job is not None:
        registry.forget(key)
    registry.submit(
        key,
        _figure_image,
        build,
        fmt,
        label=f"{name} as {label}",
        lane="page",
        front=True,
        owner=_jobs.session_owner(),
        expected_seconds=IMAGE_SECONDS,
    )
    return key


@st.fragment(run_every=_jobs.POLL_SECONDS * 2)
def _images_progress(keys: tuple[str, ...]) -> None:
    """The progress of the images being drawn (message, elapsed time, ETA); reruns the page when all are done, so
    their download buttons appear."""
    running = [j for j in (jobs.registry().get(k) for k in keys) if j is not None and not j.finished]
    if not running:
        st.rerun()
        return
    for job in running:
        st.progress(job.status().fraction, text=_jobs.bar_text(job.label, job))


def _file_stem(name: str) -> str:
    """A figure's label as part of a file name ("Curvature vs m" → "curvature_vs_m")."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() or "figure"


def _main_table_csv(bundle: downloads.DataBundle, name: str | None) -> bytes:
    """The table called ``name`` (else the first) as CSV."""
    if not bundle.tables:
        return b"no table: this page's results are in numbers.json and the tensors\n"
    return downloads.table_csv(next((t for t in bundle.tables if t.name == name), bundle.tables[0]))


def _report(page: str, settings: ReportSettings | None, *, enabled: bool, sel: Any) -> None:
    """The report's command line, a "Prepare report" button, and its download once prepared."""
    if not enabled:
        return
    if settings is None:
        st.caption(
            "Report: the command line reads your model file — `boundary-atlas report --model FILE --dataset NAME "
            "--out report` (see `boundary-atlas report --help`)."
        )
        return
    name, dataset = sel.model_name, sel.dataset_key
    out = f"report-{name}"
    command = downloads.report_command(report_argv(name, dataset, settings, out=out))
    st.markdown(
        "**Report** — the command line's report for this network and these settings:",
        help="DeepFool, cross-sections, S_c / S_f, curvature and fooling rate versus m, as JSON / CSV and HTML "
        "figures, with an index.html that shows every figure beside its numbers.",
    )
    st.code(command, language="bash", wrap_lines=True)
    key = (name, settings.key())
    ready = st.session_state.get(_REPORT_KEY)
    if ready is not None and ready[0] == key:
        st.download_button(
            "Download report (zip)",
            data=ready[1],
            file_name=f"{out}.zip",
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

        def progress(fraction: float, message: str) -> None:
            bar.progress(min(max(fraction, 0.0), 1.0), text=f"Report — {message}"[:200])

        try:
            data = in_worker(  # an upload: the whole report in its worker (issue 22)
                downloads.report_zip,
                sel.clf,
                load_report_data(dataset),
                settings,
                progress=progress,
                model_source=zoo_source(name, sel.clf),
            )
        except AtlasError as exc:
            bar.empty()
            st.error(f"The report could not be made: {exc}")
            return
        bar.empty()
        st.session_state[_REPORT_KEY] = (key, data)
        st.rerun()
