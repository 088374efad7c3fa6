"""Presentation: the Plotly figure builders of the app and the command line's report.

One package for every figure: ``figures`` (the paper's figures), ``toy2d``, ``robust``, ``certify``,
``constrained``, ``sections_grid`` (one module per page family), ``theme`` (the registered ``atlas``
Plotly template and the named colours) and ``layout`` (the one post-pass, :func:`finish`: template,
then the title / axis-title / legend wrapping a template cannot express). Builders take result objects
of :mod:`geometry.study` / the core modules and return a finished ``go.Figure``; they never compute
geometry. Import them from here: ``from geometry.plotting import section_figure, narrow``.
"""

from .certify import (
    accuracy_vs_eps_figure,
    certificate_ladder_figure,
    certified_scatter_figure,
    certified_section_figure,
    ladder_accuracy_figure,
    layer_norms_figure,
    radius_ratio_figure,
)
from .constrained import constrained_ratio_figure
from .figures import (
    boundary_segments,
    curvature_vs_m_figure,
    fooling_rate_vs_m_figure,
    inner_product_figure,
    norm_histogram_figure,
    perturbation_display,
    principal_angles_figure,
    ritz_figure,
    section_figure,
    to_display_image,
    transfer_matrix_figure,
    universal_gallery_figure,
    with_click_targets,
)
from .layout import finish, narrow, presented, scaled, wrap_text
from .robust import curvature_profile_figure, finite_difference_figure, loss_along_figure, robust_accuracy_figure
from .sections_grid import section_grid_figure
from .theme import CLASS_COLORS, PRESENT_SCALE, SUBSPACE_COLORS, TEMPLATE
from .toy2d import lab_figure, ladder_figure, universal_figure

__all__ = [
    "CLASS_COLORS",
    "PRESENT_SCALE",
    "SUBSPACE_COLORS",
    "TEMPLATE",
    "accuracy_vs_eps_figure",
    "certificate_ladder_figure",
    "ladder_accuracy_figure",
    "boundary_segments",
    "certified_scatter_figure",
    "certified_section_figure",
    "constrained_ratio_figure",
    "curvature_profile_figure",
    "curvature_vs_m_figure",
    "finish",
    "finite_difference_figure",
    "fooling_rate_vs_m_figure",
    "inner_product_figure",
    "lab_figure",
    "ladder_figure",
    "layer_norms_figure",
    "loss_along_figure",
    "narrow",
    "norm_histogram_figure",
    "perturbation_display",
    "principal_angles_figure",
    "radius_ratio_figure",
    "ritz_figure",
    "presented",
    "scaled",
    "robust_accuracy_figure",
    "section_figure",
    "section_grid_figure",
    "to_display_image",
    "transfer_matrix_figure",
    "universal_figure",
    "universal_gallery_figure",
    "with_click_targets",
    "wrap_text",
]
