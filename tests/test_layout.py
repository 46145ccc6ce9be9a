"""The house rules of the layout, checked on the source: rooms of a readable size, no import circles,
and arrows that run one way (serving never imports training; servable models import nothing training-only)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO

PACKAGES = ("features", "training", "serving")
MAX_LINES = 350


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imports(path: Path, name: str, top_level_only: bool) -> set[str]:
    """Absolute names a module imports (relative imports resolved); only module-level statements if asked."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".")[: -node.level] if path.name != "__init__.py" else name.split(".")[: len(name.split(".")) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return found


def test_every_module_is_a_readable_size() -> None:
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_import_circles() -> None:
    mods = modules()
    graph = {name: {m for m in imports(path, name, True) if m in mods and m != name} for name, path in mods.items()}
    state: dict[str, int] = {}
    circles: list[str] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1 and not node.startswith(f"{nxt}."):  # a package importing its own parts is no circle
                circles.append(" -> ".join([*trail[trail.index(nxt):], nxt]))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not circles, f"import circles: {circles}"


def test_serving_never_imports_training_and_servable_models_import_nothing_training_only() -> None:
    for name, path in modules().items():
        found = {m.split(".")[0] for m in imports(path, name, False)}
        if name.startswith("serving"):
            assert "training" not in found, f"{name} imports training"
        if name.startswith("serving.models"):
            assert not found & {"optuna", "matplotlib"}, f"{name} imports {found & {'optuna', 'matplotlib'}}"
