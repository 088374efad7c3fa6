"""Every parameter path clamps or explains (issue 9, part 6).

* App: a link's query value for any widget of any page is validated when it is read
  (``pages.ui.state.coerce`` through ``param`` / ``init_state``): out-of-range numbers are clamped into
  the widget's bounds, NaN / inf / empty / non-numeric values and unknown options fall back to the
  default. Each page is driven with AppTest with such values for each of its query keys; no run may
  end in an exception and every widget must hold a value within its bounds. The measured faults:
  ``?extent=1e9``, ``-5``, ``inf`` on Cross-sections and ``?cv_n=-5`` on Curvature vs m.
* CLI: ``boundary-atlas report`` refuses sizes over their limits (``--resolution 100000``, …) with
  exit status 2 and one line on stderr, before any model is loaded.
* API: ``normal_section`` refuses a huge resolution with InvalidInputError before allocating.

To keep the runs short, the pages' heavy computations are replaced by a stub that raises an
AtlasError (shown as a message) wherever the values under test would otherwise ask for the largest
computations (n = 500, m = 50, …): the widgets are all drawn before it. Widgets drawn only after the
computation (Universal: gallery m; Compare: direction, seed, resolution, share, vectors, networks)
are driven with real, small computations.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 400  # a first run trains digits-lenet (and digits-nin for Compare) on a busy 2-core machine
if str(ROOT) not in sys.path:  # the app imports pages.ui.state etc. from the repository root; so do we (stubs)
    sys.path.insert(0, str(ROOT))

from pagenav import switch_page  # noqa: E402

from pages.ui import cached as _cached  # noqa: E402
from pages.ui import state as _state  # noqa: E402

HOME, SECTIONS, CURVATURE, UNIVERSAL, COMPARE = (
    f"pages/{p}.py" for p in ("home", "cross_sections", "curvature", "universal", "compare")
)
#: out of range (both sides), negative, NaN, ±inf, huge (1e308, 10**30), empty, non-numeric, off-grid
BAD = ["-5", "1e9", "nan", "inf", "-inf", "1e308", str(10**30), "", "abc", "2.5"]
STUB = "stubbed: computation skipped by tests/test_params.py"

CURVATURE_KEYS = {
    "cv_n": (10, 500),
    "cv_m": (2, 50),
    "cv_method": list(_state.CURVATURE_METHODS),
    "cv_scale": ["authors", "xi", "custom"],
    "cv_h": (1e-3, 100.0),
    "cv_point": list(_state.CURVATURE_POINTS),
    "cv_heldout": (1, 10_000),
}
#: page → {query key: (min, max) or the list of options} — the bounds of each key's widget
KEYS = {
    HOME: {"i": (0, 399), "model": None, "dataset": ["digits", "mnist", "cifar10"]},  # model: a zoo name
    SECTIONS: {
        "seed": (0, 10_000),
        "extent": (1.0, 20.0),
        "res": [64, 128, 256],
        "dir": ["random", "sc", "sc_mix", "sf"],
        "vec": (1, 50),
        "sub_m": (1, 50),
        **CURVATURE_KEYS,
    },
    CURVATURE: CURVATURE_KEYS,
    UNIVERSAL: {
        "uv_n": (10, 500),
        "uv_m": (2, 50),
        "uv_samples": (1, 50),
        "uv_share": [50, 80],
        "uv_scale": ["authors", "xi", "custom"],
        "uv_h": (1e-3, 100.0),
        "uv_heldout": (10, 10_000),
        "uv_uap": (10, 10_000),
    },
    COMPARE: {
        "cmp_a": None,
        "cmp_b": None,
        "cmp_m": (1, 20),
        "cmp_n": (20, 500),
        "cmp_scale": ["authors", "xi", "custom"],
        "cmp_h": (1e-3, 100.0),
    },
}
#: keys whose widgets come after the page's computation (real, small computations)
LATE = {
    UNIVERSAL: {"uv_gm": [0, 1, 2, 3, 4]},
    COMPARE: {
        "cmp_k": (1, 20),
        "cmp_seed": (0, 10_000),
        "cmp_res": [64, 128, 256],
        "cmp_share": [0.5, 0.8, 0.9],
        "cmp_vectors": (1, 100),
        "cmp_nets": None,
    },
}
SMALL = {UNIVERSAL: dict(uv_n=20, uv_m=4, uv_samples=2, uv_heldout=120, uv_uap=120), COMPARE: dict(cmp_n=20, cmp_m=4)}
#: what each page's stub replaces in pages.ui.cached (None: the page is cheap at any valid value): the page's
#: first heavy call, made after all the widgets above it are drawn.
HEAVY = {
    HOME: None,
    SECTIONS: None,
    CURVATURE: "curvature_study",
    UNIVERSAL: "noise_norm",
    COMPARE: "compare_study_or_ready",
}


# ------------------------------------------------------------------------------------------- helpers
def run_page(page: str, query: dict) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in query.items():
        at.query_params[k] = str(v)
    at.run()
    if page != HOME:
        switch_page(at, page)
        at.run()
    return at


def assert_widgets_valid(at: AppTest) -> None:
    """No exception, and every widget drawn holds a value its widget accepts."""
    assert not at.exception, [e.value for e in at.exception]
    for w in [*at.slider, *at.number_input]:
        assert w.min <= w.value <= w.max, (w.key, w.value, w.min, w.max)
        assert not (isinstance(w.value, float) and math.isnan(w.value)), w.key
    for w in [*at.selectbox, *at.radio]:
        assert w.index is not None, (w.key, w.value)  # the value is one of the options
    for w in at.select_slider:
        assert str(w.value) in w.options, (w.key, w.value, w.options)


def assert_in_bounds(at: AppTest, keys: dict) -> None:
    """Each key's session value (the widget's value; URL-only keys have no widget) is within its bounds."""
    from geometry import zoo

    for key, bounds in keys.items():
        if key not in at.session_state:  # a widget not drawn in this view (e.g. vec when v is random)
            continue
        value = at.session_state[key]
        if bounds is None:
            names = value if isinstance(value, list) else [value]  # cmp_nets: a list of networks
            assert all(name in zoo.ZOO for name in names), (key, value)
        elif isinstance(bounds, list):
            assert value in bounds, (key, value)
        else:
            lo, hi = bounds
            assert isinstance(value, (int, float)) and lo <= value <= hi, (key, value)


@pytest.fixture
def stub_heavy(monkeypatch):
    """``stub_heavy(page)`` replaces the call that starts the page's computation by one raising an
    AtlasError (the page shows it as a message and stops computing)."""
    from geometry.errors import AtlasError

    def stub(*args, **kwargs):
        raise AtlasError(STUB)

    def apply(page: str) -> None:
        if HEAVY[page]:
            monkeypatch.setattr(_cached, HEAVY[page], stub)

    return apply


# ------------------------------------------------------------------------------------------- the helper
@settings(max_examples=200, deadline=None)
@given(
    raw=hs.one_of(
        hs.none(),
        hs.text(max_size=12),
        hs.integers(-(10**40), 10**40).map(str),
        hs.floats(allow_nan=True, allow_infinity=True).map(repr),
    )
)
def test_coerce_always_gives_a_value_the_widget_accepts(raw):
    value = _state.coerce(raw, 3.0, float, min_value=1.0, max_value=20.0, step=0.5)
    assert isinstance(value, float) and 1.0 <= value <= 20.0 and (value * 2).is_integer()
    value = _state.coerce(raw, 100, int, **_state.CV_N)
    assert type(value) is int and 10 <= value <= 500 and value % 10 == 0
    assert _state.coerce(raw, 256, int, options=[64, 128, 256]) in (64, 128, 256)
    assert _state.coerce(raw, "random", options=["random", "sc"]) in ("random", "sc")


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("1e9", 20.0),
        ("-5", 1.0),
        ("inf", 3.0),
        ("-inf", 3.0),
        ("nan", 3.0),
        ("", 3.0),
        ("abc", 3.0),
        ("1e308", 20.0),
        (str(10**30), 20.0),
        ("7.5", 7.5),
        ("7.7", 7.5),
        ("4", 4.0),
        (None, 3.0),
    ],
)
def test_coerce_clamps_numbers_and_falls_back_on_the_rest(raw, expected):
    assert _state.coerce(raw, 3.0, float, min_value=1.0, max_value=20.0, step=0.5) == expected


def test_coerce_keeps_valid_values():
    assert _state.coerce("130", 100, int, **_state.CV_N) == 130
    assert _state.coerce("0.0123", 0.1, float, **_state.H_INPUT) == 0.0123
    assert _state.coerce("sc", "random", options=["random", "sc"]) == "sc"
    assert _state.coerce("80", 50, int, options=[50, 80]) == 80


# ------------------------------------------------------------------------------------------- the pages
@pytest.mark.parametrize(
    "page, key, raw, expected",
    [
        (SECTIONS, "extent", "1e9", 20.0),
        (SECTIONS, "extent", "-5", 1.0),
        (SECTIONS, "extent", "inf", 3.0),
        (CURVATURE, "cv_n", "-5", 10),
    ],
)
def test_the_measured_faults_now_clamp(page, key, raw, expected):
    """The cases of the issue, with the page's real computation (small settings)."""
    small = {SECTIONS: dict(res=64), CURVATURE: dict(cv_m=3, cv_heldout=20)}[page]
    at = run_page(page, {**small, key: raw})
    assert_widgets_valid(at)
    assert not at.error, [e.value for e in at.error]
    assert at.slider(key=key).value == expected
    # the widget is bound to the URL (bind="query-params"): Streamlit drops the refused raw value from the link
    # rather than keep a value the page does not show
    assert at.query_params.get(key) in (None, str(expected), [str(expected)])
    assert len(at.get("plotly_chart")) >= 1


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("page", [HOME, SECTIONS, CURVATURE, UNIVERSAL, COMPARE])
def test_every_query_key_of_every_page_survives_a_bad_value(page, bad, stub_heavy):
    """All of the page's query keys (and the sidebar's) hold the bad value at once."""
    stub_heavy(page)
    keys = {**KEYS[HOME], **KEYS[page]}
    at = run_page(page, {key: bad for key in keys})
    assert_widgets_valid(at)
    assert_in_bounds(at, keys)
    if HEAVY[page]:  # every widget before the computation was drawn
        assert STUB in " ".join(e.value for e in at.error)


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("page", [UNIVERSAL, COMPARE])
def test_widgets_after_the_computation_survive_a_bad_value(page, bad):
    at = run_page(page, {**SMALL[page], **{key: bad for key in LATE[page]}})
    assert_widgets_valid(at)
    assert not at.error, [e.value for e in at.error]
    assert_in_bounds(at, LATE[page])
    for key in LATE[page]:
        assert key in at.session_state  # drawn


