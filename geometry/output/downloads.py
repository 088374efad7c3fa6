"""Take-away files of a study: figures (interactive HTML, PNG / SVG), numbers (CSV / JSON), tensors
(``.npz`` and ``.safetensors`` with a README) and the command line's report, as bytes.

Issue 14 item 3 (DESIGN §2, the study layer). Nothing here needs Streamlit: the app's "Downloads"
expander (``pages/ui/downloads.py``) only calls these functions, lazily, when a button is pressed.

* :func:`figure_html` — a Plotly figure as one self-contained HTML file (Plotly.js inlined: opens
  offline, nothing fetched).
* :func:`figures_zip` — several figures in one zip: HTML sharing one ``plotly.min.js``, PNG and SVG drawn by one
  headless browser, with progress.
* :func:`figure_image` — PNG / SVG through Plotly's maintained exporter *kaleido* (v1 drives a local
  Chrome / Chromium through *choreographer*; the browser is found on ``PATH`` or at
  ``$BROWSER_PATH``). :func:`static_export_problem` says in one line why it cannot run here.
* :func:`result_bundle` — the numbers and tensors of study results (frozen dataclasses), read from
  the result objects themselves (never scraped from a figure): every numeric tensor / array becomes
  one key of ``tensors.npz`` and ``tensors.safetensors``; every group of equally long 1-D arrays of
  one result becomes a CSV table; every scalar goes into ``numbers.json``. Each key's shape, dtype,
  meaning and unit come from the owning class's numpydoc ``Attributes`` section.
* :func:`bundle_zip` — the bundle as a zip with ``README.txt`` (keys, shapes, units, provenance).
* :func:`report_zip` — the report for the app's settings (a :class:`~geometry.study.report.ReportSettings`),
  computed as the command line computes it (:func:`geometry.study.report.build_report`);
  :func:`report_command` — the command line that gives the same report.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import inspect
import io
import json
import math
import re
import shlex
import tempfile
import threading
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import AtlasError
from ..progress import ProgressFn, no_progress, stage

if TYPE_CHECKING:
    from ..classifier import Classifier
    from ..study.report import ReportData, ReportSettings

__all__ = [
    "ExportUnavailableError",
    "Table",
    "TensorEntry",
    "DataBundle",
    "figure_html",
    "figure_image",
    "figures_zip",
    "static_export_problem",
    "result_bundle",
    "table_csv",
    "numbers_json",
    "bundle_zip",
    "readme_text",
    "report_command",
    "report_zip",
]

#: Largest table written as CSV (rows) and largest array copied into numbers.json (elements).
MAX_TABLE_ROWS = 100_000
MAX_JSON_ELEMENTS = 2_000
_MAX_DEPTH = 6


class ExportUnavailableError(AtlasError):
    """Static image export (PNG / SVG) cannot run here: kaleido or a Chrome / Chromium is missing."""


# ------------------------------------------------------------------------------------------ figures
def figure_html(fig: Any) -> bytes:
    """A Plotly figure as a self-contained interactive HTML page (UTF-8 bytes).

    Plotly.js (≈ 4.7 MB) is inlined (``include_plotlyjs=True``): a single downloaded file has nothing beside it
    to share a script with, and a ``<script src>`` to a CDN would not open offline (README: nothing is fetched
    at run time). Several figures together share one copy instead: :func:`figures_zip`.
    """
    import plotly.io as pio

    return pio.to_html(fig, include_plotlyjs=True, full_html=True).encode("utf-8")


#: The one Plotly.js beside the HTML files of :func:`figures_zip` (each refers to it by this relative name).
PLOTLY_JS = "plotly.min.js"
#: Serialises static exports (PNG / SVG): :func:`figures_zip` keeps one headless browser open for all its images
#: and closes it afterwards, so no other export may start or use it meanwhile.
_EXPORT_LOCK = threading.Lock()


def figures_zip(
    figures: Mapping[str, Callable[[], Any]],
    formats: Sequence[str] = ("html", "png", "svg"),
    *,
    progress: ProgressFn | None = None,
    width: int = 1000,
    scale: float = 2.0,
) -> bytes:
    """Several figures as one zip: per figure ``<name>.html`` (interactive), ``<name>.png`` and ``<name>.svg``,
    with **one** ``plotly.min.js`` beside the HTML files (Plotly's ``include_plotlyjs="directory"``: each HTML
    loads ``<script src="plotly.min.js">``, so n figures cost one 4.7 MB script, not n; unzip the folder whole to
    open them offline), and a ``README.txt`` listing the files.

    Parameters
    ----------
    figures : mapping file stem → callable returning a Plotly figure
        Each built once, when its turn comes (stems are made safe for file names).
    formats : any of "html", "png", "svg"
        PNG / SVG need kaleido and a Chromium (:func:`static_export_problem`); without them they are left out and
        README.txt says why. All images of one call share one headless browser (seconds to start, then a fraction
        of a second per image) instead of one browser per image as :func:`figure_image` does.
    progress : ProgressFn, optional
        ``progress(fraction, message)``, fractions non-decreasing from 0 to 1: one step per figure built and per
        file written.
    width, scale : the images' size in CSS pixels and a PNG's pixel density (:func:`figure_image`).

    Raises
    ------
    ExportUnavailableError
        an unknown format, or an image export that failed once started.
    """
    unknown = [f for f in formats if f not in ("html", "png", "svg")]
    if unknown:
        raise ExportUnavailableError(f"unknown figure formats {unknown}: choose html, png or svg")
    report = progress or no_progress
    problem = static_export_problem()
    images = [f for f in formats if f != "html"] if problem is None else []
    steps = max(len(figures) * (1 + len(formats)) + (1 if images else 0), 1)
    done = 0

    def step(message: str) -> None:
        nonlocal done
        done += 1
        report(min(done / steps, 1.0), message)

    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    buf = io.BytesIO()
    written: list[str] = []
    report(0.0, f"{len(figures)} figures")
    with contextlib.ExitStack() as stack, zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        if images:
            stack.enter_context(_EXPORT_LOCK)
            stack.enter_context(_one_browser())
            stack.enter_context(warnings.catch_warnings())  # plotly's defaults (kopts) are unused by a server: said
            warnings.filterwarnings("ignore", message="The kopts argument is ignored")
            step("starting the headless browser for PNG / SVG")
        if "html" in formats and figures:
            zf.writestr(PLOTLY_JS, get_plotlyjs())
            written.append(f"{PLOTLY_JS}  Plotly.js, shared by every HTML file here")
        for name, build in figures.items():
            stem = _safe_name(name)
            fig = build()
            step(f"{name}: built")
            for fmt in formats:
                if fmt == "html":
                    zf.writestr(f"{stem}.html", pio.to_html(fig, include_plotlyjs="directory", full_html=True))
                elif fmt in images:
                    zf.writestr(f"{stem}.{fmt}", _image(fig, fmt, width, None, scale))
                else:
                    step(f"{name}: {fmt.upper()} left out")
                    continue
                written.append(f"{stem}.{fmt}")
                step(f"{name}: {fmt.upper()} written")
        notes = [f"{len(figures)} figures. Unzip the folder whole: every HTML file loads {PLOTLY_JS} from beside it."]
        if problem and any(f != "html" for f in formats):
            notes.append(f"No PNG / SVG: {problem}")
        zf.writestr("README.txt", "\n".join([*notes, "", *written]) + "\n")
    report(1.0, "done")
    return buf.getvalue()


@contextlib.contextmanager
def _one_browser() -> Iterator[None]:
    """kaleido's sync server (one Chromium for every image) while the block runs, unless one is already open."""
    import kaleido

    started = False
    try:
        if not kaleido._global_server.is_running():
            kaleido.start_sync_server(silence_warnings=True)
            started = True
    except Exception:  # no server: each image starts its own browser (slower, same result)
        started = False
    try:
        yield
    finally:
        if started:
            kaleido.stop_sync_server(silence_warnings=True)


