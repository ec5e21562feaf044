"""The house rules a reader can check (docs/ARCHITECTURE.md): no import circles, one atomic
writer, thin commands, and objectives that plug in."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "agscm"
COMMAND_BODY_LINES = 40
# docs/ARCHITECTURE.md's layers, top first: a module may import its own layer or one above
LAYERS = (
    {"errors", "atomic", "digest", "locks", "provenance", "formatting", "progress", "contract"},
    {"data"},
    {"runtime", "pretrained"},
    {"models"},
    {"attacks"},
    {"train"},
    {"export"},
    {"eval", "demo", "web"},
    {"commands", "cli"},
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The agscm modules `path` imports anywhere in it (lazy imports in functions too): for
    `from a.b import c`, a.b.c when that is a module, else a.b."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in known else node.module)
    return {name for name in found if name in known}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imported_modules(path, set(paths)) - {name} for name, path in paths.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = import_graph()
    assert len(graph) > 100 and "agscm.train.objectives" in graph["agscm.train.trainer"]
    assert circles(graph) == []


def layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else "atomic"  # the package itself: ground
    return next(index for index, names in enumerate(LAYERS) if part in names)


def test_arrows_run_one_way() -> None:
    upward = [f"{module} -> {target}" for module, targets in import_graph().items()
              if module != "agscm.__main__" for target in targets if layer(target) > layer(module)]
    assert upward == []


def test_the_circle_finder_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_one_atomic_write_implementation() -> None:
    renames = {path.relative_to(PACKAGE.parent).as_posix()
               for path in PACKAGE.rglob("*.py")
               if re.search(r"\bos\.(replace|rename)\(", path.read_text(encoding="utf-8"))}
    assert renames == {"agscm/atomic.py"}


def test_no_command_function_is_over_forty_lines() -> None:
    long = []
    for path in (PACKAGE / "commands").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef):
                continue
            body = node.body
            if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]  # the docstring
            if body and (lines := body[-1].end_lineno - body[0].lineno + 1) > COMMAND_BODY_LINES:
                long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert long == []
