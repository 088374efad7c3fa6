"""The study layer (issue 10): one protocol per figure, shared by the app, the command line and the docs.

* the command-line report and the study API give identical numbers for the same network, data and
  settings — each computed independently (separate disk caches, memory cleared);
* the same weights under two names (a zoo network and its TorchScript upload) give identical study
  results, the UAP included, and share one cache entry;
* settings keys are stable across processes and change with every setting that changes a result;
* the point split's rules; study results survive the disk round trip; a damaged file is recomputed.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from geometry import study
from geometry.data import load_dataset
from geometry.errors import InvalidInputError
from geometry.loading import load_classifier

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", split="train"), load_dataset("digits", split="test")


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """A new, empty disk cache and no results in memory: the next study is computed from scratch."""

    def use(name: str):
        monkeypatch.setenv("BOUNDARY_ATLAS_CACHE", str(tmp_path / name))
        study.clear_memory()

    yield use
    study.clear_memory()


def _scripted_copy(clf):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(clf.network), buf)
    return load_classifier(
        buf.getvalue(), input_shape=clf.input_shape, class_names=clf.class_names, name="upload:my-copy", isolate=False
    )


# ------------------------------------------------------------------------------ settings
def test_settings_keys_are_stable_and_change_with_every_setting():
    base = study.CurvatureSettings()
    assert base.key() == study.CurvatureSettings().key()
    changed = [
        study.CurvatureSettings(m_max=10),
        study.CurvatureSettings(points=study.PointSplit(n_estimate=50)),
        study.CurvatureSettings(points=study.PointSplit(seed=1)),
        study.CurvatureSettings(method="exact"),
        study.CurvatureSettings(scale=study.HScale("authors")),  # the default is h = ξ (issue 19)
        study.CurvatureSettings(scale=study.HScale("custom", 0.5)),
        study.CurvatureSettings(point="inside"),
        study.CurvatureSettings(n_directions=3),
        study.CurvatureSettings(tangent=False),
        study.CurvatureSettings(rx="unconstrained"),  # the paper's protocol is keyed apart (issue 23)
    ]
    keys = {s.key() for s in changed}
    assert base.key() not in keys and len(keys) == len(changed)
    # settings a result does not depend on are normalised away: equal results, equal keys
    assert study.HScale("authors", value=3.0).key() == study.HScale("authors").key()
    assert (
        study.CurvatureSettings(method="exact", scale=study.HScale("custom", 2.0)).key()
        == study.CurvatureSettings(method="exact").key()
    )
    assert study.HScale("custom", 0.1).key() != study.HScale("custom", 0.1 + 1e-12).key()
    u = study.UniversalSettings()
    assert (
        len({u.key(), study.UniversalSettings(xi_ratio=None).key(), study.UniversalSettings(rx="unconstrained").key()})
        == 3
    )
    # stable across processes (no hash randomisation, no id())
    code = "from geometry import study; print(study.UniversalSettings().key(), study.CompareSettings().key())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [study.UniversalSettings().key(), study.CompareSettings().key()]


@pytest.mark.parametrize(
    "make, phrase",
    [
        (lambda: study.PointSplit(n_estimate=0), "n_estimate"),
        (lambda: study.PointSplit(seed=-1), "seed"),
        (lambda: study.HScale("guess"), "h preset"),
        (lambda: study.HScale("custom"), "custom h"),
        (lambda: study.HScale("custom", float("nan")), "custom h"),
        (lambda: study.CurvatureSettings(method="magic"), "method"),
        (lambda: study.UniversalSettings(share=1.5), "share"),
        (lambda: study.SectionSettings(resolution=100_000), "resolution"),
        (lambda: study.SectionSettings(rx="clipped"), "rx"),
        (lambda: study.UniversalSettings(xi_ratio=0.0), "xi_ratio"),
    ],
)
def test_bad_settings_are_refused_with_a_message(make, phrase):
    with pytest.raises(InvalidInputError, match=phrase):
        make()


def test_m_grid_exists_once_and_has_its_properties():
    assert study.m_grid(1) == [1] and study.m_grid(12) == list(range(1, 13))
    for m in (13, 20, 50, 200):
        g = study.m_grid(m)
        assert g[0] == 1 and g[-1] == m and g == sorted(set(g)) and len(g) <= 13
    with pytest.raises(InvalidInputError):
        study.m_grid(0)


# ------------------------------------------------------------------------------ points
def test_two_split_rule(digits):
    train, test = digits
    split = study.PointSplit(n_estimate=30, n_heldout=40, n_uap=20, seed=3)
    p = study.split_points(test, train, split)
    assert torch.equal(p.estimate, train.images[study.choose_points(len(train), 30, random_state=3)])
    assert torch.equal(p.heldout, test.images[:40]) and torch.equal(p.noise, test.images[: study.NOISE_POINTS])
    assert p.uap.shape[0] == 20 and p.heldout_indices.tolist() == list(range(40))
    assert p.estimate_key == study.data_fingerprint(p.estimate)


def test_one_split_rule_halves_and_estimation_points_ignore_heldout_count(digits):
    _, test = digits
    a = study.split_points(test, None, study.PointSplit(n_estimate=50, n_heldout=10, n_uap=30, seed=1))
    b = study.split_points(test, None, study.PointSplit(n_estimate=50, n_heldout=300, n_uap=30, seed=1))
    assert torch.equal(a.estimate, b.estimate) and a.estimate_key == b.estimate_key  # S_c shared across pages
    est, held = set(a.estimate_indices.tolist()), set(b.heldout_indices.tolist())
    assert not est & held  # disjoint halves
    with pytest.raises(InvalidInputError, match="at least 2 images"):
        study.split_points(
            type(test)(
                images=test.images[:1],
                labels=test.labels[:1],
                class_names=test.class_names,
                name="one",
                split="test",
                source="x",
            ),
            None,
            study.PointSplit(),
        )


def test_network_fingerprint_is_the_weights_not_the_name(digits_lenet):
    up = _scripted_copy(digits_lenet)
    assert up.name != digits_lenet.name
    assert study.network_fingerprint(up) == study.network_fingerprint(digits_lenet)
    other = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    from geometry.classifier import make_classifier

    assert study.network_fingerprint(
        make_classifier(other, input_shape=(1, 8, 8), class_names=digits_lenet.class_names)
    ) != study.network_fingerprint(digits_lenet)


# ------------------------------------------------------------------------------ the two consistency fixes
def test_cli_report_and_study_api_give_identical_numbers(digits_lenet, digits, tmp_path, fresh_cache, capsys):
    from geometry.cli import main

    fresh_cache("cli")
    out = tmp_path / "report"
    code = main(
        [
            "report",
            "--zoo",
            "digits-lenet",
            "--n-points",
            "30",
            "--n-heldout",
            "30",
            "--noise-share",
            "0.5",
            "--xi-from-noise",  # ξ = 1/5 of the noise norm (the default is 4 % of ‖x‖)
            "--m",
            "6",
            "--sections",
            "0",
            "--n-directions",
            "3",
            "--n-samples",
            "4",
            "--seed",
            "2",
            "--out",
            str(out),
            "-q",
        ]
    )
    assert code == 0, capsys.readouterr().err
    sub = json.loads((out / "subspaces.json").read_text())
    fool = json.loads((out / "fooling_rate_vs_m.json").read_text())

    fresh_cache("api")  # computed again from scratch, not read from the report's cache
    train, test = digits
    split = study.PointSplit(n_estimate=30, n_heldout=30, seed=2)
    settings = study.CurvatureSettings(points=split, m_max=6, n_directions=3)
    assert sub["settings_key"] == settings.key()
    points = study.split_points(test, train, split)
    cs = study.curvature_study(digits_lenet, points, settings)
    assert sub["curvature_vs_m"]["m_values"] == list(cs.m_values)
    for name, curve in cs.curves.items():
        assert sub["curvature_vs_m"][name]["mean"] == [float(v) for v in curve.mean]  # exactly
    assert sub["curvatures"] == [float(v) for v in cs.curved.curvatures]
    noise = study.noise_norm(digits_lenet, points, 0.5)
    assert fool["xi"] == study.xi(noise)
    ms = [m for m in cs.m_values if m <= min(cs.curved.m, cs.flat.m)]
    fc = study.fooling_curve(
        digits_lenet,
        points,
        {"S_c": cs.curved, "S_f": cs.flat, "random": cs.random},
        m_values=ms,
        xi=study.xi(noise),
        n_samples=4,
        seed=2,
    )
    for name in fc.names:
        assert fool[name]["mean"] == [float(v) for v in fc.mean[name]]


def test_same_weights_under_two_names_give_identical_universal_results(digits_lenet, digits, fresh_cache):
    """The measured inconsistency: UAP 32 % for the zoo network, 46 % for the same weights uploaded."""
    train, test = digits
    up = _scripted_copy(digits_lenet)
    settings = study.UniversalSettings(points=study.PointSplit(40, 150, 150), m_max=6, n_samples=4)
    points = study.split_points(test, train, settings.points)
    fresh_cache("zoo")
    a = study.universal_study(digits_lenet, points, settings)
    fresh_cache("upload")  # no shared cache: computed again for the uploaded copy
    b = study.universal_study(up, points, settings)
    assert a.uap_heldout == b.uap_heldout and a.xi == b.xi and a.h == b.h
    assert torch.equal(a.uap.v, b.uap.v)
    for name in a.curve.names:
        assert np.array_equal(np.asarray(a.curve.mean[name]), np.asarray(b.curve.mean[name]))
    # …and with a shared cache the second name is served the first one's result
    assert study.universal_study(up, points, settings) is b


# ------------------------------------------------------------------------------ the cache
def test_results_survive_the_disk_round_trip(digits_lenet, digits, fresh_cache, tmp_path):
    train, test = digits
    fresh_cache("roundtrip")
    settings = study.CurvatureSettings(points=study.PointSplit(20, 20), m_max=4, n_directions=2)
    points = study.split_points(test, train, settings.points)
    first = study.curvature_study(digits_lenet, points, settings)
    study.clear_memory()
    second = study.curvature_study(digits_lenet, points, settings)
    assert second is not first  # read back from disk
    assert torch.equal(first.curved.basis, second.curved.basis) and second.m_values == first.m_values
    assert np.array_equal(np.asarray(first.curves["S_f"].mean), np.asarray(second.curves["S_f"].mean))
    assert second.h_text == first.h_text and second.n_heldout == first.n_heldout


def test_a_damaged_study_file_is_recomputed_and_foreign_classes_are_refused(fresh_cache, tmp_path):
    from geometry.cache import CorruptFileError, cache_dir

    fresh_cache("damaged")
    calls = []

    def compute():
        calls.append(1)
        return study.ResolvedH(h=0.5, text="x", preset="custom")

    assert study.cached_result("unit", {"k": 1}, compute).h == 0.5
    (path,) = list(cache_dir("studies").glob("unit-*.safetensors"))
    path.write_bytes(path.read_bytes()[:-7])  # truncated
    study.clear_memory()
    with pytest.warns(UserWarning, match="damaged|removed"):
        assert study.cached_result("unit", {"k": 1}, compute).h == 0.5
    assert len(calls) == 2
    with pytest.raises(CorruptFileError, match="outside geometry"):
        study.decode_result({"__dataclass": "os:PathLike", "fields": {}}, {})
