"""The README's two one-line commands stay true: CI runs the test command verbatim, and the run
command starts the app on the embedded default."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text)


def test_ci_runs_the_readme_test_command_verbatim():
    test_cmd = next(c for c in _commands() if "pytest" in c)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines()


def test_readme_run_command_starts_the_app():
    run_cmd = next(c for c in _commands() if "streamlit run" in c)
    assert run_cmd.endswith("streamlit run app.py")
    assert "BOUNDARY_ATLAS_DATA" not in run_cmd  # the default needs no data