@functools.lru_cache(maxsize=1)
def static_export_problem() -> str | None:
    """None when PNG / SVG export can run here, else one line saying what is missing.

    Needs the ``kaleido`` package (≥ 1) and a Chrome / Chromium that *choreographer* finds (on
    ``PATH``, e.g. Debian's ``/usr/bin/chromium``, or at ``$BROWSER_PATH``). Checked once per process.
    """
    try:
        import kaleido  # noqa: F401
        from choreographer.browsers.chromium import Chromium
    except Exception:  # ImportError, or a broken install
        return "PNG / SVG need the kaleido package (pip install kaleido); HTML and data downloads work without it."
    try:
        path = Chromium.find_browser(skip_local=False)
    except Exception:
        path = None
    if not path:
        return (
            "PNG / SVG need Chrome or Chromium (e.g. apt install chromium, or set BROWSER_PATH); "
            "HTML and data downloads work without it."
        )
    return None


def figure_image(
    fig: Any, fmt: str = "png", *, width: int = 1000, height: int | None = None, scale: float = 2.0
) -> bytes:
    """A Plotly figure as a static image through kaleido (seconds: it starts a headless browser).

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
    fmt : "png" or "svg"
    width, height : int
        Canvas size in CSS pixels (``height`` None: the figure's own height, else 600).
    scale : float
        Pixel density of a PNG (2: sharp on slides).

    Raises
    ------
    ExportUnavailableError
        kaleido or the browser is missing (:func:`static_export_problem`), or the export failed.
    """
    if fmt not in ("png", "svg"):
        raise ExportUnavailableError(f"unknown image format {fmt!r}: choose png or svg")
    problem = static_export_problem()
    if problem:
        raise ExportUnavailableError(problem)
    with _EXPORT_LOCK:
        return _image(fig, fmt, width, height, scale)


