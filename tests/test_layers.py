"""The code reads top-down: packages in layers, no import loop, nothing reaching back up.

The graph is built from the source (every ``import`` statement, including those inside
functions, because a function-level import is how a loop usually hides), not from
``sys.modules``, so it sees code paths no test happens to execute.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

# Lowest first. A package may import packages of a lower layer and itself, nothing else:
# beam_local runs Beam in this process, csvio/features hold definitions, model the Keras model,
# serving the server, ondevice the phone/browser side, modules the TFX module files, components
# the TFX components, pipeline the orchestration. (tests/ and benchmarks/ are entry points above all of them.)
LAYERS: tuple[tuple[str, ...], ...] = (
    ("beam_local", "csvio", "features"),
    ("model", "serving"),
    ("ondevice",),
    ("components",),
    ("pipeline",),
)
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}
# TFX loads these by file path (module_file=...); no project code imports them.
MODULE_FILES = {"modules.preprocessing", "modules.training", "modules.tuning"}
ENTRY_POINTS = ("tests", "benchmarks")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, name: str, is_package: bool) -> set[str]:
    """Every module ``source`` imports, anywhere in the file, as absolute dotted names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            # ``from package import module`` imports the submodule.
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def project_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports (tests and benchmarks excluded as importers)."""
    sources = {}
    for package in [*RANK, "modules"]:
        for path in (root / package).rglob("*.py"):
            if not path.name.endswith("_test.py"):
                sources[module_name(path, root)] = (path.read_text(), path.name == "__init__.py")
    return {name: {m for m in imports_of(src, name, is_pkg) if m in sources}
            for name, (src, is_pkg) in sources.items()}


def allowed(importer: str, target: str) -> bool:
    """May package ``importer`` import package ``target``? (top-level package names)"""
    if target == importer:
        return True
    if target == "modules":  # loaded by TFX from their path, never imported
        return False
    if importer == "modules":  # the module files use the definitions and the model code only
        return RANK[target] <= RANK["model"]
    return RANK[target] < RANK[importer]


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports that run up (or sideways) a layer, reach a module file, or import an entry point."""
    found = []
    for importer, targets in sorted(graph.items()):
        for target in sorted(targets):
            top, target_top = importer.split(".")[0], target.split(".")[0]
            if target in MODULE_FILES or target_top in ENTRY_POINTS or not allowed(top, target_top):
                found.append(f"{importer} -> {target}")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
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
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _without_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's ``__init__`` re-exporting its own submodules is not a loop (``components.x``
    importing ``components.x.component`` which imports ``components.x.executor``)."""
    return {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in graph.items()}


def test_the_checker_sees_a_real_edge_an_upward_import_and_a_loop():
    # Guards the two checks below against passing vacuously (a walker that finds nothing).
    graph = project_graph(ROOT)
    assert "components.csv_example_gen" in graph["pipeline.pipeline_def"]
    assert "features.feature_steps" in graph["model.training"]
    upward = {"features.task": {"pipeline.config"}, "pipeline.config": set()}
    assert violations(upward) == ["features.task -> pipeline.config"]
    into_module_file = {"ondevice.spec": {"modules.preprocessing"}, "modules.preprocessing": set()}
    assert violations(into_module_file) == ["ondevice.spec -> modules.preprocessing"]
    module_file_up = {"modules.training": {"ondevice.spec", "model.training"}}
    assert violations(module_file_up) == ["modules.training -> ondevice.spec"]
    sideways = {"serving.client": {"model.model_io"}, "csvio.reader": {"csvio.dialect"}}
    assert violations(sideways) == ["serving.client -> model.model_io"]
    loop = {"pipeline.a": {"pipeline.b"}, "pipeline.b": {"pipeline.c"}, "pipeline.c": {"pipeline.a"}}
    assert cycles(loop) == [["pipeline.a", "pipeline.b", "pipeline.c"]]
    # A function-level import counts: that is how the config loop used to hide.
    assert "pipeline.x" in imports_of("def f():\n    from pipeline import x\n", "pipeline.y", False)


def test_no_import_runs_up_a_layer():
    assert violations(project_graph(ROOT)) == []


def test_no_import_loop_between_modules():
    assert cycles(_without_package_inits(project_graph(ROOT))) == []


def test_modules_holds_only_the_tfx_module_files():
    files = {module_name(p, ROOT) for p in (ROOT / "modules").glob("*.py")} - {"modules"}
    assert files == MODULE_FILES
