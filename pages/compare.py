"""Compare networks: is the curved subspace S_c shared across networks (paper ICLR 2018 §5, Fig. 10),
and does it transfer (Appendix C.2, Fig. 13)?"""

from __future__ import annotations

import math

import streamlit as st

from geometry.compare import RANDOM_ROW, compare_bases, compare_subspaces, transfer_matrix, transfer_sections
from geometry.hessian import default_h
from geometry.plotting import principal_angles_figure, section_figure, transfer_matrix_figure
from pages import common

M_ESTIMATED = 20  # S_c / S_f are estimated with 20 directions (the Curvature page's default: shared disk cache)
N_HELDOUT = 200  # held-out test points for the fooling rates (and for the random-noise norm)
N_BASELINE = 200  # random subspace pairs for the baseline of Fig. 10


# ------------------------------------------------------------------ cached backend calls (plain-valued keys)
@common.memo_with_progress(max_entries=16)
def subspaces(model_a: str, model_b: str, dataset: str, n: int, h: float, seed: int = 0, _progress=None):
    """S_c and S_f of both networks on the same n training points (disk-cached per network)."""
    est, _, key = common.study_points(dataset, n, 1, seed)
    return compare_subspaces(common.get_model(model_a), common.get_model(model_b), est, m=1,
                             m_estimated=M_ESTIMATED, data_key=key, h=h, n_baseline=2, random_state=seed,
                             progress=_progress)


@st.cache_data(show_spinner=False, max_entries=32)
def angles(model_a: str, model_b: str, dataset: str, n: int, h: float, m: int, seed: int = 0):
    """Principal angles between the first m directions, and the random baseline, for S_c and S_f."""
    both = subspaces(model_a, model_b, dataset, n, h, seed)
    return {kind: compare_bases(a, b, m=m, n_samples=N_BASELINE, random_state=seed, kind=kind, names=both.names)
            for kind, (a, b) in both.subspaces.items()}


@st.cache_data(show_spinner=False, max_entries=32)
def sections(model_a: str, model_b: str, dataset: str, index: int, n: int, h: float, k: int, random_seed: int,
             resolution: int, seed: int = 0):
    """B's normal cross-sections at one test point along A's k-th S_c direction and a random one."""
    S_a = subspaces(model_a, model_b, dataset, n, h, seed).subspaces["curved"][0]
    x = common.get_dataset(dataset, "test").images[index]
    return transfer_sections(common.get_model(model_b), x, S_a.basis[:, k - 1], random_state=random_seed,
                             resolution=resolution, h=h)


@common.memo_with_progress(max_entries=16)
def fooling_matrix(names: tuple, dataset: str, n: int, h: float, m: int, xi: float, n_vectors: int, seed: int = 0,
                   _progress=None):
    """Random vectors of each network's S_c (first m directions, norm ξ) applied to every network."""
    from geometry.store import cached_subspace

    report = _progress or (lambda f, msg: None)
    est, held, key = common.study_points(dataset, n, N_HELDOUT, seed)
    clfs = {name: common.get_model(name) for name in names}
    bases = {}
    for i, (name, clf) in enumerate(clfs.items()):
        lo, hi = 0.8 * i / len(clfs), 0.8 * (i + 1) / len(clfs)
        bases[name] = cached_subspace("curved", clf, est, M_ESTIMATED, data_key=key, h=h, random_state=seed,
                                      progress=lambda f, msg, lo=lo, hi=hi, name=name: report(lo + (hi - lo) * f,
                                                                                            f"S_c of {name}: {msg}"))
    return transfer_matrix(clfs, bases, held, xi=xi, m=m, n_samples=n_vectors, random_state=seed,
                           progress=lambda f, msg: report(0.8 + 0.2 * f, msg))


# ------------------------------------------------------------------ page
st.title("Compare networks")
st.caption(
    "Is the curved subspace S_c a property of the data rather than of one network? S_c (top-m eigenvectors of the "
    "boundary Hessian averaged over n training points, tangent-projected) and S_f (top-m singular vectors of the "
    "DeepFool normals) are estimated for two networks on the *same* points with the *same* finite-difference scale h, "
    "then compared by the cosines of their principal angles (1 = a shared direction) against two random subspaces "
    "(paper §5, Fig. 10). A shared S_c explains why universal perturbations transfer across networks (Appendix C.2, "
    "Fig. 13)."
)

sel = common.selection()
if sel is None:
    st.stop()
dataset = common.selection_dataset()
names = common.compatible_models(dataset)
if len(names) < 2:
    st.warning("Comparing needs two networks for this dataset: upload another one on the Home page (Your model).")
    st.stop()