def _image(fig: Any, fmt: str, width: int, height: int | None, scale: float) -> bytes:
    import plotly.io as pio

    h = height or fig.layout.height or 600
    try:
        return pio.to_image(fig, format=fmt, width=int(width), height=int(h), scale=float(scale))
    except Exception as exc:  # the browser failed to start, a timeout, …
        raise ExportUnavailableError(f"{fmt.upper()} export failed: {' '.join(str(exc).split())[:200]}") from exc


# ------------------------------------------------------------------------------------------ data
@dataclass(frozen=True)
class Table:
    """One CSV table: ``columns`` and ``rows`` (a row per index of the equally long arrays)."""

    name: str
    columns: tuple
    rows: tuple
    description: str = ""


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a bundle.

    Attributes
    ----------
    key : str
        Its key in ``tensors.npz`` / ``tensors.safetensors`` (a dotted path into the results).
    array : numpy.ndarray
        The values (a contiguous copy; bool tensors are stored as uint8 in safetensors).
    meaning : str
        Shape, unit and meaning from the owning class's docstring ("" when undocumented).
    source : str
        The owning class and field, e.g. ``geometry.curvature.Subspace.basis``.
    """

    key: str
    array: np.ndarray
    meaning: str = ""
    source: str = ""


@dataclass(frozen=True)
class DataBundle:
    """The take-away data of one page: tables, tensors, scalars and their provenance."""

    title: str
    tables: tuple = ()
    tensors: tuple = ()
    numbers: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)


@functools.lru_cache(maxsize=256)
def _attribute_docs(cls: type) -> dict:
    """``{field: description}`` from the numpydoc ``Attributes`` section of ``cls`` (and its bases)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        doc = inspect.getdoc(klass) if klass.__doc__ else None
        if not doc or "Attributes" not in doc:
            continue
        lines = doc.split("Attributes", 1)[1].splitlines()[2:]  # skip the "------" underline
        end = next(
            (i for i in range(len(lines) - 1) if lines[i + 1].strip() and set(lines[i + 1].strip()) <= {"-"}), None
        )
        names: list[str] = []
        current: list[str] = []
        for line in [*lines[:end], "<end> : "]:
            if line and not line.startswith(" "):
                for nm in names:
                    docs[nm] = " ".join(current)
                head, _, typ = line.partition(" : ")
                names = [n.strip() for n in head.split(",") if n.strip()]
                current = [f"({typ.strip()})"] if typ.strip() else []
            elif line.strip():
                current.append(line.strip())
    return docs


