"""The guided tour: a short sequence of shareable views that carries a 10-minute lecture on the
geometry of decision boundaries (issue 13), each with a two-sentence caption shown on the page.

A step is a URL into a page with its settings plus ``tour=<step>``; :func:`banner` (called by the
router before the page runs) shows the step's caption and the links to the previous / next step.
``present=1`` gives the lecture layout: larger type and figures, sidebar collapsed, the page's controls
hidden so that the figure is on the first screen (:data:`_PRESENT_CSS`, :func:`pages.ui.layout.chart`).

Issue 23 item 5, a lecture that looks the same on any day: :data:`TOUR` is the one table of (step →
network, settings). Every step that shows a network names it (``network``) together with the page settings
it fixes (``settings``), so a step never follows the session's default network (``mnist-lenet`` once it is
trained in the background, ``digits-lenet`` before); :func:`pin` lets the table win over the session's own
values on a step's first run; :func:`lecture_plan` is what "Prepare for a lecture" on Home
(:func:`prepare_lecture_panel`) computes — exactly the table's networks and studies. Settings a step does
not name take the page's defaults, which are code, not state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from urllib.parse import urlencode

import streamlit as st

#: query parameters of a step's settings that name further networks (besides the step's own ``network``)
NETWORK_KEYS = ("rob_nets", "cert_vs")
#: the network of the tour's image steps (3–6): digits-lenet trains in seconds and is the same on every machine
#: (the paper's S_c effect at h = ξ shows on it for the curvature, not for the fooling rates: docs/teaching.md;
#: the blue readings on each page say which)
LECTURE_NETWORK = "digits-lenet"


@dataclass(frozen=True)
class TourStep:
    """One step: the page (file and URL path), the network it shows (``None``: the 2-D lab's toy models, chosen
    in ``settings``), the page settings it pins, a title and a two-sentence caption."""

    title: str
    page: str
    url_path: str
    network: str | None
    settings: dict
    caption: str
    #: the study "Prepare for a lecture" computes for this step (:func:`lecture_plan`), if any
    study: str | None = field(default=None)

    @property
    def params(self) -> dict:
        """The step's query parameters: its network (``model``) and its settings."""
        return {**({"model": self.network} if self.network else {}), **self.settings}

    @property
    def networks(self) -> tuple[str, ...]:
        """Every zoo network the step shows: its own, then those its settings name (:data:`NETWORK_KEYS`)."""
        names = [self.network] if self.network else []
        for key in NETWORK_KEYS:
            names += [n for n in str(self.settings.get(key, "")).split(",") if n and n not in names]
        return tuple(names)

    def url(self, step: int, *, present: bool = False) -> str:
        return f"/{self.url_path}?" + urlencode({**self.params, "tour": step, **({"present": 1} if present else {})})


