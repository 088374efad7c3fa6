"""The benchmark's timing lines (pages.ui.timing): a fragment drawn inside a full script run is part of that run,
so only the run is logged; a fragment's own rerun is logged as the fragment (issue 20's script column)."""

from __future__ import annotations

import json

from pages.ui import timing


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_fragment_inside_a_script_run_is_not_counted_twice(tmp_path, monkeypatch):
    log = tmp_path / "timing.jsonl"
    monkeypatch.setenv("ATLAS_TIMING", str(log))

    @timing.timed("chart")
    def fragment() -> None:
        pass

    with timing.run_timer("script", "page"):
        fragment()  # a full run draws its fragment
    assert [r["kind"] for r in _lines(log)] == ["script"]
    fragment()  # the fragment's own rerun
    assert [r["kind"] for r in _lines(log)] == ["script", "fragment:chart"]


def test_nothing_is_logged_without_atlas_timing(tmp_path, monkeypatch):
    monkeypatch.delenv("ATLAS_TIMING", raising=False)
    with timing.run_timer("script", "page"):
        pass
    assert not list(tmp_path.iterdir())