def _as_array(value: Any) -> np.ndarray | None:
    """A numeric numpy copy of a tensor / array / list of numbers, else None."""
    try:
        import torch
    except Exception:  # pragma: no cover
        torch = None  # type: ignore[assignment]
    if torch is not None and isinstance(value, torch.Tensor):
        if value.is_complex():
            return None
        t = value.detach().cpu()
        if t.dtype == torch.bfloat16:
            t = t.float()
        return t.numpy().copy()
    if isinstance(value, np.ndarray):
        return value.copy() if value.dtype.kind in "biuf" else None
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in value)
    ):
        return np.asarray(value, dtype=float if any(isinstance(v, (float, np.floating)) for v in value) else np.int64)
    return None


def _cell(value: Any) -> Any:
    """A table cell: a numpy scalar as itself (its str is the shortest exact text, float32 included), a
    non-finite float as None."""
    if isinstance(value, np.floating) and not np.isfinite(value):
        return None
    return value


def _plain_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class _Walker:
    """Collects tensors, tables and scalars from nested results (dataclasses, dicts, lists)."""

    def __init__(self) -> None:
        self.tensors: list[TensorEntry] = []
        self.tables: list[Table] = []
        self.seen: set[int] = set()

    def walk(self, obj: Any, path: str, owner: type | None, name: str, depth: int) -> Any:
        """The JSON-able value of ``obj``; tensors and tables are recorded on the way."""
        if obj is None or isinstance(obj, (bool, int, float, str, np.generic)):
            return _plain_scalar(obj)
        if _skip(obj):
            return None
        arr = _as_array(obj)
        if arr is not None:
            if arr.ndim == 0:
                return _plain_scalar(arr.item())
            meaning = _attribute_docs(owner).get(name, "") if owner is not None else ""
            source = f"{owner.__module__}.{owner.__qualname__}.{name}" if owner is not None else path
            self.tensors.append(TensorEntry(path, np.ascontiguousarray(arr), meaning, source))
            if arr.size <= MAX_JSON_ELEMENTS:
                return [_plain_scalar(v) for v in arr.reshape(-1).tolist()] if arr.ndim == 1 else arr.tolist()
            return {"tensor": path, "shape": list(arr.shape), "dtype": str(arr.dtype)}
        if depth > _MAX_DEPTH or id(obj) in self.seen:
            return None
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            self.seen.add(id(obj))
            children = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
            out = {
                k: self.walk(v, f"{path}.{k}" if path else k, type(obj), k, depth + 1)
                for k, v in children.items()
                if not _skip(v)
            }
            self._table(path, type(obj), children)
            return out
        if isinstance(obj, Mapping):
            self.seen.add(id(obj))
            children = {str(k): v for k, v in obj.items()}
            out = {
                k: self.walk(v, f"{path}.{k}" if path else k, owner, name, depth + 1)
                for k, v in children.items()
                if not _skip(v)
            }
            self._table(path, owner, children)
            self._stack(path, list(children))
            return out
        if isinstance(obj, (list, tuple)):
            if all(isinstance(v, str) for v in obj):
                return list(obj)
            self.seen.add(id(obj))
            self._records(path, obj)
            return [self.walk(v, f"{path}.{i}", owner, name, depth + 1) for i, v in enumerate(obj)]
        return None  # a network, a function, …: not data

    def _stack(self, path: str, names: list) -> None:
        """The tables of a mapping's children with equal columns (e.g. the S_c / S_f / random curves) also
        as one long table with a first column ``name``."""
        by_name = {t.name: t for t in self.tables}
        parts = [by_name.get(f"{path}.{k}") for k in names]
        if len(parts) < 2 or any(t is None for t in parts) or len({t.columns for t in parts if t}) != 1:
            return
        rows = tuple((k, *row) for k, t in zip(names, parts, strict=True) if t for row in t.rows)
        first = parts[0]
        assert first is not None
        self.tables.append(Table(path, ("name", *first.columns), rows[:MAX_TABLE_ROWS], first.description))

    def _records(self, path: str, items: Sequence) -> None:
        """A list of flat records (dicts of scalars with the same keys, e.g. a theorem table) as one table."""
        if len(items) < 1 or not all(isinstance(v, Mapping) for v in items):
            return
        keys = list(items[0])
        scalar = (bool, int, float, str, np.generic, type(None))
        if not keys or any(list(v) != keys or not all(isinstance(x, scalar) for x in v.values()) for v in items):
            return
        rows = tuple(tuple(_plain_scalar(v[k]) for k in keys) for v in items[:MAX_TABLE_ROWS])
        self.tables.append(Table(path, tuple(str(k) for k in keys), rows, "one row per record"))

    def _table(self, path: str, owner: type | None, children: Mapping) -> None:
        """One table per group of equally long 1-D arrays among ``children`` (and their dicts' values)."""
        cols: dict[str, np.ndarray] = {}
        for k, v in children.items():
            arr = _as_array(v)
            if arr is not None and arr.ndim == 1:
                cols[k] = arr
            elif isinstance(v, Mapping):
                for k2, v2 in v.items():
                    a2 = _as_array(v2)
                    if a2 is not None and a2.ndim == 1:
                        cols[f"{k}.{k2}"] = a2
        by_len: dict[int, dict[str, np.ndarray]] = {}
        for k, a in cols.items():
            by_len.setdefault(len(a), {})[k] = a
        groups = [(n, g) for n, g in by_len.items() if 2 <= n <= MAX_TABLE_ROWS and len(g) >= 2]
        for n, g in groups:
            name = (path or "values") + (f"_{n}" if len(groups) > 1 else "")
            rows = tuple(tuple(_cell(g[k][i]) for k in g) for i in range(n))
            desc = f"columns of {owner.__module__}.{owner.__qualname__}" if owner is not None else ""
            self.tables.append(Table(name, tuple(g), rows, desc))