TOUR: tuple[TourStep, ...] = (
    TourStep(
        "Flat and curved boundaries in the plane",
        "pages/geometry_2d.py",
        "geometry_2d",
        None,
        {"g2_data": "circles", "g2_model": "mlp-tanh", "g2_pt": 1, "g2_dir": "S_c", "g2_xi": 0.3},
        "A classifier's decision boundary is where its two top logits tie; in the plane it is a curve, here bending "
        "around the inner class. Its curvature (the purple osculating circle) decides how far x is from the other class "
        "in directions other than the normal.",
    ),
    TourStep(
        "DeepFool, step by step",
        "pages/geometry_2d.py",
        "geometry_2d",
        None,
        {"g2_data": "spirals", "g2_model": "mlp-tanh", "g2_pt": 13, "g2_dir": "S_f", "g2_xi": 0.3},
        "DeepFool replaces the classifier by its linearisation at x, jumps to that line (dotted), and repeats until the "
        "label changes. The result r(x) (green arrow) is the shortest way out: it is orthogonal to the boundary.",
    ),
    TourStep(
        "A deep network, seen along random directions",
        "pages/cross_sections.py",
        "cross_sections",
        LECTURE_NETWORK,
        {"i": 0, "dir": "random", "seed": 0},
        "The same picture for an image classifier: the plane spanned by r(x) and a random direction v. Along random "
        "directions the paper finds the boundary nearly a straight line (locally the classifier looks flat); the "
        "reading under the section gives this network's curvature κ along v.",
        study="curvature",
    ),
    TourStep(
        "Along the curved subspace S_c",
        "pages/cross_sections.py",
        "cross_sections",
        LECTURE_NETWORK,
        {"i": 0, "dir": "sc", "vec": 1, "cv_scale": "xi"},
        "S_c collects the directions along which the boundaries of many points bend most, averaged over training "
        "points. The paper finds the boundary curving along its first vector; compare the curvature κ in the title "
        "with the previous step's random v.",
        study="curvature",
    ),
    TourStep(
        "Curvature versus m",
        "pages/curvature.py",
        "curvature",
        LECTURE_NETWORK,
        {"cv_scale": "xi"},
        "The paper finds random directions of the first m vectors of S_c, averaged over held-out points, more curved "
        "than random directions of R^d — a few directions carry the curvature. The blue reading under the chart says "
        "whether this network shows it at the scale h used here (h = ξ).",
        study="curvature",
    ),
    TourStep(
        "Universal perturbations",
        "pages/universal.py",
        "universal",
        LECTURE_NETWORK,
        # pinned to the Fig. 7b rule: at the page's default ξ (4 % of ‖x‖, CVPR 2017's ImageNet ratio) nothing on the
        # digits network is fooled (1-2 % for every subspace, docs/reproduction-universal.md), a flat chart to teach from
        {"uv_share": 80, "uv_scale": "xi", "uv_xi": "noise"},
        "Theorem 2: where the boundary curves along a subspace, random vectors of that subspace fool many points at "
        "once, so compare S_c, the normals' subspace S_f, random directions and the UAP algorithm at one norm ξ — here "
        "ICLR 2018's rule (1/5 of the noise norm that fools 80 %), far from imperceptible on these small images (the "
        "caption beside the gallery gives ξ against ‖x‖; at the page's default, 4 % of ‖x‖, this network is hardly "
        "fooled). The blue reading says whether S_c wins here.",
        study="universal",
    ),
    TourStep(
        "Robustness and curvature, and vice versa",
        "pages/robust.py",
        "robust",
        # pinned to digits: with mnist-lenet the default (pages/ui/jobs.py) MNIST's PGD / CURE nets train for minutes
        "digits-lenet",
        {"rob_nets": "digits-lenet,digits-lenet-pgd,digits-lenet-cure", "rob_n": 30},
        "Adversarial training (PGD-AT) and curvature regularisation (CURE) change the geometry the previous steps "
        "measured: the papers report a loss that bends less at the attack's scale h and more accuracy under attack. "
        "The blue reading under the table says, network by network, which of these the chosen networks show.",
    ),
    TourStep(
        "Certified versus empirical",
        "pages/certify.py",
        "certify",
        "digits-lenet-lmt",
        {"cert_n": 100, "cert_vs": "digits-lenet"},
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
    """Whether the URL asks for the "present" layout (``present=1``: larger type and figures, sidebar collapsed)."""
    return st.query_params.get("present") == "1"


#: The lecture layout at 1280 × 800: the type 1.25× (the figures 1.5×: :func:`pages.ui.layout.chart`), and, so that
#: each step's figure is on the first screen, a slimmer top bar and title, without the page's introduction (the
#: tour's caption says it) and without the page's controls (the step pins them; the banner links to the same view
#: with its controls). Streamlit wraps every element in an ``stElementContainer``.
_PRESENT_CSS = """<style>
[data-testid="stMainBlockContainer"] { font-size: 1.25rem; max-width: 96rem; padding-top: 2.75rem; padding-bottom: 2rem; }
[data-testid="stMainBlockContainer"] [data-testid="stMarkdownContainer"] p,
[data-testid="stMainBlockContainer"] [data-testid="stMarkdownContainer"] li { font-size: 1.25rem; }
[data-testid="stCaptionContainer"] p { font-size: 1.1rem; }
[data-testid="stMetricValue"], [data-testid="stMetricValue"] * { font-size: 2.6rem !important; }
[data-testid="stHeader"] { height: 2.5rem; background: transparent; }
h1 { font-size: 2.4rem !important; padding: 0 0 0.25rem 0 !important; }
[data-testid="stElementContainer"]:has(h1) + [data-testid="stElementContainer"]:has([data-testid="stCaptionContainer"]),
[data-testid="stMain"] [data-testid="stElementContainer"]:has(:is([data-testid="stSelectbox"], [data-testid="stSlider"],
  [data-testid="stNumberInput"], [data-testid="stRadio"], [data-testid="stCheckbox"], [data-testid="stMultiSelect"],
  [data-testid="stTextInput"], [data-testid="stButton"], [data-testid="stDownloadButton"], [data-testid="stSelectSlider"])),
[data-testid="stMain"] [data-testid="stExpander"] { display: none; }
[data-testid="stAlert"] p { font-size: 1.1rem !important; }
</style>"""


#: on a tour step in present mode the banner names the step: the page's own title goes too
_PRESENT_STEP_CSS = """<style>
[data-testid="stMain"] [data-testid="stElementContainer"]:has(h1) { display: none; }
[data-testid="stMain"] [data-testid="stAlert"] p { font-size: 1.05rem !important; }
</style>"""


def step_number() -> int | None:
    """The tour step the URL names (``tour=<step>``), or None (absent, malformed, out of range)."""
    raw = st.query_params.get("tour")
    try:
        i = int(raw) if raw is not None else 0
    except ValueError:
        return None
    return i if 1 <= i <= len(TOUR) else None


_PINNED = "_tour_pinned"  # session key: the step whose settings were last put in force


def pin() -> None:
    """On a tour step's first run in this session, let the step's network and settings (the URL written by
    :meth:`TourStep.url`) win over values the session kept from before: their session values are dropped, so the
    bound widgets read them from the URL. Called by the router before the sidebar is drawn."""
    i = step_number()
    if i is None or st.session_state.get(_PINNED) == i:
        return
    written = st.session_state.get("_url_written", {})
    for key in TOUR[i - 1].params:
        st.session_state.pop(key, None)
        written.pop(key, None)
    st.session_state[_PINNED] = i


def banner() -> None:
    """If the URL holds ``tour=<step>``, show that step's caption with previous / next links (and in present mode,
    a link to the same view with its controls)."""
    present = presenting()
    if present:
        st.markdown(_PRESENT_CSS, unsafe_allow_html=True)
    i = step_number()
    if i is None:
        return
    s = TOUR[i - 1]
    nav = []
    if i > 1:
        nav.append((f"← {TOUR[i - 2].title}", TOUR[i - 2].url(i - 1, present=present)))
    if i < len(TOUR):
        nav.append((f"{TOUR[i].title} →", TOUR[i].url(i + 1, present=present)))
    if present:
        nav.append(("with its controls", s.url(i)))
        st.markdown(_PRESENT_STEP_CSS, unsafe_allow_html=True)
    st.info(f"**Guided tour {i}/{len(TOUR)} — {s.title}.** {s.caption}", icon=":material/school:")
    st.markdown(nav_html(nav), unsafe_allow_html=True)


def nav_html(links: list[tuple[str, str]]) -> str:
    """The tour's previous / next links as HTML anchors that open in the same tab (``target="_self"``): Streamlit's
    markdown links open a new tab each, eight tabs by the end of a lecture. Text and URLs are escaped."""
    anchors = " · ".join(f'<a href="{escape(url)}" target="_self">{escape(text)}</a>' for text, url in links)
    return f'<div data-tour-nav="1" style="margin-top: -0.5rem">{anchors}</div>'


# ------------------------------------------------------------------ "Prepare for a lecture" (issue 23 item 5)
@dataclass(frozen=True)
class PlanItem:
    """One piece of work "Prepare for a lecture" does: train ``network`` (``kind`` "train"), or compute its study
    (``kind`` "curvature" / "universal") at ``settings`` — the settings object the step's page builds."""

    kind: str
    network: str
    settings: object = None
    steps: tuple[int, ...] = ()


def step_settings(step: TourStep) -> object:
    """The study settings the step's page computes with: the page's defaults (``pages/ui/state.py``'s views) with
    the step's pinned values; None for a step without a study (:attr:`TourStep.study`)."""
    from .state import CurvatureView, UniversalView

    if step.study == "curvature":
        d = {**CurvatureView.DEFAULTS, **{k: v for k, v in step.settings.items() if k in CurvatureView.DEFAULTS}}
        return CurvatureView(
            n=int(d["cv_n"]),
            m=int(d["cv_m"]),
            method=str(d["cv_method"]),
            point=str(d["cv_point"]),
            scale=str(d["cv_scale"]),
            h=float(step.settings.get("cv_h", 0.0)),
            heldout=int(d["cv_heldout"]),
            rx=str(d["cv_rx"]),
        ).settings()
    if step.study == "universal":
        d = {**UniversalView.DEFAULTS, **{k: v for k, v in step.settings.items() if k in UniversalView.DEFAULTS}}
        return UniversalView(
            n=int(d["uv_n"]),
            m=int(d["uv_m"]),
            samples=int(d["uv_samples"]),
            share_pct=int(d["uv_share"]),
            scale=str(d["uv_scale"]),
            h=float(step.settings.get("uv_h", 0.0)),
            heldout=int(d["uv_heldout"]),
            uap=int(d["uv_uap"]),
            rx=str(d["uv_rx"]),
            xi=str(d["uv_xi"]),
        ).settings()
    return None


def lecture_plan() -> list[PlanItem]:
    """What "Prepare for a lecture" computes, read off :data:`TOUR`: every network a step shows (trained), then
    every step's study on its network at its pinned settings (one item per distinct study, naming its steps)."""
    items: list[PlanItem] = []
    for step in TOUR:
        for name in step.networks:
            if all(it.network != name for it in items if it.kind == "train"):
                items.append(PlanItem("train", name))
    studies: dict[tuple, PlanItem] = {}
    for i, step in enumerate(TOUR, start=1):
        settings = step_settings(step)
        if step.study is None or step.network is None or settings is None:
            continue
        k = (step.study, step.network, settings.key())  # type: ignore[attr-defined]
        old = studies.get(k)
        studies[k] = PlanItem(step.study, step.network, settings, (*(old.steps if old else ()), i))
    return items + list(studies.values())


def plan_job_key(item: PlanItem) -> str:
    """The job key of a study item: the key the step's page submits its study under (``pages/ui/jobs.study_key``),
    so the page finds the prepared job, or its result in the disk cache."""
    from geometry import study, zoo
    from geometry.data import load_dataset

    from .jobs import study_key

    clf = zoo.load_model(item.network)
    dataset = zoo.ZOO[item.network].dataset
    points = study.split_points(
        load_dataset(dataset, split="test"),
        load_dataset(dataset, split="train"),
        item.settings.points,  # type: ignore[attr-defined]
    )
    return study_key(item.kind, clf, points, item.settings)


def _queue_study(item: PlanItem, *, progress) -> str:
    """A background job: load the (trained) network and its points, then queue its study under the page's key."""
    from geometry import study, zoo
    from geometry.data import load_dataset
    from geometry.runtime import jobs

    progress(0.0, f"loading {item.network} and its points")
    key = plan_job_key(item)
    clf = zoo.load_model(item.network)
    dataset = zoo.ZOO[item.network].dataset
    points = study.split_points(
        load_dataset(dataset, split="test"),
        load_dataset(dataset, split="train"),
        item.settings.points,  # type: ignore[attr-defined]
    )
    fn = study.curvature_study if item.kind == "curvature" else study.universal_study
    what = "S_c, S_f and curvature vs m" if item.kind == "curvature" else "S_c, S_f, fooling rates and the UAP"
    steps = ", ".join(map(str, item.steps))
    jobs.registry().submit(
        key, fn, clf, points, item.settings, label=f"{what} of {item.network} (tour step {steps})", lane="background"
    )
    return key


def prepare_lecture_panel() -> None:
    """Home: one button that prepares exactly the tour's pinned networks and studies (:func:`lecture_plan`) in the
    background, so that every step opens at once and shows the numbers it will show in the lecture."""
    from geometry import zoo
    from geometry.runtime import jobs

    from .jobs import _expected, _train, session_owner

    plan = lecture_plan()
    nets = [it.network for it in plan if it.kind == "train"]
    studies = [it for it in plan if it.kind != "train"]
    with st.expander("Prepare for a lecture (the guided tour)", expanded=False):
        st.caption(
            f"The guided tour's {len(TOUR)} steps are pinned to their networks and settings, so a step shows the same "
            f"numbers on any day. This trains the {len(nets)} networks they show ({', '.join(nets)}) and computes the "
            f"{len(studies)} studies of steps "
            + ", ".join(
                "–".join(map(str, (it.steps[0], it.steps[-1]))) if len(it.steps) > 1 else str(it.steps[0])
                for it in studies
            )
            + " in the background; the robust-training and certification steps compute on opening. Follow the "
            "progress in the sidebar."
        )
        if st.button("Prepare the tour", key="tour_prepare"):
            registry = jobs.registry()
            for it in plan:
                if it.kind == "train":
                    if not zoo.is_cached(it.network):
                        registry.submit(
                            f"train:{it.network}",
                            _train,
                            it.network,
                            label=f"training {it.network}",
                            lane="background",
                            owner=session_owner(),
                            expected_seconds=_expected(it.network),
                        )
                    continue
                key = f"prepare-tour:{it.kind}:{it.network}:{it.settings.key()}"  # type: ignore[attr-defined]
                registry.forget(key)
                registry.submit(
                    key,
                    _queue_study,
                    it,
                    label=f"queue tour step {it.steps[0]}",
                    lane="background",
                    owner=session_owner(),
                    expected_seconds=2.0,
                )
            st.rerun()
