"""The house's layers hold (issue 19, item 3; DESIGN §2): read from the code's own imports.

Every module under ``geometry/`` belongs to one layer (:data:`LAYERS`); a module imports only its own
layer or the layers below it, never a layer above; the study layer reaches the runtime only through
arguments (an executor), never by import; no import circle between modules; no module takes another
layer's ``_private`` names; ``geometry/`` never imports streamlit or the app. Imports inside functions
count as much as those at the top: a lazy import that runs up a layer is still a dependency.

The package facade ``geometry/__init__.py`` re-exports the public API of the core and data layers and
is checked like a module of the data layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GEOMETRY = ROOT / "geometry"

#: Layers, bottom (0) to top. A module's layer is that of its longest matching prefix.
LAYERS: dict[str, int] = {
    # 0 — base: errors, input checks, progress convention, disk cache, device resolution
    "geometry.errors": 0,
    "geometry.validation": 0,
    "geometry.progress": 0,
    "geometry.cache": 0,
    "geometry.device": 0,
    # 1 — core maths: one quantity per module, pure torch / numpy / scipy
    "geometry.classifier": 1,
    "geometry.architectures": 1,
    "geometry.testing": 1,
    "geometry.deepfool": 1,
    "geometry.hessian": 1,
    "geometry.curvature": 1,
    "geometry.sections": 1,
    "geometry.subspaces": 1,
    "geometry.universal": 1,
    "geometry.theory": 1,
    "geometry.compare": 1,
    "geometry.attacks": 1,
    "geometry.lipschitz": 1,
    "geometry.lipschitz_torchscript": 1,
    "geometry.certify": 1,
    "geometry.crown": 1,
    "geometry.lmt": 1,
    "geometry.regimes": 1,
    "geometry.profile": 1,
    "geometry.toy2d": 1,
    "geometry.regions2d": 1,
    "geometry.autoattack": 1,
    "geometry.minimal": 1,
    "geometry.masking": 1,
    # 2 — sources and formats: datasets, user model files, the zoo (+ the package facade)
    "geometry.data": 2,
    "geometry.loading": 2,
    "geometry.zoo": 2,
    "geometry": 2,
    # 3 — runtime: background jobs, torch.distributed (used by the study layer only through arguments)
    "geometry.runtime": 3,
    # 4 — study: every figure's protocol, settings (every default, once), caches, the report
    "geometry.study": 4,
    # 5 — presentation: figures, writing reports and downloads
    "geometry.plotting": 5,
    "geometry.output": 5,
    # 6 — entry points: the command line (the app, outside geometry/, sits beside it)
    "geometry.cli": 6,
}
#: Entries that name one module only (the package facade), not every module below it.
EXACT = {"geometry"}
#: (importer layer, imported layer) pairs that are forbidden although the imported layer is lower.
FORBIDDEN = {(4, 3)}  # the study layer gets runtime services as arguments, never by import


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    best = None
    for prefix, layer in LAYERS.items():
        matches = module == prefix or (prefix not in EXACT and module.startswith(prefix + "."))
        if matches and (best is None or len(prefix) > len(best[0])):
            best = (prefix, layer)
    return None if best is None else best[1]


MODULES = {module_name(p): p for p in sorted(GEOMETRY.rglob("*.py"))}


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imports_of(module: str) -> list[tuple[str, list[str]]]:
    """(imported module, imported names) for every import statement of ``module``, at any depth."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = (
                _resolve(module, path.name == "__init__.py", node.level, node.module) if node.level else node.module
            )
            names = [alias.name for alias in node.names]
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            if submodules:  # `from . import study` imports the module geometry.study
                out += [(s, []) for s in submodules]
                names = [n for n in names if f"{target}.{n}" not in MODULES]
            if names or not submodules:
                out.append((target or "", names))
    return out


def internal_edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for m in MODULES:
        for target, _ in imports_of(m):
            while target and target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in MODULES and target != m:
                graph[m].add(target)
    return graph


def test_every_module_has_a_layer():
    missing = [m for m in MODULES if layer_of(m) is None]
    assert not missing, f"modules without a layer (add them to LAYERS and to the README's Layout): {missing}"


def test_no_import_runs_up_a_layer():
    violations = []
    for m, targets in internal_edges().items():
        lm = layer_of(m)
        for t in targets:
            if m.startswith(t + ".") and MODULES[t].name == "__init__.py":
                continue  # a module's own package facade (imported for its siblings) is not a dependency
            lt = layer_of(t)
            if lm is None or lt is None:
                continue
            if lt > lm or (lm, lt) in FORBIDDEN:
                violations.append(f"{m} (layer {lm}) imports {t} (layer {lt})")
    assert not violations, "imports that run up (or into the runtime from the study layer):\n" + "\n".join(violations)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    graph = internal_edges()
    # a package's __init__ re-exporting its submodules is a facade, not a dependency of the submodules on it
    for m in graph:
        graph[m] = {t for t in graph[m] if not (m.startswith(t + ".") and MODULES[t].name == "__init__.py")}
    assert not _cycles(graph), f"import circles: {_cycles(graph)}"


def test_the_cycle_finder_finds_a_planted_circle():
    """The check above can fail: a planted a → b → c → a is found, a chain is not."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_private_names_taken_across_a_layer():
    violations = []
    for m in MODULES:
        for target, names in imports_of(m):
            if not target.startswith("geometry"):
                continue
            lm, lt = layer_of(m), layer_of(target)
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and lm != lt:
                violations.append(f"{m} takes {private} from {target}")
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_geometry_never_imports_the_app(module):
    bad = [t for t, _ in imports_of(module) if t.split(".")[0] in {"streamlit", "pages", "app"}]
    assert not bad, f"{module} imports {bad}: geometry/ never knows about the app"


def test_the_command_line_only_parses():
    """geometry/cli/ parses options and calls studies and writers (issue 19, item 2): no function there grows
    past 150 lines (the old run_report was 544)."""
    long = []
    for m, path in MODULES.items():
        if not m.startswith("geometry.cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and (node.end_lineno or 0) - node.lineno >= 150
            ):
                long.append(f"{m}.{node.name}: {(node.end_lineno or 0) - node.lineno + 1} lines")
    assert not long, long
