"""The project's modules import one another without a circle, lazy imports included, and
``import signed_saliency`` stays light: heavy libraries load where they are used."""

from __future__ import annotations

import ast
import graphlib
import json
import subprocess
import sys
from pathlib import Path

from signed_saliency.lazy import lazy_import

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("signed_saliency", "benchmarks")
# captum brings matplotlib and IPython; any part of torchvision brings all of it and
# torch._dynamo: together they tripled the import's time
HEAVY = ["captum", "skimage", "seaborn", "matplotlib", "torchvision", "torch._dynamo", "pandas", "scipy"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, importer: str, is_package: bool, modules: set[str]) -> set[str]:
    """The project modules ``importer`` imports anywhere in its file (inside functions too)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importer's package
                package = importer.split(".") if is_package else importer.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            # "from package import module" imports the module; "from module import name", the module
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names}
    return found & modules


def import_graph() -> dict[str, set[str]]:
    """Each project module to the project modules it imports."""
    files = {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    return {
        name: imported(ast.parse(path.read_text(), filename=str(path)), name, path.name == "__init__.py", set(files)) - {name}
        for name, path in files.items()
    }


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_no_module_imports_itself_through_others():
    graph = import_graph()
    assert sum(map(len, graph.values())) > 50  # the parsing found the imports
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        raise AssertionError(f"an import circle: {' -> '.join(error.args[1])}") from None


def test_the_library_never_imports_the_runner():
    graph = import_graph()
    assert not [(a, b) for a, targets in graph.items() for b in targets
                if a.startswith("signed_saliency") and b.startswith("benchmarks")]


def test_the_rooms_import_downwards_only():
    """store knows the disk and nothing above it; report and figures never reach the CLI."""
    graph = import_graph()
    assert not {"benchmarks.cli", "benchmarks.pipeline", "benchmarks.run"} & reachable(graph, "benchmarks.report")
    assert "benchmarks.report" not in reachable(graph, "benchmarks.figures")
    assert {b for b in reachable(graph, "benchmarks.store") if b.startswith("benchmarks.")} <= {
        "benchmarks.files", "benchmarks.store.archive"}
    assert "benchmarks.cli" not in reachable(graph, "benchmarks.speed.precision")


def test_importing_the_package_loads_none_of_the_heavy_libraries():
    code = f"import json, sys, signed_saliency; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(result.stdout) == []


def test_a_lazy_import_stands_for_its_target_once_used():
    counter_class = lazy_import("collections", "Counter")
    assert "not imported yet" in repr(counter_class)
    counts = counter_class("aab")
    assert counts["a"] == 2 and isinstance(counts, counter_class)
    assert lazy_import("os.path").join("a", "b") == "a/b"
    assert lazy_import("collections", "OrderedDict.fromkeys")("ab") == {"a": None, "b": None}


MAX_LINES = 350


def test_no_module_is_over_350_lines():
    counts = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }
    assert {path: lines for path, lines in counts.items() if lines > MAX_LINES} == {}
