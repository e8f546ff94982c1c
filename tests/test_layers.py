"""The architecture, kept: each package imports only the packages below it (docs/architecture.md's
picture of the system), and no module imports itself back through another."""

import ast
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.unit

# Each package and what it may import (besides itself and the standard library and PyPI).
# Lowest first: core (errors, time, spec, profiles, cache) and the trace readers are pure;
# Debian's packages; the host (QEMU, accelerator, run directories, keys); the user's kernel
# file; the images; guests; the chain and its verdict; reports; the matrix; the commands.
ALLOWED = {
    "rig.core": set(),
    "rig.trace": {"rig.core"},
    "rig.debian": {"rig.core"},
    "rig.host": {"rig.core", "rig.debian"},
    "rig.kernel": {"rig.core", "rig.debian", "rig.host"},
    "guest_images": {"rig.core", "rig.debian", "rig.host", "rig.kernel"},
    "rig.guests": {"rig.core", "rig.host", "guest_images"},
    "rig.chain": {"rig.core", "rig.trace", "rig.debian", "rig.host", "rig.kernel", "guest_images",
                  "rig.guests", "device_models"},
    "rig.reports": {"rig.core", "rig.trace", "rig.chain"},
    "rig.matrix": {"rig.core", "rig.host", "rig.chain", "rig.reports"},
    "rig.commands": {"rig", "rig.core", "rig.trace", "rig.debian", "rig.host", "rig.kernel", "guest_images",
                     "rig.guests", "rig.chain", "rig.reports", "rig.matrix"},
    "rig.pytest_plugin": {"rig.core", "rig.chain"},
    "rig.__main__": {"rig.commands"},
    "device_models": set(),
}
OURS = ("rig", "guest_images", "device_models")


def package_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "rig":
        return parts[0]
    return ".".join(parts[:2]) if len(parts) > 1 else "rig"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at module level) for every import of ours in the file."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
            module = ".".join(x for x in (base, node.module or "") if x)
            names = [module] + [f"{module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            path_of = ROOT / name.replace(".", "/")
            if name.split(".")[0] in OURS and (path_of.with_suffix(".py").exists()
                                               or (path_of / "__init__.py").exists()):
                found.append((name, id(node) in top))
    return found


SOURCES = [p for d in OURS for p in (ROOT / d).rglob("*.py")]


def test_every_package_is_in_the_table():
    assert {package_of(module_name(p)) for p in SOURCES} - {"rig"} <= set(ALLOWED)


def test_dependencies_point_one_way():
    wrong = []
    for path in SOURCES:
        mine = package_of(module_name(path))
        for name, _ in imports(path):
            theirs = package_of(name)
            if theirs != mine and mine != "rig" and theirs not in ALLOWED.get(mine, set()):
                wrong.append(f"{module_name(path)} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_no_relative_imports_hide_a_dependency():
    relative = [str(p.relative_to(ROOT)) for p in SOURCES if p.is_relative_to(ROOT / "rig")
                for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.ImportFrom) and n.level]
    assert not relative, relative


def test_no_import_cycle_between_modules():
    graph = {module_name(p): {n for n, _ in imports(p)} for p in SOURCES}    # inside functions too
    graph = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in graph[m]:
            if state.get(d) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_an_untyped_dict_is_spelt_only_where_json_is():
    """`dict[str, Any]` is written once, as rig.core.json_object's JsonObject, the type of a
    JSON object where one is read or written; everything past those places is typed."""
    spelt = [f"{p.relative_to(ROOT)}:{i}" for p in SOURCES if p.is_relative_to(ROOT / "rig")
             for i, line in enumerate(p.read_text().splitlines(), 1) if "dict[str, Any]" in line]
    assert spelt == ["rig/core/json_object.py:10"], spelt