def _skip(value: Any) -> bool:
    """Objects that are not data: networks, modules, callables."""
    try:
        import torch
    except Exception:  # pragma: no cover
        return callable(value)
    from ..classifier import Classifier

    return isinstance(value, (torch.nn.Module, Classifier)) or (callable(value) and not dataclasses.is_dataclass(value))


def result_bundle(title: str, results: Mapping[str, Any], *, provenance: Mapping[str, Any] | None = None) -> DataBundle:
    """The numbers and tensors of study results, read from the result objects.

    Parameters
    ----------
    title : str
        What the bundle holds (the page's name).
    results : mapping of name → result
        Frozen dataclasses of :mod:`geometry.study` (nested dataclasses, dicts, lists, tensors);
        networks and callables inside are skipped. A key of the bundle is the dotted path
        ``name.field.subfield``.
    provenance : mapping, optional
        How the results were made (network fingerprint, settings key, dataset, …); written to
        ``README.txt`` and ``numbers.json``.

    Returns
    -------
    DataBundle
        ``tensors``: every numeric tensor / array (≥ 1-D) with its meaning and unit from the owning
        class's docstring; ``tables``: every group of ≥ 2 equally long 1-D arrays of one result
        (e.g. a curve's ``m_values``, ``mean``, ``std``); ``numbers``: a JSON tree of the results
        (arrays of ≤ 2,000 elements inline, larger ones by key and shape).
    """
    w = _Walker()
    numbers = {name: w.walk(obj, name, None, name, 0) for name, obj in results.items() if not _skip(obj)}
    return DataBundle(
        title=title,
        tables=tuple(w.tables),
        tensors=tuple(w.tensors),
        numbers=numbers,
        provenance=dict(provenance or {}),
    )