# ------------------------------------------------------------------------------------------- the CLI
@pytest.mark.parametrize(
    "argv, limit",
    [
        (["--resolution", "100000"], "at most 4,096 (grid points per axis), got 100000"),
        (["--resolution", "1"], "expected an integer ≥ 2"),
        (["--n-points", str(10**30)], "at most 100,000 (points)"),
        (["--n-points", "-5"], "expected a positive integer (points), got -5"),
        (["--m", "1000000"], "at most 1,000 (subspace dimensions)"),
        (["--sections", "1e9"], "expected an integer, got '1e9'"),
        (["--sections", "101"], "at most 100 (cross-sections)"),
        (["--n-directions", "1e308"], "expected an integer, got '1e308'"),
        (["--n-directions", "5000"], "at most 1,000 (random directions per m)"),
        (["--n-samples", "5000"], "at most 1,000 (random vectors per m)"),
        (["--seed", str(10**30)], "at most 9,223,372,036,854,775,807 (a seed)"),
        (["--seed", "-1"], "expected an integer ≥ 0 (a seed), got -1"),
        (["--n-heldout", str(10**30)], "at most 100,000 (points)"),
    ],
)
def test_cli_sizes_are_checked_before_anything_runs(argv, limit, tmp_path, capsys, monkeypatch):
    from geometry.cli import commands as cli

    def started(*args, **kwargs):
        raise AssertionError("the report started before its arguments were checked")

    monkeypatch.setattr(cli, "_cmd_report", started)
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as exc:
        cli.main(["report", "--zoo", "digits-lenet", "--out", str(tmp_path / "r"), *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("boundary-atlas report: error: argument "), err
    assert limit in err, err
    assert time.perf_counter() - t0 < 5
    assert not (tmp_path / "r").exists()


def test_cli_limits_agree_with_the_backend():
    from geometry import sections
    from geometry.cli import options
    from geometry.study import PointSplit

    assert options.MAX_RESOLUTION == sections.MAX_RESOLUTION
    assert options.SEED_RANGE[0] == 0
    PointSplit(seed=options.SEED_RANGE[1])  # the largest seed the command line takes is a valid one


# ------------------------------------------------------------------------------------------- the API
@pytest.mark.parametrize("resolution", [100_000, (2, 10**9), (10**30, 4), (float("inf"), 4)])
def test_normal_section_refuses_a_huge_resolution_before_allocating(resolution):
    import torch

    from geometry.errors import InvalidInputError
    from geometry.sections import MAX_RESOLUTION, normal_section
    from geometry.testing import affine_classifier

    shape = (1, 2, 2)
    W = torch.tensor([[1.0, 0.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    clf = affine_classifier(W, torch.tensor([-0.5, 0.5], dtype=torch.float64), input_shape=shape)
    x = torch.zeros(shape, dtype=torch.float64)
    r = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64).reshape(shape)
    v = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64).reshape(shape)
    t0 = time.perf_counter()
    with pytest.raises(InvalidInputError, match="resolution"):
        normal_section(clf, x, r, v, resolution=resolution)
    assert time.perf_counter() - t0 < 1
    assert MAX_RESOLUTION == 4096
    normal_section(clf, x, r, v, resolution=(MAX_RESOLUTION, 2))  # the limit itself is allowed
