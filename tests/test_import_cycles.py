"""The package's import graph has no cycles (imports inside functions count; ``if TYPE_CHECKING:`` ones do not)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

REPO = Path(__file__).resolve().parents[1]
#: package name -> folder (pyproject's [tool.setuptools.package-dir] maps three sub-packages elsewhere)
ROOTS = {"grace_rag": REPO / "grace_rag", "grace_rag.integrations": REPO / "integrations",
         "grace_rag.trainer": REPO / "trainer", "grace_rag.indexes": REPO / "indexes"}


def modules() -> dict[str, Path]:
    """Every module of the distribution by its dotted name (a package by its ``__init__``)."""
    out = {}
    for package, folder in ROOTS.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if any(part.startswith(".") for part in parts):
                continue
            name = ".".join([package, *parts]).removesuffix(".__init__")
            out.setdefault(name, path)
    return out


def _runtime_nodes(tree: ast.AST):
    """Every node, skipping the bodies of ``if TYPE_CHECKING:`` (annotations only, never imported at run time)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of the distribution that module ``name`` imports (``from a import b``: a.b if a module, else a)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # grace_rag.x.Y -> grace_rag.x
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> nx.DiGraph:
    found = modules()
    graph = nx.DiGraph()
    for name, path in found.items():
        graph.add_node(name)
        graph.add_edges_from((name, target) for target in imported(name, path, set(found)))
    return graph


def test_the_graph_is_read_from_the_code():
    graph = import_graph()
    assert graph.has_edge("grace_rag.encoder", "grace_rag.config")
    assert graph.has_edge("grace_rag.indexes.retriever", "grace_rag.indexes.grace_index")
    assert graph.has_edge("grace_rag.trainer.loop", "grace_rag.trainer.config")  # a relative import
    assert not graph.has_edge("grace_rag.generation", "grace_rag.representation")  # TYPE_CHECKING only


def test_no_module_imports_itself_through_others():
    cycles = sorted(sorted(cycle) for cycle in nx.simple_cycles(import_graph()))
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)
