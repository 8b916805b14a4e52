"""The package's import graph: no cycles, and every import between rooms allowed by ARCHITECTURE.md.

Imports inside functions count; ``if TYPE_CHECKING:`` ones do not (annotations only).
"""

from __future__ import annotations

import ast
import re
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


#: room of a module: the longest matching prefix (the rest of grace_rag is the core)
ROOM_PREFIXES = {"grace_rag.evaluation": "evaluation", "grace_rag.indexes": "indexes", "grace_rag.trainer": "trainer",
                 "grace_rag.integrations": "integrations", "grace_rag.server": "server", "grace_rag.cli": "cli"}


def room(module: str) -> str:
    return next((name for prefix, name in ROOM_PREFIXES.items() if module == prefix or module.startswith(prefix + ".")),
                "core")


def allowed_rooms() -> dict[str, set[str]]:
    """The "Which room may import which" table of ARCHITECTURE.md."""
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## Which room may import which", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\w+) \| ([^|]+) \|$", section, re.M)
    return {name: {r.strip() for r in allowed.split(",") if r.strip() not in ("–", "")}
            for name, allowed in rows if name != "room"}


def test_every_room_of_the_code_is_in_the_architecture_table():
    table = allowed_rooms()
    assert set(table) == {room(m) for m in import_graph()} == {"core", *ROOM_PREFIXES.values()}


def test_imports_between_rooms_follow_the_architecture_table():
    table = allowed_rooms()
    wrong = sorted(f"{a} -> {b}" for a, b in import_graph().edges()
                   if room(a) != room(b) and room(b) not in table[room(a)])
    assert wrong == [], "imports ARCHITECTURE.md does not allow: " + "; ".join(wrong)
