"""The guided tour: a short sequence of shareable views that carries a 10-minute lecture on the
geometry of decision boundaries (issue 13), each with a two-sentence caption shown on the page.

A step is a URL into a page with its settings plus ``tour=<step>``; :func:`banner` (called by the
router before the page runs) shows the step's caption and the links to the previous / next step.
``present=1`` gives the lecture layout: larger type, sidebar collapsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import streamlit as st


@dataclass(frozen=True)
class TourStep:
    """One step: the page (file and URL path), its query parameters, a title and a two-sentence caption."""

    title: str
    page: str
    url_path: str
    params: dict
    caption: str

    def url(self, step: int, *, present: bool = False) -> str:
        return f"/{self.url_path}?" + urlencode({**self.params, "tour": step, **({"present": 1} if present else {})})


TOUR: tuple[TourStep, ...] = (
    TourStep(
        "Flat and curved boundaries in the plane",
        "pages/geometry_2d.py",
        "geometry_2d",
        {"g2_data": "circles", "g2_model": "mlp-tanh", "g2_pt": 1, "g2_dir": "S_c", "g2_xi": 0.3},
        "A classifier's decision boundary is where its two top logits tie; in the plane it is a curve, here bending "
        "around the inner class. Its curvature (the purple osculating circle) decides how far x is from the other class "
        "in directions other than the normal.",
    ),
    TourStep(
        "DeepFool, step by step",
        "pages/geometry_2d.py",
        "geometry_2d",
        {"g2_data": "spirals", "g2_model": "mlp-tanh", "g2_pt": 13, "g2_dir": "S_f", "g2_xi": 0.3},
        "DeepFool replaces the classifier by its linearisation at x, jumps to that line (dotted), and repeats until the "
        "label changes. The result r(x) (green arrow) is the shortest way out: it is orthogonal to the boundary.",
    ),
    TourStep(
        "A deep network, seen along random directions",
        "pages/cross_sections.py",
        "cross_sections",
        {"dir": "random", "seed": 0},
        "The same picture for an image classifier: the plane spanned by r(x) and a random direction v. Along random "
        "directions the paper finds the boundary nearly a straight line (locally the classifier looks flat); the "
        "reading under the section gives this network's curvature κ along v.",
    ),
    TourStep(
        "Along the curved subspace S_c",
        "pages/cross_sections.py",
        "cross_sections",
        {"dir": "sc", "vec": 1, "cv_scale": "xi"},
        "S_c collects the directions along which the boundaries of many points bend most, averaged over training "
        "points. The paper finds the boundary curving along its first vector; compare the curvature κ in the title "
        "with the previous step's random v.",
    ),
    TourStep(
        "Curvature versus m",
        "pages/curvature.py",
        "curvature",
        {"cv_scale": "xi"},
        "The paper finds random directions of the first m vectors of S_c, averaged over held-out points, more curved "
        "than random directions of R^d — a few directions carry the curvature. The blue reading under the chart says "
        "whether this network shows it at the scale h used here (h = ξ).",
    ),
    TourStep(
        "Universal perturbations",
        "pages/universal.py",
        "universal",
        {"uv_share": 80, "uv_scale": "xi"},
        "Theorem 2: where the boundary curves along a subspace, random vectors of that subspace fool many points at "
        "once. Compare S_c, the normals' subspace S_f, random directions and the UAP algorithm at the same norm ξ; the "
        "blue reading says whether S_c wins here and how small ξ is against the images.",
    ),
    TourStep(
        "Robustness and curvature, and vice versa",
        "pages/robust.py",
        "robust",
        # pinned to digits: with mnist-lenet the default (pages/ui/jobs.py) MNIST's PGD / CURE nets train for minutes
        {"model": "digits-lenet", "rob_nets": "digits-lenet,digits-lenet-pgd,digits-lenet-cure", "rob_n": 30},
        "Adversarial training (PGD-AT) and curvature regularisation (CURE) change the geometry the previous steps "
        "measured: the papers report a loss that bends less at the attack's scale h and more accuracy under attack. "
        "The blue reading under the table says, network by network, which of these the chosen networks show.",
    ),
    TourStep(
        "Certified versus empirical",
        "pages/certify.py",
        "certify",
        {"model": "digits-lenet-lmt", "cert_n": 100, "cert_vs": "digits-lenet"},
        "An attack's ‖r(x)‖ bounds the distance to the boundary from above; a Lipschitz-margin certificate bounds it "
        "from below, and the truth lies between the two. Lipschitz-margin training (LMT) is meant to pull the two "
        "together: the blue reading compares this network's certified accuracy with the standard network's beside it.",
    ),
)


def tour_links() -> str:
    """Markdown list of the tour's steps (shareable links), each also in the "present" layout."""
    return "\n".join(
        f"{i}. [{s.title}]({s.url(i)}) · [present]({s.url(i, present=True)})" for i, s in enumerate(TOUR, start=1)
    )


def presenting() -> bool:
    """Whether the URL asks for the "present" layout (``present=1``: larger type, sidebar collapsed)."""
    return st.query_params.get("present") == "1"


_PRESENT_CSS = """<style>
[data-testid="stMainBlockContainer"] { font-size: 1.25rem; max-width: 96rem; }
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li { font-size: 1.25rem; }
[data-testid="stCaptionContainer"] p { font-size: 1.1rem; }
[data-testid="stMetricValue"], [data-testid="stMetricValue"] * { font-size: 2.6rem !important; }
h1 { font-size: 3.2rem !important; }
</style>"""


def banner() -> None:
    """If the URL holds ``tour=<step>``, show that step's caption with previous / next links."""
    present = presenting()
    if present:
        st.markdown(_PRESENT_CSS, unsafe_allow_html=True)
    raw = st.query_params.get("tour")
    if raw is None:
        return
    try:
        i = int(raw)
    except ValueError:
        return
    if not 1 <= i <= len(TOUR):
        return
    s = TOUR[i - 1]
    nav = []
    if i > 1:
        nav.append(f"[← {TOUR[i - 2].title}]({TOUR[i - 2].url(i - 1, present=present)})")
    if i < len(TOUR):
        nav.append(f"[{TOUR[i].title} →]({TOUR[i].url(i + 1, present=present)})")
    st.info(f"**Guided tour {i}/{len(TOUR)} — {s.title}.** {s.caption}\n\n" + " · ".join(nav), icon=":material/school:")
