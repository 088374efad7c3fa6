"""Shared pytest fixtures.

* Every test session gets its own on-disk cache (``BOUNDARY_ATLAS_CACHE``) unless the variable is
  already set, so tests never write into the user's home cache.
* ``shared_data``: the project's offline data folder (``../shared/data`` or ``$BOUNDARY_ATLAS_DATA``).
  Tests that need it are skipped when it is missing, except in CI (``$CI`` set), where they fail.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# No first-start background training of mnist-lenet in tests (pages/ui/jobs.py, issue 13): the app keeps
# digits-lenet as its default and never starts a minutes-long job behind a test's back.
os.environ.setdefault("ATLAS_BACKGROUND_TRAINING", "0")
# A study page waits for its own study instead of showing the last finished one meanwhile (pages/ui/jobs.py,
# issue 20): each test's run expects its own result; the tests of the stand-in set the delay themselves.
os.environ.setdefault("ATLAS_STUDY_MEANWHILE", "off")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory):
    """Point ``BOUNDARY_ATLAS_CACHE`` at a session-wide temporary folder unless already set."""
    if os.environ.get("BOUNDARY_ATLAS_CACHE"):
        yield Path(os.environ["BOUNDARY_ATLAS_CACHE"])
        return
    path = tmp_path_factory.mktemp("boundary-atlas-cache")
    os.environ["BOUNDARY_ATLAS_CACHE"] = str(path)
    try:
        yield path
    finally:
        os.environ.pop("BOUNDARY_ATLAS_CACHE", None)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The offline data folder (see ``geometry.data.shared_data_root``).

    Skips the test when it is missing; fails instead when ``$CI`` is set, where the data is
    mandatory.
    """
    import geometry
    from geometry.data import DATA_ENV, shared_data_root

    root = shared_data_root()
    if root is not None:
        return root
    env = os.environ.get(DATA_ENV, "").strip()
    default = Path(geometry.__file__).resolve().parent.parent.parent / "shared" / "data"
    where = f"${DATA_ENV}={env!r} is not a folder" if env else f"{default} does not exist and ${DATA_ENV} is not set"
    reason = f"shared offline data not found: {where}"
    if _in_ci():
        pytest.fail(f"{reason} (mandatory because $CI is set)", pytrace=False)
    pytest.skip(reason)


# ---------------------------------------------------------------------------- trained networks
# Session-scoped, so each network is trained at most once per test run (then read from the
# session's cache). Real-data ones depend on ``shared_data`` (skip locally, fail in CI).
@pytest.fixture(scope="session")
def digits_lenet():
    from geometry import zoo

    return zoo.load_model("digits-lenet")


@pytest.fixture(scope="session")
def mnist_lenet(shared_data):
    from geometry import zoo

    return zoo.load_model("mnist-lenet", root=shared_data)


@pytest.fixture(scope="session")
def mnist_nin(shared_data):
    from geometry import zoo

    return zoo.load_model("mnist-nin", root=shared_data)


@pytest.fixture(scope="session")
def mnist_data(shared_data):
    """(train, test) MNIST datasets from the offline data."""
    from geometry.data import load_dataset

    return load_dataset("mnist", root=shared_data, split="train"), load_dataset("mnist", root=shared_data, split="test")


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of small problems: on a busy 2-core machine extra threads only
    add overhead (up to 10× slower). Restores the previous setting afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _main_module_restored():
    """Streamlit's script runner (AppTest included) makes each script it runs ``sys.modules["__main__"]`` and may leave
    it there; a worker process started later by ``multiprocessing``'s spawn re-runs the parent's ``__main__`` file, so
    it would run an AppTest.from_function temporary script (``NameError: __args``) and exit 1. Put pytest's back."""
    main = sys.modules.get("__main__")
    yield
    if main is not None and sys.modules.get("__main__") is not main:
        sys.modules["__main__"] = main
