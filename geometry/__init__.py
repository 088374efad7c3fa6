"""Boundary Atlas: the geometry of deep classifiers' decision boundaries (pure torch / numpy / scipy).

The public API, re-exported from the modules that define it::

    from geometry import load_model, load_dataset, deepfool, curved_subspace, normal_section

==================  ===================================================================
module              what it holds
==================  ===================================================================
``classifier``      :class:`Classifier` (model + input shape + bounds + normalisation)
``architectures``   the network classes, one registry and one builder
``data``            datasets as pixel-space tensors (one module per source)
``zoo``             named networks with training recipes, trained on demand, cached
``loading``         a user's model file as a validated :class:`Classifier` (one module per format)
``deepfool``        r(x), minimal perturbations
``hessian``         boundary function F, :class:`CurvatureEstimator`, Hessian-vector products, Lanczos
``curvature``       S_c, S_f, curvature along directions, K_S versus m
``sections``        normal cross-sections
``universal``       universal perturbations, fooling rates, random-noise norms
``subspaces``       :class:`Subspace`, principal angles, random subspaces and baselines
``theory``          Theorem 1 / 2 bounds
``compare``         two networks: shared subspaces, transfer of perturbations
``attacks``         PGD, box-constrained DeepFool, FMN, the distance to the boundary
``autoattack``      robust accuracy from AutoAttack's ensemble
``minimal``         minimal perturbations: the best of an attack ensemble
``masking``         gradient-masking flags
``certify``         Lipschitz-margin certificates (``lipschitz``: the bounds)
``crown``           local certificates by linear bound propagation (CROWN)
``profile``         curvature profiles of the loss
``toy2d``           toy data and models in the plane
``regions2d``       linear regions of a 2-D ReLU net, the exact distance to its boundary
==================  ===================================================================

Above these: :mod:`geometry.study` (every figure's protocol and default), :mod:`geometry.plotting`,
:mod:`geometry.output`, :mod:`geometry.runtime` and :mod:`geometry.cli` (README "Layout"; the layers
are checked by tests/test_layers.py).

``geometry.deepfool`` is the *function* (the module stays importable as
``from geometry.deepfool import …``).
"""

from __future__ import annotations

from .architectures import ARCHITECTURES, architecture_names, build_architecture
from .attacks import BoundaryDistance, PGDResult, RobustAccuracy, boundary_distance, pgd, robust_accuracy
from .classifier import Classifier, make_classifier
from .compare import (
    NetworkComparison,
    SubspaceComparison,
    TransferMatrix,
    TransferSections,
    compare_bases,
    compare_subspaces,
    transfer_matrix,
    transfer_sections,
)
from .curvature import (
    CurvatureAlong,
    CurvatureCurve,
    Subspace,
    average_curvature,
    curvature_along,
    curved_subspace,
    flat_subspace,
    load_subspace,
    save_subspace,
)
from .data import DATASETS, Dataset, load_dataset, load_npz, load_zip_upload
from .deepfool import DeepFoolResult, deepfool, rho_adv
from .errors import AtlasError, DatasetNotFoundError, InvalidInputError, ModelLoadError, UnknownNameError
from .hessian import (
    BoundaryGradient,
    CurvatureEstimator,
    HVPResult,
    boundary_function,
    boundary_gradient,
    default_beta,
    default_h,
    hvp,
    smooth_twin,
)
from .loading import FORMATS, detect_format, load_classifier, validate_classifier
from .profile import CurvatureProfile, curvature_profile, finite_difference_curvature, loss_along
from .sections import Section, normal_section, random_direction
from .subspaces import RandomBaseline, principal_angles, random_baseline, random_subspace
from .theory import normal_fit_xi, theorem1_norm, theorem2_kappa, theorem2_norm
from .universal import (
    FoolingCurve,
    NoiseNormResult,
    UniversalResult,
    fooling_rate,
    fooling_rate_vs_m,
    fooling_rates,
    project_lp,
    random_noise_norm,
    sample_subspace,
    universal_perturbation,
)
from .zoo import ZOO, load_model, model_names

__all__ = [
    # errors
    "AtlasError",
    "UnknownNameError",
    "DatasetNotFoundError",
    "InvalidInputError",
    "ModelLoadError",
    # classifiers, architectures, data, networks
    "Classifier",
    "make_classifier",
    "ARCHITECTURES",
    "architecture_names",
    "build_architecture",
    "DATASETS",
    "Dataset",
    "load_dataset",
    "load_npz",
    "load_zip_upload",
    "ZOO",
    "load_model",
    "model_names",
    "FORMATS",
    "detect_format",
    "load_classifier",
    "validate_classifier",
    # DeepFool, boundary function, Hessians
    "DeepFoolResult",
    "deepfool",
    "rho_adv",
    # robustness (issue 11)
    "PGDResult",
    "RobustAccuracy",
    "BoundaryDistance",
    "pgd",
    "robust_accuracy",
    "boundary_distance",
    "CurvatureProfile",
    "curvature_profile",
    "finite_difference_curvature",
    "loss_along",
    "BoundaryGradient",
    "HVPResult",
    "boundary_function",
    "boundary_gradient",
    "default_beta",
    "default_h",
    "CurvatureEstimator",
    "hvp",
    "smooth_twin",
    # curvature and subspaces
    "Subspace",
    "CurvatureAlong",
    "CurvatureCurve",
    "curved_subspace",
    "flat_subspace",
    "curvature_along",
    "average_curvature",
    "random_subspace",
    "save_subspace",
    "load_subspace",
    "RandomBaseline",
    "principal_angles",
    "random_baseline",
    # cross-sections
    "Section",
    "normal_section",
    "random_direction",
    # universal perturbations
    "UniversalResult",
    "universal_perturbation",
    "fooling_rate",
    "fooling_rates",
    "NoiseNormResult",
    "random_noise_norm",
    "sample_subspace",
    "FoolingCurve",
    "fooling_rate_vs_m",
    "project_lp",
    # theory
    "theorem1_norm",
    "theorem2_norm",
    "theorem2_kappa",
    "normal_fit_xi",
    # two networks
    "SubspaceComparison",
    "NetworkComparison",
    "TransferSections",
    "TransferMatrix",
    "compare_bases",
    "compare_subspaces",
    "transfer_sections",
    "transfer_matrix",
]
