"""The dependency rules of docs/architecture.md, checked on every module's imports (in the spirit of import-linter).

Every ``import`` and ``from ... import`` of every module under churnwh/ counts, at module level or inside a
function, under ``if TYPE_CHECKING`` or not: a lazy import is still a dependency. Nothing is imported to
check it (the source is parsed with ``ast``), so the test is fast and sees modules that would fail to import.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "churnwh"


@dataclass(frozen=True)
class Import:
    importer: str
    """The importing module, e.g. ``churnwh.privacy.rotation``."""
    imported: str
    """The module it imports, e.g. ``churnwh.pipeline`` (a name from a module resolves to that module)."""
    where: str
    """File and line of the import statement, e.g. ``churnwh/privacy/rotation.py:36``."""

    def __str__(self) -> str:
        return f"{self.importer} imports {self.imported} ({self.where})"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def imports(root: Path = PACKAGE) -> list[Import]:
    """Every import of a module of ``root``'s package by a module of it."""
    known = modules(root)
    package = root.name

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    found: set[Import] = set()
    for importer, path in known.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the importer's package, one level up per extra dot
                    anchor = importer.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from a.b import c`: the module a.b.c when c is one, else a name of a.b
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
            for target in targets:
                if target == package or target.startswith(package + "."):
                    imported = resolve(target)
                    if imported and imported != importer:
                        where = f"{path.relative_to(root.parent).as_posix()}:{node.lineno}"
                        found.add(Import(importer, imported, where))
    return sorted(found, key=str)


def within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


# --- the rules -------------------------------------------------------------------------------------

BELOW_STORE = ("churnwh.errors", "churnwh.config", "churnwh.store")
"""What ``churnwh.store`` may import: it knows tables, not what the build puts in them."""

RULES: tuple[tuple[str, str, Callable[[str, str], bool]], ...] = (
    # (rule, the importers it binds, (imported, importer) -> True when that import is forbidden)
    ("nothing imports the CLI (only `python -m churnwh` runs it)", "churnwh",
     lambda imported, importer: within(imported, "churnwh.cli") and not within(importer, "churnwh.cli", "churnwh.__main__")),
    ("churnwh.ml is a pure library: frames and arrays in, arrays and models out (churnwh.errors only)",
     "churnwh.ml", lambda imported, importer: not within(imported, "churnwh.ml", "churnwh.errors")),
    ("churnwh.privacy never imports the stages, the orchestration or the actions", "churnwh.privacy",
     lambda imported, importer: within(imported, "churnwh.stages", "churnwh.pipeline", "churnwh.cli",
                                       "churnwh.doctor", "churnwh.action")),
    ("churnwh.sqlmodels never imports the stages, the orchestration or the actions", "churnwh.sqlmodels",
     lambda imported, importer: within(imported, "churnwh.stages", "churnwh.pipeline", "churnwh.cli",
                                       "churnwh.doctor", "churnwh.action")),
    ("churnwh.store imports nothing above it (errors, config, store only)", "churnwh.store",
     lambda imported, importer: not within(imported, *BELOW_STORE)),
    ("only the CLI and doctor import the pipeline (a subpackage never sequences the build)", "churnwh",
     lambda imported, importer: within(imported, "churnwh.pipeline")
     and not within(importer, "churnwh.cli", "churnwh.doctor")),
)


LAYERS: tuple[tuple[str, ...], ...] = (
    # bottom to top, the build's data flow: a module imports from its own package or a lower layer, never
    # from a higher one nor from the other package of its layer (those are independent)
    ("churnwh.errors", "churnwh.progress"),
    ("churnwh.ml",),
    ("churnwh.config",),
    ("churnwh.store",),
    ("churnwh.sqlmodels",),
    ("churnwh.privacy",),
    ("churnwh.sources", "churnwh.stages"),
    ("churnwh.spark", "churnwh.action"),
    ("churnwh.pipeline",),
    ("churnwh.doctor", "churnwh.config_reference"),
    ("churnwh.cli",),
    ("churnwh.__main__",),
)


def layer_of(module: str) -> tuple[int, str] | None:
    """(layer index, package) of a module; None for the root package and modules in no layer."""
    for index, packages in enumerate(LAYERS):
        for package in packages:
            if within(module, package):
                return index, package
    return None


def violations(found: list[Import], all_modules: list[str] | None = None) -> list[str]:
    broken = []
    for rule, bound, forbidden in RULES:
        for edge in found:
            if within(edge.importer, bound) and forbidden(edge.imported, edge.importer):
                broken.append(f"{rule}: {edge}")
    for module in all_modules or []:
        if module != "churnwh" and layer_of(module) is None:
            broken.append(f"{module} is in no layer: add its package to LAYERS and to docs/architecture.md")
    for edge in found:
        importer, imported = layer_of(edge.importer), layer_of(edge.imported)
        if importer is None or imported is None or importer[1] == imported[1]:
            continue
        if imported[0] > importer[0]:
            broken.append(f"layers: {importer[1]} sits below {imported[1]}: {edge}")
        elif imported[0] == importer[0]:
            broken.append(f"layers: {importer[1]} and {imported[1]} are independent: {edge}")
    return broken


def cycles(found: list[Import]) -> list[list[str]]:
    """The import cycles: strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for edge in found:
        graph.setdefault(edge.importer, set()).add(edge.imported)
        graph.setdefault(edge.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:  # recursion depth is bounded by the number of modules (~60)
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
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
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(components)


def describe_cycle(component: list[str], found: list[Import]) -> str:
    members = set(component)
    edges = sorted({str(e) for e in found if e.importer in members and e.imported in members})
    return "import cycle between " + ", ".join(component) + ":\n    " + "\n    ".join(edges)


# --- the checks --------------------------------------------------------------------------------------


def test_the_parser_sees_every_module_and_lazy_imports():
    found = imports()
    names = modules()
    assert {"churnwh.cli", "churnwh.pipeline", "churnwh.ml.train", "churnwh.privacy.rotation"} <= set(names)
    # churnwh.pipeline imports churnwh.stages.explain inside a function only
    assert any(e.importer == "churnwh.pipeline" and e.imported == "churnwh.stages.explain" for e in found)
    # `from churnwh.privacy import keys` is an import of the module churnwh.privacy.keys
    assert any(e.importer == "churnwh.pipeline" and e.imported == "churnwh.privacy.keys" for e in found)


def test_every_dependency_rule_holds():
    broken = violations(imports(), list(modules()))
    assert not broken, "dependency rules broken (docs/architecture.md):\n" + "\n".join(broken)


def test_no_import_cycle_between_modules():
    found = imports()
    loops = cycles(found)
    assert not loops, "\n".join(describe_cycle(c, found) for c in loops)


# --- positive controls: a synthetic package that breaks each rule ------------------------------------


@pytest.fixture
def broken_package(tmp_path: Path) -> Path:
    root = tmp_path / "churnwh"
    files = {
        "__init__.py": "",
        "__main__.py": "from churnwh.cli import main\n",
        "cli.py": "from churnwh import pipeline\n",
        "errors.py": "",
        "pipeline.py": "from churnwh.privacy import rotation\n",
        "ml/__init__.py": "",
        "ml/train.py": "from churnwh.errors import ChurnwhError\n\ndef fit():\n    from churnwh.store import warehouse\n",
        "store/__init__.py": "",
        "store/warehouse.py": "from churnwh.privacy import keys\n",
        "privacy/__init__.py": "",
        "privacy/keys.py": "",
        "privacy/rotation.py": "def rotate():\n    from churnwh.pipeline import build\n    from ..stages import score\n",
        "stages/__init__.py": "",
        "stages/score.py": "import churnwh.cli\n",
        "sources/__init__.py": "",
        "sources/demo.py": "from churnwh.stages.score import x\n",
        "extras.py": "",
    }
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text, encoding="utf-8")
    return root


def test_a_synthetic_violation_is_named_with_its_module_and_import(broken_package):
    found = imports(broken_package)
    broken = "\n".join(violations(found, list(modules(broken_package))))
    assert "churnwh.ml.train imports churnwh.store.warehouse (churnwh/ml/train.py:4)" in broken  # lazy import
    assert "churnwh.store.warehouse imports churnwh.privacy.keys" in broken
    assert "churnwh.privacy.rotation imports churnwh.pipeline" in broken
    assert "churnwh.privacy.rotation imports churnwh.stages.score" in broken  # a relative import
    assert "churnwh.stages.score imports churnwh.cli" in broken
    assert "churnwh.__main__ imports" not in broken  # the entry point may run the CLI
    assert "churnwh.ml.train imports churnwh.errors" not in broken
    assert "layers: churnwh.store sits below churnwh.privacy: churnwh.store.warehouse imports" in broken
    assert "layers: churnwh.sources and churnwh.stages are independent: churnwh.sources.demo imports" in broken
    assert "churnwh.extras is in no layer" in broken


def test_a_synthetic_cycle_is_found(broken_package):
    found = imports(broken_package)
    loops = cycles(found)
    assert ["churnwh.cli", "churnwh.pipeline", "churnwh.privacy.rotation", "churnwh.stages.score"] in loops
    described = describe_cycle(loops[0], found)
    assert "churnwh.privacy.rotation imports churnwh.pipeline (churnwh/privacy/rotation.py:2)" in described
