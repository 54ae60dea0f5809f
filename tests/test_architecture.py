"""The layers contract: imports point one way, down the data flow.

data -> simulation -> capability -> identification -> mitigation -> pipeline -> evaluation -> perception
-> report -> cli. A module may import its own package and any package of a lower layer, never a higher one;
no two modules import each other (directly or through a cycle); the kit's own modules are imported at the top
of the file, public names only, never guarded by ``except ImportError``. Optional heavy third-party libraries
(pyspark, cdlib) may be imported late. Read with ``docs/ARCHITECTURE.md``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fraudkit"

LAYERS = (
    ("fraudkit", "fraudkit.errors", "fraudkit.randomness"),
    ("fraudkit.data",),
    ("fraudkit.simulation",),
    ("fraudkit.capability",),
    ("fraudkit.identification",),
    ("fraudkit.mitigation",),
    ("fraudkit.pipeline",),
    ("fraudkit.evaluation",),
    ("fraudkit.perception",),
    ("fraudkit.report",),
    ("fraudkit.cli",),
)
"""Lowest first. A module belongs to the longest prefix listed."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text(encoding="utf-8"), filename=str(p))
            for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _layer(module: str) -> int:
    best, rank = -1, None
    for i, names in enumerate(LAYERS):
        for n in names:
            if (module == n or module.startswith(n + ".")) and len(n) > best and (n != "fraudkit" or module == n):
                best, rank = len(n), i
    if rank is None:
        raise AssertionError(f"{module} is in no layer of tests/test_architecture.py::LAYERS; add its package there")
    return rank


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_pkg = (PACKAGE.parent / Path(*importer.split("."))).is_dir()
    base = importer.split(".") if is_pkg else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _own_imports(tree: ast.Module, importer: str):
    """Yield ``(node, target_module, imported_names, at_top_level, guarded)`` for imports of fraudkit."""
    def walk(node, top, guarded):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ImportFrom):
                target = _resolve(importer, child)
                if target == "fraudkit" or target.startswith("fraudkit."):
                    names = [a.name for a in child.names]
                    # `from fraudkit.x import y` where y is a sub-module imports that module
                    if all(f"{target}.{n}" in MODULES for n in names):
                        for n in names:
                            yield child, f"{target}.{n}", [], top, guarded
                    else:
                        yield child, target, names, top, guarded
            elif isinstance(child, ast.Import):
                for a in child.names:
                    if a.name.startswith("fraudkit"):
                        yield child, a.name, [], top, guarded
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                yield from walk(child, False, guarded)
            elif isinstance(child, ast.Try):
                catches_import = any(
                    h.type is not None and any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError")
                                               for n in ast.walk(h.type))
                    for h in child.handlers)
                yield from walk(child, top, guarded or catches_import)
            else:
                yield from walk(child, top, guarded)

    yield from walk(tree, True, False)


def _edges():
    for importer, tree in MODULES.items():
        for node, target, names, top, guarded in _own_imports(tree, importer):
            yield importer, node, target, names, top, guarded


def test_every_module_has_a_layer():
    for m in MODULES:
        _layer(m)


def test_imports_point_down_the_data_flow():
    upward = [f"{a} (layer {LAYERS[_layer(a)][0]}) imports {t} (layer {LAYERS[_layer(t)][0]}), line {n.lineno}"
              for a, n, t, _, _, _ in _edges() if t in MODULES and _layer(t) > _layer(a)]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycles():
    graph: dict[str, set] = {m: set() for m in MODULES}
    for a, _, t, _, _, _ in _edges():
        if t in MODULES and t != a:
            graph[a].add(t)
    # a package's __init__ may re-export its own modules; that edge is not a cycle of design
    for m in list(graph):
        graph[m] = {t for t in graph[m] if not m.startswith(t + ".")}
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    assert not cycles, f"import cycles: {cycles}"


def test_own_modules_are_imported_at_the_top_and_unguarded():
    late = [f"{a}:{n.lineno} imports {t} inside a function" for a, n, t, _, top, _ in _edges() if not top]
    guarded = [f"{a}:{n.lineno} guards the import of {t} with except ImportError"
               for a, n, t, _, _, g in _edges() if g]
    assert not late + guarded, "\n".join(late + guarded)


def test_no_private_names_of_other_modules():
    bad = [f"{a}:{n.lineno} imports {t}.{x}" for a, n, t, names, _, _ in _edges() for x in names
           if x.startswith("_") and x != "__version__" and t != a]
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def test_only_evaluation_and_training_read_labels():
    """``labels`` is read by evaluation and by the explicit supervised-training pass, nowhere else."""
    allowed = ("fraudkit.evaluation", "fraudkit.data", "fraudkit.simulation", "fraudkit.pipeline",
               "fraudkit.perception", "fraudkit.report", "fraudkit.identification.models",
               "fraudkit.identification.graph.association")
    readers = []
    for m, tree in MODULES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "labels" and isinstance(node.value, ast.Name) \
                    and node.value.id in ("ds", "data", "dataset", "train", "train_ds"):
                if not m.startswith(allowed):
                    readers.append(f"{m}:{node.lineno}")
    assert not readers, f"labels read outside evaluation/training: {readers}"


@pytest.mark.parametrize("package", ["data", "capability", "identification", "mitigation", "pipeline",
                                     "evaluation", "perception", "report", "simulation"])
def test_packages_follow_the_five_steps(package):
    assert (PACKAGE / package / "__init__.py").exists()
    doc = ast.get_docstring(MODULES[f"fraudkit.{package}"])
    assert doc, f"fraudkit/{package}/__init__.py needs a docstring saying what the package is for"