def _default_b(a: str) -> str:
    for cand in (f"{dataset}-nin", f"{a}-seed1", f"{dataset}-lenet-seed1"):
        if cand in names and cand != a:
            return cand
    return next(n for n in names if n != a)


# A follows the sidebar's network whenever the sidebar changes; otherwise it keeps its own value.
common.init_state("cmp_a", sel.model_name, options=names)
if st.session_state.get("_cmp_sidebar") not in (None, sel.model_name) or st.session_state["cmp_a"] not in names:
    st.session_state["cmp_a"] = sel.model_name if sel.model_name in names else names[0]
st.session_state["_cmp_sidebar"] = sel.model_name
common.init_state("cmp_b", _default_b(st.session_state["cmp_a"]))
if st.session_state["cmp_b"] not in names or st.session_state["cmp_b"] == st.session_state["cmp_a"]:
    st.session_state["cmp_b"] = _default_b(st.session_state["cmp_a"])
m_cap = max(1, min(M_ESTIMATED, sel.clf.d - 1))
M_COMPARED = dict(min_value=1, max_value=m_cap)  # m: directions compared (slider)
N_POINTS = dict(min_value=20, max_value=500, step=10)  # n: points for S_c, S_f (slider)
common.init_state("cmp_m", 10, int, **M_COMPARED)
common.init_state("cmp_n", 100, int, **N_POINTS)

c1, c2, c3, c4 = st.columns([3, 3, 2, 2])
model_a = c1.selectbox("Network A", names, key="cmp_a", format_func=common.model_label,
                       help="Defaults to the sidebar's network. Zoo networks of this dataset and your uploads with the "
                            "same input shape.")
model_b = c2.selectbox("Network B", [nm for nm in names if nm != model_a], key="cmp_b", format_func=common.model_label,
                       help="The NiN-style net (other architecture, BatchNorm, other learning rate) or the same LeNet "
                            "trained from another seed.")
m = c3.slider("m: directions compared", **M_COMPARED, key="cmp_m",
              help=f"Principal angles between the first m directions of each subspace (both estimated with "
                   f"{M_ESTIMATED} directions, so changing m recomputes nothing).")
n = c4.slider("n: points for S_c, S_f", **N_POINTS, key="cmp_n",
              help="Training points whose boundary Hessians (S_c) and normals (S_f) are used — the same for both networks.")

clf_a = clf_b = None
with common.user_errors():  # zoo networks are trained here on first use (progress shown outside the caches)
    clf_a = common.get_model(model_a) if model_a != sel.model_name else sel.clf
    clf_b = common.get_model(model_b)
if clf_a is None or clf_b is None:
    st.stop()
h_authors = default_h(clf_a)
common.init_state("cmp_scale", "authors", options=common.H_SCALES)
common.init_state("cmp_h", round(h_authors, 4), float, **common.H_INPUT)
scales = {"authors": f"authors' default h = 10·√d/512 = {h_authors:.4g}",
          "xi": "h = ξ/2, ξ = 1/5 of the random-noise norm fooling 50 % of A's points",
          "custom": "custom h"}  # common.H_SCALES
with st.expander("Estimator settings (scale h)", expanded=st.session_state["cmp_scale"] != "authors"):
    e1, e2, e3 = st.columns([2, 1, 2])
    scale = e1.radio("finite-difference scale h (pixel-space ℓ2)", list(scales), key="cmp_scale", format_func=scales.get,
                     help="The same h is used for every network, so the comparison does not mix scales. On MNIST, "
                          "LeNet and NiN share S_c at h ≈ ξ/2 but not at the authors' h (docs/reproduction-compare.md).")
    h = h_authors
    if scale == "custom":
        h = e2.number_input("h", **common.H_INPUT, key="cmp_h", format="%.4f")
    elif scale == "xi":
        with st.spinner("Measuring the random-noise norm…"):
            noise_h = common.noise_norm(model_a, dataset, 0.5, N_HELDOUT)
        if math.isfinite(noise_h.quantile):
            h = noise_h.quantile / 10
            e2.metric("h = ξ/2", f"{h:.3g}", help=f"random noise of norm {noise_h.quantile:.3g} fools 50 % of A's "
                                                  f"held-out points")
        else:
            st.warning("Random noise fools fewer than 50 % of A's points at any norm tried; using the authors' h.")
    e3.caption("S_c: finite-difference Hessian-vector products of F = f_j − f_k̂ at z = x + r(x), averaged tangent "
               "Hessian, top eigenvectors (dense solve for d ≤ 100, else Lanczos). S_f: SVD of the unit normals.")
