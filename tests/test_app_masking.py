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
    """The Certified page's banner: a sound radius may never exceed a successful attack's ‖r‖₂."""
    from types import SimpleNamespace

    import numpy as np

    from pages.ui.masking import certified_flags

    cert = SimpleNamespace(radius_plain=np.array([0.1, 0.2, 0.3]), radius_pair=np.array([0.1, 0.5, 0.3]))
    ok = SimpleNamespace(certificate=cert, distance=np.array([0.2, 0.6, np.inf]))
    assert certified_flags(ok) == ()
    bad = SimpleNamespace(certificate=cert, distance=np.array([0.2, 0.4, 0.25]))
    (flag,) = certified_flags(bad)
    assert flag.code == "certificate_exceeds_attack" and flag.points == (1, 2)
    assert "lipschitz_pair" in flag.message and "lipschitz," in flag.message  # both certificates broke it
