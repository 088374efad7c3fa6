"""One home for every default (issue 19, item 1): the study settings classes hold each default once; the
command line reads its option defaults from them.

:func:`class_defaults` walks every field of every settings class ({class: {field path: default}}, nested
settings flattened as ``"points.n_estimate"``); :data:`CLI` maps the field paths a sub-command exposes to its
option's ``dest``, and :data:`UNEXPOSED` lists, with the reason, every field the command line deliberately
does not expose. A page-default check goes beside :func:`test_cli_defaults_are_the_class_defaults` (a map
{class: {field path: widget key}} against the same :func:`class_defaults`).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any

import pytest

import geometry.study
from geometry.cli import commands
from geometry.cli.options import curvature_settings, report_settings
from geometry.study import (
    CertifySettings,
    CompareSettings,
    ConstrainedSettings,
    CurvatureSettings,
    EnsembleSettings,
    HScale,
    LabSettings,
    PointSplit,
    RobustSettings,
    SectionSettings,
    UniversalSettings,
)
from geometry.study.report import ReportSettings
from geometry.study.settings import _Settings

#: Every settings class of geometry/study/ (test_every_settings_class_is_walked checks none is missing).
SETTINGS_CLASSES = (
    PointSplit,
    HScale,
    CurvatureSettings,
    UniversalSettings,
    CompareSettings,
    SectionSettings,
    RobustSettings,
    EnsembleSettings,
    CertifySettings,
    LabSettings,
    ConstrainedSettings,
    ReportSettings,
)

_POINTS = {"points.n_estimate": "n_points", "points.n_heldout": "n_heldout", "points.seed": "seed"}
_CURVATURE = {
    **_POINTS,
    "m_max": "m",
    "method": "method",
    "scale.preset": "h_preset",
    "scale.value": "h",
    "scale.noise_share": "h_noise_share",
    "scale.xi_factor": "h_xi_factor",
    "beta": "beta",
    "point": "point",
    "n_directions": "n_directions",
    "rx": "rx",
}

#: sub-command → (the shortest argv of it, the settings class it builds, {field path: option dest}).
CLI: dict[str, tuple[list[str], type, dict[str, str]]] = {
    "report": (
        ["report", "--zoo", "digits-lenet", "--out", "report"],
        ReportSettings,
        {
            **{f"curvature.{k}": v for k, v in _CURVATURE.items()},
            "share": "noise_share",
            "n_samples": "n_samples",
            "xi_ratio": "xi_ratio",
            "sections": "sections",
            "resolution": "resolution",
            "extent_factor": "extent",
        },
    ),
    "study": (["study", "curvature", "--zoo", "digits-lenet", "--out", "study"], CurvatureSettings, _CURVATURE),
    "robust": (
        ["robust", "--zoo", "digits-lenet", "--out", "robust"],
        RobustSettings,
        {"n_points": "n_points", "pgd_steps": "pgd_steps", "restarts": "restarts", "k": "k", "h": "h", "seed": "seed"},
    ),
    "robust (ensemble)": (
        ["robust", "--zoo", "digits-lenet", "--out", "robust"],
        EnsembleSettings,
        {"n_points": "ensemble_points", "square_queries": "square_queries"},
    ),
}

_NO_COMMAND = "no sub-command computes this page's study"
#: class → {field path: why the command line does not expose it}; "*" = every field of the class.
UNEXPOSED: dict[type, dict[str, str]] = {
    PointSplit: {"*": "exposed as CurvatureSettings.points (--n-points, --n-heldout, --seed)"},
    HScale: {"*": "exposed as CurvatureSettings.scale (--h-preset, --h, --h-noise-share, --h-xi-factor)"},
    CurvatureSettings: {
        "tangent": "always projected on the tangent space (the paper's protocol; no page widget either)",
        "points.n_uap": "the curvature study runs no UAP algorithm",
    },
    ReportSettings: {
        "curvature.tangent": "always projected on the tangent space (the paper's protocol)",
        "curvature.points.n_uap": "a report runs no UAP algorithm",
    },
    UniversalSettings: {"*": _NO_COMMAND + " (the report's fooling curve takes its share and samples)"},
    CompareSettings: {"*": _NO_COMMAND},
    SectionSettings: {"*": "the report's sections: --resolution, --extent; v random, seeded by --seed"},
    RobustSettings: {
        "eps": "its default follows the input size (DEFAULT_EPS) on the page and in `robust`; --eps sets it",
        "fmn_max_stepsize": "follows the input size (fmn_stepsize), on the page and in `robust` alike",
        "attacks": "the minimal-norm ensemble (all four; no page widget either)",
        "fmn_steps": "FMN's budget (no page widget either)",
        "eps_factors": "the robust-accuracy curve's multiples of ε (no page widget either)",
    },
    EnsembleSettings: {"attacks": "AutoAttack's APGD-CE, APGD-T, Square (no page widget either)"},
    CertifySettings: {"*": _NO_COMMAND},
    LabSettings: {"*": _NO_COMMAND + " (toy 2-D networks)"},
    ConstrainedSettings: {"*": _NO_COMMAND + " (the Curvature page's constrained-DeepFool section)"},
}


def _flatten(settings: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, _Settings):
            out.update(_flatten(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = value
    return out


def class_defaults() -> dict[type, dict[str, Any]]:
    """{settings class: {field path: default}} of every settings class, read from the class itself (an
    instance with every field at its default; nested settings flattened as ``"points.n_estimate"``)."""
    return {cls: _flatten(cls()) for cls in SETTINGS_CLASSES}


def _cli_defaults(command: str) -> dict[str, Any]:
    argv, _, fields = CLI[command]
    args = commands.build_parser().parse_args(argv)
    return {path: getattr(args, dest) for path, dest in fields.items()}


def test_every_settings_class_is_walked():
    found = set()
    for info in pkgutil.iter_modules(geometry.study.__path__):
        module = importlib.import_module(f"geometry.study.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, _Settings) and dataclasses.is_dataclass(obj):
                found.add(obj)
    assert found == set(SETTINGS_CLASSES)


@pytest.mark.parametrize("cls", SETTINGS_CLASSES, ids=lambda c: c.__name__)
def test_every_field_is_exposed_or_listed_as_unexposed(cls):
    fields = set(class_defaults()[cls])
    exposed = {path for _, built, paths in CLI.values() if built is cls for path in paths}
    unexposed = UNEXPOSED.get(cls, {})
    if "*" in unexposed:
        assert not exposed and len(unexposed) == 1
        return
    assert exposed <= fields, exposed - fields  # no option maps to a field that does not exist
    assert not exposed & set(unexposed)
    assert exposed | set(unexposed) == fields, fields - exposed - set(unexposed)


@pytest.mark.parametrize("command", sorted(CLI))
def test_cli_defaults_are_the_class_defaults(command):
    _, cls, _ = CLI[command]
    defaults = class_defaults()[cls]
    cli = _cli_defaults(command)
    assert cli == {path: defaults[path] for path in cli}


def test_a_bare_command_builds_the_default_settings():
    parser = commands.build_parser()
    report_args = parser.parse_args(CLI["report"][0])
    assert report_settings(report_args, parser) == ReportSettings()
    study_args = parser.parse_args(CLI["study"][0])
    assert curvature_settings(study_args, parser) == CurvatureSettings()


def test_the_report_borrows_its_defaults_from_the_pages_classes():
    d = class_defaults()
    assert _flatten(ReportSettings().curvature) == d[CurvatureSettings]
    assert d[ReportSettings]["share"] == d[UniversalSettings]["share"]
    assert d[ReportSettings]["n_samples"] == d[UniversalSettings]["n_samples"]
    assert d[ReportSettings]["xi_ratio"] == d[UniversalSettings]["xi_ratio"]
    assert d[ReportSettings]["resolution"] == d[SectionSettings]["resolution"]
    assert d[ReportSettings]["extent_factor"] == d[SectionSettings]["extent_factor"]


def test_where_app_and_cli_disagreed_the_class_holds_the_apps_value():
    """Issue 19: curvature's h = ξ (app) vs the authors' h (report); the Universal page's 80 % vs
    --noise-share 0.5; 50 held-out points vs 100; Compare's 'xi' meaning ξ/2; sections at 256 vs 200 / 128."""
    d = class_defaults()
    assert d[CurvatureSettings]["scale.preset"] == "xi" and d[CurvatureSettings]["scale.xi_factor"] == 1.0
    assert d[UniversalSettings]["share"] == d[UniversalSettings]["scale.noise_share"] == 0.8
    assert d[CurvatureSettings]["points.n_heldout"] == 50
    assert d[CompareSettings]["scale.preset"] == "authors"  # the Compare page's default
    assert CompareSettings.half_xi().xi_factor == 0.5 and CompareSettings.half_xi().label.startswith("h = ξ/2")
    assert HScale("xi").label.startswith("h = ξ (")
    assert d[SectionSettings]["resolution"] == 256
