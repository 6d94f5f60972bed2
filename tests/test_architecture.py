"""The house plan: modules import only downwards, and never in circles.

Every ``import`` statement of the package is read (those inside functions too), so a lazy
import cannot hide a knot. Layers, lowest first; a module may import from its own layer and
the ones below, never from a layer above.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import aumaps

PACKAGE = Path(aumaps.__file__).resolve().parent

LAYERS: list[set[str]] = [
    # facts and small tools
    {"aus", "geometry", "atomic", "timing", "hardware", "images", "pretrained", "shards"},
    # the method's pieces
    {"align", "calibrate", "codec", "model", "landmarks", "results", "loss", "metrics", "pose", "confidence"},
    # weights, data sets and their descriptions
    {"weights", "data.manifest", "data.labels", "data.synth"},
    # building blocks of prediction and training
    {
        "data",
        "runtime",
        "tracking",
        "readout",
        "data.augment",
        "data.cache",
        "data.bp4d",
        "data.disfa",
        "data.dataset",
        "data.prepare",
        "distributed",
    },
    # the model side of prediction; pictures
    {"estimator", "visualise"},
    # pipelines
    {"video", "report", "evaluate"},
    # what users call
    {"predict", "train", "demo", "serve", "study"},
    # the command line and the package's front
    {"cli", "__main__", "__init__"},
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _group(module: str) -> str | None:
    """The layer entry a module belongs to (the longest matching prefix)."""
    best = None
    for layer in LAYERS:
        for entry in layer:
            if (module == entry or module.startswith(entry + ".")) and (best is None or len(entry) > len(best)):
                best = entry
    return best


def _layer(entry: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if entry in layer)


def _imports() -> dict[str, set[str]]:
    """module -> the aumaps modules it imports (relative to the package, e.g. ``data.cache``)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        base = name.split(".") if is_package else name.split(".")[:-1]
        if name == "__init__":
            base = []
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    if not (node.module or "").startswith("aumaps"):
                        continue
                    parts = node.module.split(".")[1:]
                else:
                    parts = base[: len(base) - (node.level - 1)] + (node.module.split(".") if node.module else [])
                for alias in node.names:
                    candidate = ".".join(parts + [alias.name])
                    targets.add(candidate if candidate in modules else ".".join(parts))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("aumaps."):
                        targets.add(alias.name.split(".", 1)[1])
        graph[name] = {t for t in targets if t and t in modules and t != name}
    return graph


def test_every_module_has_a_place_in_the_plan():
    unplaced = sorted(m for m in _imports() if _group(m) is None)
    assert not unplaced, f"modules missing from LAYERS: {unplaced}"


def test_nothing_imports_upwards():
    upward = []
    for module, targets in _imports().items():
        mine = _layer(_group(module))
        for target in targets:
            theirs = _layer(_group(target))
            if theirs > mine:
                upward.append(f"{module} (layer {mine}) imports {target} (layer {theirs})")
    assert not upward, "\n".join(sorted(upward))


def test_no_import_cycles():
    graph = _imports()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            # a package and the submodules its __init__ re-exports form a legitimate pair
            real = [m for m in component if not any(o.startswith(m + ".") for o in component)]
            if len(component) > 1 and len(real) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_the_readme_layout_names_every_module_and_no_other():
    readme = (PACKAGE.parents[1] / "README.md").read_text()
    block = readme.split("### Layout", 1)[1].split("```", 2)[1]
    named = set(re.findall(r"\b([a-z_0-9]+)\.py\b", block)) | set(re.findall(r"\b([a-z_0-9]+)\b", block))
    modules = {p.stem for p in PACKAGE.rglob("*.py")} | {
        p.name for p in PACKAGE.rglob("*") if p.is_dir() and p.name != "__pycache__"
    }
    missing = sorted(m for m in modules if m not in named)
    assert not missing, f"modules the README's layout does not name: {missing}"
    stale = sorted(m for m in re.findall(r"\b([a-z_0-9]+)\.py\b", block) if m not in modules)
    assert not stale, f"the README's layout names modules that do not exist: {stale}"
