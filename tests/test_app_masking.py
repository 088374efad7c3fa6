"""Masking flags as banners (issue 21, item 3): the Robust page raises each flag of geometry.masking as a
warning with its remedy — here on a deliberately masked upload (digits-lenet with a softmax after its logits:
probabilities, not logits) — and says nothing of the kind for the zoo's digits network beside it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from pagenav import switch_page
from streamlit.testing.v1 import AppTest
from torch import nn

from geometry import zoo
from geometry.loading import load_classifier

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 400  # a first run may train digits-lenet on a busy 2-core machine


class _Upload(io.BytesIO):  # what st.file_uploader hands over
    name = "softmax-lenet.pt"


@pytest.fixture(scope="module")
def softmax_lenet():
    """digits-lenet with a softmax on top, saved as TorchScript and loaded back through the upload path."""
    lenet = zoo.load_model("digits-lenet")
    net = nn.Sequential(lenet.network, nn.Softmax(dim=1)).eval()
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(net), buf)
    return load_classifier(
        _Upload(buf.getvalue()), input_shape=(1, 8, 8), class_names=lenet.class_names, name="upload:softmax-lenet"
    )


def test_a_softmax_output_raises_its_banner_and_the_zoo_network_none(softmax_lenet):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["_user_models"] = {softmax_lenet.name: {"clf": softmax_lenet, "dataset": "digits"}}
    at.session_state["rob_nets"] = [softmax_lenet.name, "digits-lenet"]
    at.session_state["rob_n"] = 10
    at.session_state["rob_ens"] = 10
    at.run()
    switch_page(at, "pages/robust.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    flags = [w.value for w in at.warning if w.value.startswith("**Masking flag")]
    probability = [w for w in flags if "returns probabilities, not logits" in w]
    assert len(probability) == 1, "\n\n".join(w[:200] for w in flags)
    assert "softmax-lenet" in probability[0] and "**Remedy:** The network returns probabilities" in probability[0]
    assert not [w for w in flags if "digits-lenet:" in w]  # the zoo network beside it raises none
    # the ensemble's table is drawn (after the flags were raised) with both networks
    ens = next(df.value for df in at.dataframe if "ensemble robust accuracy" in df.value.columns)
    assert len(ens) == 2 and (ens["points"] == 10).all()


def test_a_certificate_above_an_attack_radius_is_flagged_on_the_certified_page():
    """The Certified page's banner is fed from the whole ladder — every rung and the best certificate per point
    (max over Lipschitz, LMT pair, CROWN) against the smallest successful attack radius: real digits networks
    raise nothing; a deliberately inflated CROWN radius (1.5 × the attack's at three points) raises the flag
    at exactly those points, naming CROWN and the best certificate, not the Lipschitz rungs that stayed below."""
    import dataclasses

    import numpy as np

    from geometry.data import load_dataset
    from geometry.study.certify import CertifySettings, certify_study
    from pages.ui.masking import certified_flags

    test = load_dataset("digits", split="test", limit=120)
    for name, settings in (
        ("digits-mlp", CertifySettings(n_points=120, crown_points=120, crown_tol=0.05)),  # test_crown's study
        ("digits-lenet", CertifySettings(n_points=40, crown_points=20, crown_tol=0.05)),
    ):
        study = certify_study(zoo.load_model(name), test.images, test.labels.numpy(), settings)
        assert study.crown is not None and np.isfinite(study.crown).sum() >= 20
        assert certified_flags(study) == (), name
    ok = np.flatnonzero(np.isfinite(study.distance) & np.isfinite(study.crown))[:3]
    assert len(ok) == 3
    crown = study.crown.copy()
    crown[ok] = 1.5 * study.distance[ok]
    (flag,) = certified_flags(dataclasses.replace(study, crown=crown))
    assert flag.code == "certificate_exceeds_attack" and flag.points == tuple(int(i) for i in ok)
    assert flag.message.startswith("CROWN ℓ2, best certificate exceed") and "Lipschitz" not in flag.message
    assert abs(flag.value - 1.5) < 1e-9  # the worst ratio certificate / attack


def test_the_2d_ladder_flags_a_certificate_above_the_best_attack():
    """The 2-D lab's banner: the toy ReLU MLP's ladder (every certificate below the best attack) raises nothing;
    the same ladder with its CROWN row inflated above the best attack's radius raises the flag."""
    import dataclasses

    import numpy as np

    from geometry.study.toy2d import certificate_ladder
    from geometry.toy2d import toy_classifier, toy_data
    from pages.ui.masking import ladder_flags

    data = toy_data("circles", n_points=120, noise=0.08)
    clf = toy_classifier("mlp-relu", data, steps=150)
    lad = certificate_ladder(clf, data.x[0].numpy())
    assert lad.best_attack is not None and lad.best_certificate is not None
    assert ladder_flags(lad) == ()
    rows = tuple(
        dataclasses.replace(r, radius=2.0 * lad.best_attack.radius) if r.name == "CROWN" else r for r in lad.rows
    )
    (flag,) = ladder_flags(dataclasses.replace(lad, rows=rows))
    assert flag.code == "certificate_exceeds_attack" and flag.points == (0,)
    assert "CROWN" in flag.message and "best certificate" in flag.message
    assert np.isclose(flag.value, 2.0)