common.share(**({"cmp_a": model_a} if common.shareable(model_a) else {}),
             **({"cmp_b": model_b} if common.shareable(model_b) else {}), cmp_m=int(m), cmp_n=int(n), cmp_scale=scale,
             cmp_h=float(st.session_state["cmp_h"]))

# ---------------------------------------------------------------- (a) principal angles, Fig. 10
st.subheader("Principal angles between the subspaces (Fig. 10)")
with common.user_errors():
    bar, update = common.progress_bar(f"Estimating S_c and S_f of {common.model_label(model_a)} and "
                                      f"{common.model_label(model_b)}")
    both = subspaces(model_a, model_b, dataset, int(n), float(h), _progress=update)
    bar.empty()
    result = angles(model_a, model_b, dataset, int(n), float(h), int(m))
    left, right = st.columns(2)
    for col, kind in ((left, "curved"), (right, "flat")):
        cmp_ = result[kind]
        col.plotly_chart(principal_angles_figure(cmp_, height=420), width="stretch")
        sub = "S_c" if kind == "curved" else "S_f"
        col.metric(f"{sub}: largest cosine", f"{float(cmp_.cosines[0]):.3f}",
                   delta=f"random {float(cmp_.baseline.mean[0]):.3f} ± {float(cmp_.baseline.std[0]):.3f}: "
                         f"{float(cmp_.z_scores[0]):+.1f} std", delta_color="off",
                   help=f"cos θ_1 between the two subspaces, next to the mean ± std of the largest cosine between two "
                        f"random {m}-dimensional subspaces of R^{cmp_.d} ({N_BASELINE} pairs) and its distance from "
                        f"that mean in baseline standard deviations.")
    Sa, Sb = both.subspaces["curved"]
    n_above = int(result["curved"].above_baseline(2.0).sum())
    st.caption(
        f"d = {result['curved'].d}; S_c and S_f from the same n = {n} training points "
        f"({Sa.n_dropped} / {Sb.n_dropped} dropped where DeepFool did not converge), finite differences at h = {h:.4g}. "
        f"{n_above} of the {m} S_c cosines lie more than 2 baseline std above the random mean. Mean normal curvature κ "
        f"along the first S_c direction: {float(Sa.kappas[0]):+.3g} ({common.model_label(model_a)}), "
        f"{float(Sb.kappas[0]):+.3g} ({common.model_label(model_b)}) per pixel distance. When d is small (8×8 digits: "
        f"d = 64) even random subspaces share directions: the baseline is high."
    )

    # ------------------------------------------------------------ (b) transferred cross-sections, Fig. 13
    st.subheader("B's boundary along A's curved directions (Fig. 13)")
    st.caption(
        f"Normal cross-sections of **{common.model_label(model_b)}** at the sidebar's datapoint (test image {sel.index}): "
        f"horizontal = its own DeepFool normal r(x), vertical = a direction of S_c({common.model_label(model_a)}) (left) "
        f"or a random direction (right). If S_c transfers, B's boundary bends around x along A's direction "
        f"(positive curvature) but hardly along the random one."
    )
    DIRECTION = dict(min_value=1, max_value=M_ESTIMATED, step=1)  # which S_c(A) direction (number input)
    SEED = dict(min_value=0, max_value=10_000, step=1)  # random direction seed (number input)
    RESOLUTION = dict(options=[64, 128, 256])  # grid points per side (select slider)
    common.init_state("cmp_k", 1, int, **DIRECTION)
    common.init_state("cmp_seed", 0, int, **SEED)
    common.init_state("cmp_res", 128, int, **RESOLUTION)
    s1, s2, s3 = st.columns(3)
    k = s1.number_input("direction of S_c(A) (1 = most curved for A)", **DIRECTION, key="cmp_k")
    rseed = s2.number_input("random direction seed", **SEED, key="cmp_seed")
    res = s3.select_slider("resolution", **RESOLUTION, key="cmp_res")
    common.share(cmp_k=int(k), cmp_seed=int(rseed), cmp_res=int(res))
    with st.spinner("Cross-sections of network B…"):
        ts = sections(model_a, model_b, dataset, sel.index, int(n), float(h), int(k), int(rseed), int(res))
    class_names = clf_b.class_names
    left, right = st.columns(2)
    kappa = [float(v) for v in ts.kappa]
    def _kappa(v: float) -> str:
        return f"κ = {v:+.3g} per pixel distance" if math.isfinite(v) else "κ undefined"

    left.plotly_chart(section_figure(ts.subspace_section, class_names,
                                     title=f"{common.model_label(model_b)} along S_c({common.model_label(model_a)}) "
                                           f"direction {k}<br><sup>{_kappa(kappa[0])}</sup>",
                                     direction_label=f"S_c(A) direction {k}"), width="stretch")
    right.plotly_chart(section_figure(ts.random_section, class_names,
                                      title=f"{common.model_label(model_b)} along a random direction<br>"
                                            f"<sup>{_kappa(kappa[1])}</sup>",
                                      direction_label=f"random v (seed {rseed})"), width="stretch")
    if not ts.converged:
        st.warning("DeepFool did not change B's label at this point: r(x) is not a boundary normal and κ is undefined.")
    st.caption(
        f"κ: normal curvature of B's boundary at z = x + r_B(x) along each direction (finite differences at h = "
        f"{h:.4g}; 1/pixel distance; positive = the other class wraps around x). For comparison, A's own mean κ along "
        f"its S_c direction {k} over the n points: {float(Sa.kappas[k - 1]):+.3g}. ‖r_B(x)‖₂ = {ts.r_norm:.4g}."
    )

    # ------------------------------------------------------------ (c) fooling-rate matrix, Appendix C.2
    st.subheader("Do universal perturbations transfer? (Appendix C.2)")
    st.caption(
        "Random vectors of norm ξ drawn uniformly from the first m directions of each network's S_c (the recipe of "
        "Fig. 7b), applied to every network, on held-out test points. Row = whose S_c, column = the network fooled; "
        "the diagonal is each network's own S_c, off-diagonal cells measure transfer; the last row (random vectors "
        "of the whole space, same norm) is the baseline."
    )
    SHARES = dict(options=[0.5, 0.8, 0.9])  # share of points the noise norm fools (select slider)
    VECTORS = dict(min_value=1, max_value=100)  # random vectors per row (slider)
    common.init_state("cmp_share", 0.5, float, **SHARES)
    common.init_state("cmp_vectors", 20, int, **VECTORS)
    if "cmp_nets" not in st.session_state:
        st.session_state["cmp_nets"] = [t for t in common.param("cmp_nets", "").split(",") if t]
    f1, f2, f3 = st.columns([3, 2, 2])
    extra_options = [nm for nm in names if nm not in (model_a, model_b)]
    st.session_state["cmp_nets"] = [t for t in st.session_state["cmp_nets"] if t in extra_options]
    extra = f1.multiselect("more networks (each needs its own S_c)", extra_options, key="cmp_nets",
                           format_func=common.model_label,
                           help="Networks of the zoo are trained on first use; each adds a row and a column.")
    share_ = f2.select_slider("ξ = 1/5 of the random-noise norm fooling this share of points (A)",
                              **SHARES, key="cmp_share")
    n_vectors = f3.slider("random vectors per row", **VECTORS, key="cmp_vectors")
    common.share(cmp_share=share_, cmp_vectors=int(n_vectors),
                 cmp_nets=",".join(nm for nm in extra if common.shareable(nm)))
    for nm in extra:
        common.get_model(nm)  # train on first use, outside the cached matrix
    with st.spinner(f"Random-noise norm of {common.model_label(model_a)}…"):
        noise = common.noise_norm(model_a, dataset, float(share_), N_HELDOUT)
    if math.isfinite(noise.quantile):
        xi = noise.quantile / 5
    else:
        xi = None
        st.warning(f"Random noise fools fewer than {share_:.0%} of the points even at the largest norm tried "
                   f"({noise.infinite_share:.0%} of random rays never change A's label): pick a smaller share.")
    if xi is not None:
        bar, update = common.progress_bar("Fooling-rate matrix")
        tm = fooling_matrix(tuple([model_a, model_b, *extra]), dataset, int(n), float(h), int(m), float(xi),
                            int(n_vectors), _progress=update)
        bar.empty()
        st.plotly_chart(transfer_matrix_figure(tm), width="stretch")
        a_on_b, b_on_b = tm.rate(model_a, model_b), tm.rate(model_b, model_b)
        rand_b = tm.rate(RANDOM_ROW, model_b)
        st.caption(
            f"ξ = {xi:.4g} = 1/5 of {noise.quantile:.4g}, the ℓ2 norm of random noise that fools {share_:.0%} of "
            f"{N_HELDOUT} held-out points of {common.model_label(model_a)} ({noise.infinite_share:.0%} of random rays "
            f"never change its label). On {common.model_label(model_b)}: vectors from A's S_c fool {a_on_b:.0%}, from its "
            f"own S_c {b_on_b:.0%}, random vectors {rand_b:.0%}. m = {m} directions, {n_vectors} vectors per row, "
            f"{tm.n_points} held-out test points; fooling = the network's own prediction changes."
        )
