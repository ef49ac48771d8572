"""The tree is the architecture: every import, function-level ones too, points down the layers
(shared leaves, data, core, runs, training, lm | classifier, pretrained, cli), and no module
takes part in an import circle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lstmtext"
LAYERS = {
    "": 0,  # the shared leaves directly in lstmtext/
    "data": 1,
    "core": 2,
    "runs": 3,
    "training": 4,
    "lm": 5,
    "classifier": 5,
    "pretrained": 6,
    "corpora": 6,
    "cli": 7,
}
MAX_TOP_LEVEL_MODULES = 12
MAX_MODULE_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> tuple[str, int]:
    parts = module.split(".")
    folder = parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else ""
    return folder, LAYERS[folder]


def imports() -> dict[str, set[str]]:
    """module -> the lstmtext modules it imports, anywhere in its body."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    found: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names if alias.name.startswith("lstmtext")}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lstmtext"):
                for alias in node.names:  # `from lstmtext.runs import checkpoint` names a module
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in modules else node.module)
        found[name] = {t for t in targets if t in modules and t != name}
    return found


def test_every_import_points_down_or_across_its_own_folder() -> None:
    upward = []
    for module, targets in imports().items():
        if module in ("lstmtext", "lstmtext.__main__"):
            continue  # the package's lazy public names and `python -m` reach everything by design
        folder, level = layer_of(module)
        for target in targets:
            target_folder, target_level = layer_of(target)
            if target_level > level or (target_level == level and target_folder != folder):
                upward.append(f"{module} -> {target}")
    assert not upward, "imports against the layers:\n" + "\n".join(sorted(upward))


def test_no_import_circle() -> None:
    graph = imports()
    graph.pop("lstmtext", None)
    for edges in graph.values():
        edges.discard("lstmtext")
    state: dict[str, int] = {}
    circle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                circle.extend(
                    path[path.index(target) :] + [node, target] if target in path else [node, target]
                )
                return True
            if state.get(target) is None and visit(target, [*path, node]):
                return True
        state[node] = 2
        return False

    for node in sorted(graph):
        if state.get(node) is None and visit(node, []):
            break
    assert not circle, "import circle: " + " -> ".join(circle)


def test_the_tree_stays_small_at_the_top_and_in_each_module() -> None:
    top = [path.name for path in PACKAGE.glob("*.py")]
    assert len(top) <= MAX_TOP_LEVEL_MODULES, sorted(top)
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, long


def test_the_module_map_in_the_docs_is_the_tree() -> None:
    """docs/internals.md names one row per folder, and the leaves row every top-level module."""
    page = (PACKAGE.parent / "docs" / "internals.md").read_text(encoding="utf-8")
    rows = {
        line.split("|")[1].strip().strip("`"): line
        for line in page.splitlines()
        if line.startswith("| `lstmtext/")
    }
    folders = {f"lstmtext/{p.parent.name}/" for p in PACKAGE.glob("*/__init__.py")} | {"lstmtext/"}
    assert set(rows) == folders
    leaves = {p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    assert {name for name in leaves if f"`{name}`" in rows["lstmtext/"]} == leaves
