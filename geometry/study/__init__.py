"""The study layer: each figure's protocol, once, for the app, the command line and the docs.

Issue 10 (DESIGN §2, "The study layer"). The core modules compute one quantity each; a *study*
fixes the protocol of a figure — which points estimate a subspace and which are held out
(:func:`split_points`), the m grid (:func:`m_grid`), ξ (:func:`xi`, :data:`XI_DIVISOR`), the h
presets (:class:`HScale`, :func:`resolve_h`) — in a frozen settings dataclass with a stable
``.key()``, and one function per figure returns a typed result, cached in memory and on disk under
(network fingerprint, data fingerprints, settings key):

=======================  ==========================  =============================================
figure                   settings                    study
=======================  ==========================  =============================================
Fig. 7a curvature vs m   :class:`CurvatureSettings`  :func:`curvature_study`, :func:`study_subspaces`
Fig. 7b–9 universal      :class:`UniversalSettings`  :func:`universal_study`, :func:`universal_samples`,
                                                     :func:`fooling_curve`
Fig. 10, 13 compare      :class:`CompareSettings`    :func:`compare_study`, :func:`compare_angles`,
                                                     :func:`fooling_matrix`
Fig. 5 cross-section     :class:`SectionSettings`    :func:`section_study`
certified vs empirical   :class:`CertifySettings`    :func:`certify_study`, :func:`certified_section`
CURE Fig. 1–2 robust     :class:`RobustSettings`     :func:`robust_study`, :func:`point_study`
ensemble vs PGD          :class:`EnsembleSettings`   :func:`ensemble_study`
2-D lab (DESIGN §9)      :class:`LabSettings`        :func:`lab_study`, :func:`universal_panel`
Fig. 5 universal grid    —                           :func:`universal_sections`
NIPS'16 r_S vs m         :class:`ConstrainedSettings`  :func:`constrained_study`
AutoAttack-grade eval    ``RobustEvalSettings``      ``robusteval.robust_eval`` (docs/scripts/robust_eval.py)
the report (CLI, app)    ``ReportSettings``          ``report.build_report``
=======================  ==========================  =============================================

Every default of a protocol lives once, in its settings class: the pages build their widgets from
it and the command line takes its option defaults from it (tests/test_defaults.py,
tests/test_app_defaults.py). :mod:`geometry.study.readings` turns each result into the sentence it
supports (issue 23).

A new figure adds one settings class, one study function, one figure builder and one page function
— :mod:`geometry.study.constrained` is the smallest complete example (``ConstrainedSettings``,
``constrained_study``, :func:`geometry.plotting.constrained_ratio_figure`, ``constrained_section`` in
``pages/curvature.py``).
"""

from .cache import cached_result, cached_subspace, clear_memory, decode_result, encode_result
from .certify import (
    CertifiedSection,
    CertifySettings,
    CertifyStudy,
    certified_section,
    certify_study,
    lipschitz_study,
)
from .compare import compare_angles, compare_study, fooling_matrix
from .constrained import ConstrainedRatio, ConstrainedSettings, constrained_ratio, constrained_study
from .curvature import CurvatureStudy, curvature_study, estimation_deepfool, study_subspaces
from .fig5 import UniversalSections, universal_sections
from .noise import ResolvedH, noise_norm, resolve_h, xi
from .points import StudyPoints, choose_points, data_fingerprint, network_fingerprint, split_points
from .provenance import (
    RX_PROVENANCE,
    RX_PROVENANCE_BOX,
    BoxShare,
    box_excess,
    box_share_text,
    estimation_box_share,
    left_box,
    rx_provenance,
)
from .robust import (
    EnsembleSettings,
    EnsembleStudy,
    RobustSettings,
    RobustStudy,
    ensemble_study,
    point_study,
    robust_study,
)
from .sections import SECTION_DIRECTIONS, SectionSettings, SectionStudy, section_study
from .settings import (
    BOUNDARY_POINTS,
    CURVATURE_METHODS,
    H_PRESETS,
    NOISE_POINTS,
    NOISE_RANGE_FACTOR,
    PROTOCOL_VERSION,
    RX_LABELS,
    RX_PROTOCOLS,
    UAP_DELTA,
    XI_DIVISOR,
    XI_RATIO,
    CompareSettings,
    CurvatureSettings,
    HScale,
    PointSplit,
    UniversalSettings,
    m_grid,
)
from .toy2d import LabSettings, LabStudy, UniversalPanel, lab_study, universal_panel
from .universal import (
    UniversalSamples,
    UniversalStudy,
    fooling_curve,
    pushed_into,
    theorem_rows,
    universal_samples,
    universal_study,
)

__all__ = [
    "BOUNDARY_POINTS",
    "CURVATURE_METHODS",
    "H_PRESETS",
    "NOISE_POINTS",
    "NOISE_RANGE_FACTOR",
    "PROTOCOL_VERSION",
    "UAP_DELTA",
    "XI_DIVISOR",
    "XI_RATIO",
    "RX_PROTOCOLS",
    "RX_LABELS",
    "PointSplit",
    "HScale",
    "CurvatureSettings",
    "UniversalSettings",
    "CompareSettings",
    "m_grid",
    "StudyPoints",
    "split_points",
    "choose_points",
    "network_fingerprint",
    "RX_PROVENANCE",
    "RX_PROVENANCE_BOX",
    "rx_provenance",
    "BoxShare",
    "box_excess",
    "box_share_text",
    "estimation_box_share",
    "left_box",
    "data_fingerprint",
    "cached_subspace",
    "cached_result",
    "clear_memory",
    "encode_result",
    "decode_result",
    "noise_norm",
    "xi",
    "ResolvedH",
    "resolve_h",
    "CurvatureStudy",
    "curvature_study",
    "study_subspaces",
    "estimation_deepfool",
    "UniversalStudy",
    "universal_study",
    "fooling_curve",
    "theorem_rows",
    "UniversalSamples",
    "universal_samples",
    "pushed_into",
    "compare_study",
    "compare_angles",
    "fooling_matrix",
    "SECTION_DIRECTIONS",
    "SectionSettings",
    "SectionStudy",
    "section_study",
    "RobustSettings",
    "RobustStudy",
    "robust_study",
    "point_study",
    "EnsembleSettings",
    "EnsembleStudy",
    "ensemble_study",
    "CertifySettings",
    "CertifyStudy",
    "CertifiedSection",
    "certify_study",
    "certified_section",
    "lipschitz_study",
    "LabSettings",
    "LabStudy",
    "UniversalPanel",
    "lab_study",
    "universal_panel",
    "UniversalSections",
    "universal_sections",
    "ConstrainedRatio",
    "constrained_ratio",
    "ConstrainedSettings",
    "constrained_study",
]
