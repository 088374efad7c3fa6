"""The page half of "one home for every default" (issue 19, item 2): every setting a page exposes has
the settings class's default, and a page at its defaults builds exactly the class's default settings
(so the page, the CLI and the docs scripts compute the same result). The CLI half: tests/test_defaults.py."""

from __future__ import annotations

from test_defaults import class_defaults

from geometry.study import XI_RATIO, CompareSettings, CurvatureSettings, UniversalSettings
from geometry.study.report import ReportSettings
from pages.ui.state import CompareView, CurvatureView, UniversalView

#: page view → {query key: the settings field it sets (a path of class_defaults()), or a conversion}
EXPOSED = {
    CurvatureView: (
        CurvatureSettings,
        {
            "cv_n": "points.n_estimate",
            "cv_m": "m_max",
            "cv_method": "method",
            "cv_point": "point",
            "cv_scale": "scale.preset",
            "cv_heldout": "points.n_heldout",
            "cv_rx": "rx",
        },
    ),
    UniversalView: (
        UniversalSettings,
        {
            "uv_n": "points.n_estimate",
            "uv_m": "m_max",
            "uv_samples": "n_samples",
            "uv_scale": "scale.preset",
            "uv_heldout": "points.n_heldout",
            "uv_uap": "points.n_uap",
            "uv_rx": "rx",
        },
    ),
    CompareView: (CompareSettings, {"cmp_n": "points.n_estimate", "cmp_scale": "scale.preset"}),
}


def test_page_defaults_are_the_settings_classes_defaults():
    defaults = class_defaults()
    for view, (cls, fields) in EXPOSED.items():
        for key, path in fields.items():
            assert view.DEFAULTS[key] == defaults[cls][path], (view.__name__, key, path)
    # the share is a percentage on the page, a fraction in the class
    assert UniversalView.DEFAULTS["uv_share"] / 100 == defaults[UniversalSettings]["share"]
    # ξ / ‖x‖: an option key on the page ("noise" for None), a number in the class; the report's is the same
    # field (issue 23, item 3: the page and the report use one default ξ)
    xi = UniversalView.DEFAULTS["uv_xi"]
    assert xi != "noise" and float(xi) == defaults[UniversalSettings]["xi_ratio"] == XI_RATIO == 0.04
    assert ReportSettings().xi_ratio == defaults[UniversalSettings]["xi_ratio"]


def _view(view, **extra):
    """The view with every widget at its default (keys without the page's prefix)."""
    d = {k.split("_", 1)[1]: v for k, v in view.DEFAULTS.items()}
    return view(**{**d, **extra})


def test_a_page_at_its_defaults_builds_the_class_default_settings():
    h = 0.123  # the authors' h of some network: unused by the default presets
    cv = _view(CurvatureView, h=h)
    assert cv.settings() == CurvatureSettings() and cv.settings().key() == CurvatureSettings().key()
    d = UniversalView.DEFAULTS
    uv = UniversalView(
        n=d["uv_n"],
        m=d["uv_m"],
        samples=d["uv_samples"],
        share_pct=d["uv_share"],
        scale=d["uv_scale"],
        h=h,
        heldout=d["uv_heldout"],
        uap=d["uv_uap"],
    )
    assert uv.settings() == UniversalSettings()
    c = CompareView.DEFAULTS
    cmp_ = CompareView(
        a="digits-lenet",
        b="digits-nin",
        m=c["cmp_m"],
        n=c["cmp_n"],
        scale=c["cmp_scale"],
        h=h,
        k=c["cmp_k"],
        seed=c["cmp_seed"],
        resolution=c["cmp_res"],
        noise_share=c["cmp_share"],
        vectors=c["cmp_vectors"],
        nets=(),
    )
    assert cmp_.settings() == CompareSettings()


def test_the_robust_pages_ensemble_points_are_the_settings_default():
    """Issue 21: the Robust page's ensemble slider starts at EnsembleSettings' n_points and, at its defaults,
    the page builds exactly the class's default ensemble settings."""
    from geometry.study import EnsembleSettings
    from pages.ui.robust_views import RobustView

    view = RobustView(nets=(), n=50, eps=0.1, h=0.5, steps=20, seed=0, extent=3.0)
    assert view.ens_n == class_defaults()[EnsembleSettings]["n_points"]
    assert view.ensemble_settings() == EnsembleSettings()
