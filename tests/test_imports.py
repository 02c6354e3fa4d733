"""Imports point one way: studio -> backends -> models, and inside backends writing -> engines -> files, with no
circle. Read from the source (every import statement, at module level or inside a function), then checked by
importing every backends module in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

# Inside backends: which parts a part may import (a part is a subpackage or a top-level module).
ALLOWED = {
    "errors": set(),
    "files": {"errors", "files"},
    "engines": {"errors", "files", "engines"},
    "selection": {"errors", "files", "engines"},
    "loading": {"errors", "files", "engines", "selection"},
    "writing": {"errors", "engines", "writing"},
    "remote": {"errors", "engines", "writing", "remote"},  # a model on a server, behind the writing service's events
    "__init__": {"errors", "loading", "engines"},  # set_model_threads: the native step's threads
}


PACKAGE = "ai_writer"  # the import package the three folders install under (pyproject.toml)


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join((PACKAGE, *(parts[:-1] if parts[-1] == "__init__" else parts)))


def sources(package: str) -> dict[str, Path]:
    return {module_name(p): p for p in sorted((REPO / package).rglob("*.py"))}


def imported(path: Path, known: dict[str, Path]) -> set[str]:
    """The modules a file imports, as dotted names; `from P import m` names the module P.m where m is one."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return found


def part(module: str) -> str:
    pieces = module.split(".")[1:]  # without "ai_writer"
    return "__init__" if len(pieces) == 1 else pieces[1]


def backends_graph() -> dict[str, set[str]]:
    known = sources("backends")
    return {name: {m for m in imported(path, known) if m == f"{PACKAGE}.backends" or m.startswith(f"{PACKAGE}.backends.")}
            for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_backends_import_graph_has_no_circle():
    graph = backends_graph()
    assert len(graph) > 15 and f"{PACKAGE}.backends.engines.native_step" in graph[f"{PACKAGE}.backends.selection"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_check_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_each_part_of_backends_imports_only_the_parts_below_it():
    wrong = [f"{module} imports {target}" for module, targets in backends_graph().items() for target in targets
             if part(target) not in ALLOWED[part(module)]]
    assert wrong == []


def test_subpackages_import_nothing_when_opened():
    """Their __init__ files hold a docstring only, so importing one module never runs another's code."""
    for package in ("backends/engines", "backends/writing", "backends/files", "backends/remote"):
        assert imported(REPO / package / "__init__.py", {}) == set(), package


def test_models_imports_neither_backends_nor_studio_and_backends_never_studio():
    for package, forbidden in (("models", ("backends", "studio")), ("backends", ("studio",))):
        known = sources(package)
        wrong = [f"{name} imports {m}" for name, path in known.items() for m in imported(path, known)
                 if m.split(".")[0] in forbidden or (m.startswith(PACKAGE + ".") and m.split(".")[1] in forbidden)]
        assert wrong == [], wrong


def test_every_backends_module_imports_in_a_fresh_interpreter():
    """The writing service, the selection and the file tools load without torch; then every module loads."""
    names = sorted(sources("backends"))
    code = ("import importlib, sys\n"
            "for name in ('ai_writer.backends', 'ai_writer.backends.selection', 'ai_writer.backends.writing.generation',"
            " 'ai_writer.backends.files.vocab', 'ai_writer.backends.engines.onnx_engine'):\n"
            "    importlib.import_module(name)\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n"
            "print(len(sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_nothing_imports_the_folders_under_their_bare_names():
    """Every import goes through ai_writer: a bare `import models` would load a second copy of the module
    (from the repository root on sys.path) or someone else's package of that name."""
    wrong = []
    for folder in ("studio", "backends", "models", "tests", "bench"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
                wrong += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in ("studio", "backends", "models")]
    assert wrong == []


def test_textual_private_api_stays_in_the_compat_module_and_its_range_is_pyprojects():
    import tomllib

    from ai_writer.studio import textual_compat

    wrong = []
    for path in sorted((REPO / "studio").rglob("*.py")):
        if path.name == "textual_compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("textual"):
                if any(piece.startswith("_") for piece in node.module.split(".")):
                    wrong.append(f"{path.relative_to(REPO)}: from {node.module}")
    assert wrong == []
    deps = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    assert f"textual{textual_compat.TESTED_TEXTUAL}" in deps
