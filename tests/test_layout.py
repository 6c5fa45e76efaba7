"""The package's layers: each subpackage imports only the ones below it, and no module imports
itself back through a chain of others. Lazy imports inside functions count too, since they are
how a circle hides. The order is the one ``prunebench/__init__.py`` describes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "prunebench"
# lowest first; packages on one line sit side by side and may not import each other
LAYERS = [("core",), ("data", "models"), ("pruning",), ("methods",), ("training",), ("studies", "analysis"), ("report",), ("commands",)]
LEVEL = {name: i for i, names in enumerate(LAYERS) for name in names}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The prunebench modules ``name`` imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("prunebench"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not base.startswith("prunebench"):
                continue
            for a in node.names:
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
    return found - {name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _area(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LEVEL else None


def test_every_subpackage_has_a_layer_and_says_what_it_holds():
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert packages == set(LEVEL), "a new subpackage needs its place in LAYERS (and in prunebench/__init__.py)"
    for name in packages:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
        assert doc and "import" in doc.lower(), f"prunebench.{name} needs a docstring saying what lives there and what it may import"
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert top == ["__init__", "__main__"], f"modules belong in a subpackage: {top}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _area(m)))
def test_imports_only_go_down(module):
    mine = _area(module)
    wrong = sorted(t for t in GRAPH[module] if _area(t) not in (None, mine) and LEVEL[_area(t)] >= LEVEL[mine])
    assert not wrong, f"{module} ({mine}) imports {wrong}: a layer may import only the layers below it"


def test_no_import_circles():
    # A registry package's modules register themselves into it (``from . import register``), so
    # an edge from a submodule to its own package's __init__ is not followed.
    def edges(m):
        return [t for t in GRAPH[m] if t in MODULES and not m.startswith(f"{t}.")]

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in edges(m):
            if state.get(t) == 1:
                circle = stack[stack.index(t):] + [t]
                pytest.fail("import circle: " + " -> ".join(circle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(MODULES):
        if m not in state:
            visit(m)
