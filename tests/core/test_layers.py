"""The layering as a contract: every import of every module (module-level and function-local,
absolute and relative) is checked against LAYERS, written as data.  A function-local import of a
project module hides an edge from a reader, so those are allowed only where ``LOCAL_IMPORTS``
says why (CLI start-up, optional heavy dependencies, the harness)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import arm_cpu_filter

PACKAGE = Path(arm_cpu_filter.__file__).parent
ROOT = "arm_cpu_filter"

#: Importable by every unit: the shared error classes, the optional-package guard, safe log text, the package root.
SHARED = frozenset({"errors", "extras", "logsafe", ""})

#: unit (first name below ``arm_cpu_filter``) -> the units it may import.  The core chain is
#: table < snapshot < properties < models < engine; adapters use the core and the few adapter
#: edges listed; ``testing`` (the harness) may use anything and nothing product uses it.
_CORE = ("table", "snapshot", "properties", "models", "engine")
LAYERS: dict[str, frozenset[str]] = {
    "table": frozenset(),
    "snapshot": frozenset({"table"}),
    "properties": frozenset({"table", "snapshot"}),
    "models": frozenset({"table", "snapshot", "properties"}),
    "engine": frozenset({"table", "snapshot", "properties", "models"}),
    "samples": frozenset({"table", "snapshot"}),
    "kvm": frozenset({"table", "snapshot"}),
    "qemu": frozenset(_CORE),
    "libvirt": frozenset(_CORE),
    "store": frozenset({"table", "snapshot"}),
    "conf": frozenset(),
    "scheduler": frozenset({*_CORE, "store", "conf"}),
    "agent": frozenset({*_CORE, "store", "kvm", "libvirt", "conf"}),
    "cli": frozenset({*_CORE, "samples", "kvm", "qemu", "libvirt", "store", "conf", "scheduler", "agent", "testing"}),
    "__main__": frozenset({"cli"}),
    "testing": frozenset({*_CORE, "samples", "kvm", "qemu", "libvirt", "store", "conf", "scheduler", "agent"}),
}

#: Where a function-local import of a project module is allowed, and why.  Keys are module names
#: or package prefixes ending in ".".
LOCAL_IMPORTS: dict[str, str] = {
    "arm_cpu_filter.cli.": "every command module is imported to build the parser: a handler loads what it uses",
    "arm_cpu_filter.testing.": "the harness: a fuzz target or probe loads the surface it exercises when it runs",
    "arm_cpu_filter.store": "the file and SQL backends import the store's base classes (and SQL needs SQLAlchemy)",
    "arm_cpu_filter.libvirt": "caps and domcaps need lxml, an optional dependency",
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module (or package)
    line: int
    local: bool  # inside a function


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, module: str, is_package: bool, known: frozenset[str] = frozenset()) -> list[Import]:
    """Every import of the project's modules in ``source``.  ``from P import name`` counts as an
    import of ``P.name`` when that is a module in ``known``, else of ``P``."""
    tree = ast.parse(source)
    in_function = {id(sub) for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                   for sub in ast.walk(node) if sub is not node}
    here = module if is_package else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                base = ".".join(parent + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in dict.fromkeys(targets):
            if target == ROOT or target.startswith(ROOT + "."):
                out.append(Import(module, target, node.lineno, id(node) in in_function))
    return out


def unit(module: str) -> str:
    """``arm_cpu_filter.scheduler.fleet`` -> ``scheduler``; the package root -> ``""``."""
    return module.split(".")[1] if "." in module else ""


def violations(found: list[Import], layers: dict[str, frozenset[str]] = LAYERS,
               local_ok: dict[str, str] = LOCAL_IMPORTS) -> list[str]:
    """One line per import the contract forbids, naming the module, the import and its line."""
    out = []
    for imp in found:
        src, dst = unit(imp.module), unit(imp.target)
        if src != dst and dst not in SHARED and dst not in layers.get(src, frozenset()):
            out.append(f"{imp.module}:{imp.line} imports {imp.target}: {src or ROOT} may not use {dst}")
        if imp.local and not any(imp.module == k or (k.endswith(".") and imp.module.startswith(k)) for k in local_ok):
            out.append(f"{imp.module}:{imp.line} imports {imp.target} inside a function: move it to the top "
                       f"or add the module to LOCAL_IMPORTS with the reason")
    return out


def project_imports() -> list[Import]:
    paths = sorted(PACKAGE.rglob("*.py"))
    known = frozenset(module_name(p) for p in paths)
    return [imp for p in paths
            for imp in imports(p.read_text(), module_name(p), p.name == "__init__.py", known)]


def test_every_import_follows_the_layers():
    found = project_imports()
    assert len(found) > 100  # the walk really reads the package
    assert violations(found) == []


def test_every_unit_is_in_the_contract():
    units = {unit(m) for m in (module_name(p) for p in PACKAGE.rglob("*.py"))} - SHARED
    assert units == set(LAYERS)


def test_nothing_in_the_product_imports_the_harness():
    assert [f"{i.module}:{i.line}" for i in project_imports()
            if unit(i.target) == "testing" and unit(i.module) not in ("testing", "cli")] == []


def test_checker_names_a_forbidden_edge_and_a_hidden_local_import():
    source = "from arm_cpu_filter.scheduler import state\n\ndef f():\n    from ..engine import check\n"
    found = imports(source, "arm_cpu_filter.engine.check", False,
                    frozenset({"arm_cpu_filter.scheduler.state"}))
    assert found == [Import("arm_cpu_filter.engine.check", "arm_cpu_filter.scheduler.state", 1, False),
                     Import("arm_cpu_filter.engine.check", "arm_cpu_filter.engine", 4, True)]
    assert violations(found, local_ok={}) == [
        "arm_cpu_filter.engine.check:1 imports arm_cpu_filter.scheduler.state: engine may not use scheduler",
        "arm_cpu_filter.engine.check:4 imports arm_cpu_filter.engine inside a function: move it to the top "
        "or add the module to LOCAL_IMPORTS with the reason",
    ]


def test_relative_imports_resolve_from_a_package():
    found = imports("from . import files\nfrom .. import errors\n", "arm_cpu_filter.store", True,
                    frozenset({"arm_cpu_filter.store.files", "arm_cpu_filter.errors"}))
    assert [i.target for i in found] == ["arm_cpu_filter.store.files", "arm_cpu_filter.errors"]
