"""Import structure of corr_core: arrows point downward, no package imports one that imports it back.

The graph is built from the source with ``ast`` (every ``import``, at module level or inside a
function, except under ``if TYPE_CHECKING:``), so a lazy import that closes a loop is caught too.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import corr_core

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "corr_core"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> set[str]:
    """corr_core modules imported anywhere in ``path`` (relative imports resolved)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.add(module)
            out.update(f"{module}.{a.name}" for a in node.names)  # `from pkg import submodule`
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return {m for m in out if m == "corr_core" or m.startswith("corr_core.")}


def _unit(module: str) -> str:
    """The package (or top-level module) of ``corr_core`` a module belongs to: ``corr_core.data.sim.x`` ->
    ``corr_core.data``."""
    return ".".join(module.split(".")[:2])


def _graph() -> dict[str, dict[str, list[str]]]:
    """``{unit: {imported unit: ["importer -> imported", ...]}}`` over every corr_core source file."""
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        src = _module_name(path)
        for target in _imports(path):
            if target not in modules:  # `from pkg import name` where name is not a module
                continue
            a, b = _unit(src), _unit(target)
            if a != b and a != "corr_core" and b != "corr_core":
                graph.setdefault(a, {}).setdefault(b, []).append(f"{src} -> {target}")
    return graph


def _cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, {}):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_no_import_cycle_between_corr_core_packages():
    graph = _graph()
    cycles = _cycles(graph)
    detail = [edge for comp in cycles for a in comp for b, edges in graph.get(a, {}).items() if b in comp
              for edge in edges]
    assert not cycles, f"import cycles between corr_core packages: {cycles}\n" + "\n".join(detail)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}, "d": {"a": []}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b": []}, "b": {}}) == []


def test_runtime_and_export_share_the_onnx_contract_and_do_not_import_each_other_or_the_api():
    graph = _graph()
    for low in ("corr_core.runtime", "corr_core.export"):
        assert not set(graph.get(low, {})) & {"corr_core.api", "corr_core.runtime", "corr_core.export"} - {low}, low
        assert "corr_core.io" in graph[low]
    from corr_core.export import onnx as export_onnx_module
    from corr_core.io import onnx_format
    from corr_core.runtime import onnxruntime as runtime_module

    for name in ("INPUT_NAME", "OUTPUT_NAME", "ONNX_FORMAT"):
        assert getattr(export_onnx_module, name) is getattr(onnx_format, name)
        assert getattr(runtime_module, name) is getattr(onnx_format, name)


def test_every_corr_core_module_imports():
    """Every module loads on its own (the graph above is of modules that exist and import)."""
    failed = {}
    for info in pkgutil.walk_packages(corr_core.__path__, "corr_core."):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except ImportError as exc:
            failed[info.name] = repr(exc)
    assert not failed, failed
