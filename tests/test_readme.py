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


def _layout_section() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Layout\n(.+?)(?=^## |\Z)", text, re.S | re.M)
    assert match, "the README has a '## Layout' section"
    return match.group(1)


def _layout_entries() -> set[str]:
    """Every path the Layout section's tree names: folders end in '/', a file line names one or
    more files separated by spaces or commas (``deepfool.py``, ``report.py, downloads.py``)."""
    block = re.search(r"```\n(.+?)\n```", _layout_section(), re.S)
    assert block, "the Layout section holds a tree in a code block"
    entries: set[str] = set()
    stack: list[tuple[int, str]] = []  # (indent, folder path)
    for line in block.group(1).splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        head = line.strip().split("  ")[0]  # names come first, two spaces before the description
        while stack and stack[-1][0] >= indent:
            stack.pop()
        prefix = stack[-1][1] if stack else ""
        for name in re.split(r"[,\s]+", head):
            if not name or not re.fullmatch(r"[\w./-]+", name):
                continue
            if name.endswith("/"):
                entries.add(prefix + name)
                stack.append((indent, prefix + name))
            elif name.endswith(".py"):
                entries.add(prefix + name)
    return entries


def test_the_readme_layout_names_every_module_and_page_helper():
    """The map stays true (issue 19, item 7): every module under geometry/ and every page helper
    under pages/ui/ appears in the README's Layout tree, and nothing it names is missing."""
    entries = _layout_entries()
    wanted = {
        str(p.relative_to(ROOT))
        for folder in ("geometry", "pages/ui")
        for p in (ROOT / folder).rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    }
    missing = sorted(wanted - entries)
    assert not missing, f"modules missing from the README's Layout section: {missing}"
    stale = sorted(e for e in entries if e.endswith(".py") and not (ROOT / e).exists())
    assert not stale, f"the README's Layout names files that do not exist: {stale}"


def test_the_layout_parser_reads_nested_folders():
    """The parser above can fail: a nested tree is read with its folder prefixes."""
    global _layout_section
    saved = _layout_section
    try:
        _layout_section = lambda: "```\na/  top\n  b.py, c.py  two files\n  d/  sub\n    e.py  one\nf.py\n```\n"
        assert _layout_entries() == {"a/", "a/b.py", "a/c.py", "a/d/", "a/d/e.py", "f.py"}
    finally:
        _layout_section = saved