def table_csv(table: Table) -> bytes:
    """A table as CSV (UTF-8; empty cells for missing / non-finite values)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow(["" if v is None else v for v in row])
    return buf.getvalue().encode("utf-8")


def numbers_json(bundle: DataBundle) -> bytes:
    """The bundle's title, provenance and numbers as strict JSON (non-finite → null)."""
    from .report import plain

    doc = {"title": bundle.title, "provenance": bundle.provenance, "results": bundle.numbers}
    return (json.dumps(plain(doc), indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _npz(bundle: DataBundle) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{t.key: t.array for t in bundle.tensors})
    return buf.getvalue()


def _safetensors(bundle: DataBundle) -> bytes:
    from safetensors.numpy import save

    arrays = {t.key: (t.array.astype(np.uint8) if t.array.dtype == bool else t.array) for t in bundle.tensors}
    meta = {"title": bundle.title, **{str(k): str(v) for k, v in bundle.provenance.items()}}
    return save(arrays, metadata=meta)


def readme_text(bundle: DataBundle) -> str:
    """``README.txt``: the files, every tensor key with shape, dtype, meaning / unit and source, the
    tables' columns and the provenance."""
    lines = [
        f"Boundary Atlas data: {bundle.title}",
        "",
        "Files",
        "  numbers.json         every number of the results (arrays up to 2,000 values inline), provenance",
        "  tables/*.csv         the curves and per-point tables (one row per index)",
        "  tensors.npz          every tensor, numpy.load(...)[key]",
        "  tensors.safetensors  the same tensors, safetensors.numpy.load_file(...)[key] (bool stored as uint8)",
        "",
        "Units: distances and perturbations are ℓ2 norms in pixel space (inputs in [0, 1]); curvatures K in",
        "logit / pixel², normal curvatures κ = K/‖∇F‖ in 1 / pixel distance; rates and shares in [0, 1].",
        "",
        "Provenance",
    ]
    lines += [f"  {k}: {v}" for k, v in bundle.provenance.items()] or ["  (none recorded)"]
    lines += ["", "Tensors (key, shape, dtype, meaning, source)"]
    for t in bundle.tensors:
        lines.append(f"  {t.key}  {tuple(t.array.shape)}  {t.array.dtype}")
        if t.meaning:
            lines.append(f"      {t.meaning}")
        lines.append(f"      source: {t.source}")
    lines += ["", "Tables (tables/<name>.csv: columns)"]
    for tb in bundle.tables:
        lines.append(f"  {tb.name}.csv  {len(tb.rows)} rows: {', '.join(tb.columns)}")
    return "\n".join(lines) + "\n"


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "table"


def bundle_zip(bundle: DataBundle) -> bytes:
    """The bundle as a zip: ``README.txt``, ``numbers.json``, ``tables/<name>.csv``, ``tensors.npz``,
    ``tensors.safetensors`` (the tensor files only when there are tensors)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("README.txt", readme_text(bundle))
        zf.writestr("numbers.json", numbers_json(bundle))
        for tb in bundle.tables:
            zf.writestr(f"tables/{_safe_name(tb.name)}.csv", table_csv(tb))
        if bundle.tensors:
            zf.writestr("tensors.npz", _npz(bundle))
            zf.writestr("tensors.safetensors", _safetensors(bundle))
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ report
def report_command(argv: Sequence[str]) -> str:
    """The shell command line of ``boundary-atlas`` arguments (:func:`geometry.cli.options.report_argv`)."""
    return shlex.join(["boundary-atlas", *argv])


def report_zip(
    classifier: Classifier,
    data: ReportData,
    settings: ReportSettings,
    *,
    progress: ProgressFn | None = None,
    model_source: Mapping[str, Any] | None = None,
) -> bytes:
    """The report of ``classifier`` on ``data`` at ``settings`` as a zip (``report/index.html`` and its files):
    :func:`geometry.study.report.build_report` (the command line's computation, the pages' studies), written
    by :func:`geometry.output.report.write_report` into a temporary folder.

    ``progress(fraction, message)`` is called as the report computes. Raises the studies'
    :class:`~geometry.errors.AtlasError`.
    """
    from ..study.report import build_report
    from .report import write_report

    report = build_report(classifier, data, settings, progress=stage(progress, 0.0, 0.97), model_source=model_source)
    if progress is not None:
        progress(0.97, "writing the files")
    with tempfile.TemporaryDirectory(prefix="atlas-report-") as tmp:
        out = Path(tmp) / "report"
        write_report(report, out)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(out.rglob("*")):
                if f.is_file():
                    zf.write(f, f"report/{f.relative_to(out).as_posix()}")
    if progress is not None:
        progress(1.0, "done")
    return buf.getvalue()
