"""The test doubles in `bridge/testing/` stay testing-only, apart from the mock backend.

They ship in the package (tests and benchmarks share them), so nothing stops a runtime
module from importing one by accident; this test does. `bridge demo` and
`bridge mock-backend` need the mock backend, which must not pull in the fakes either.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bridge"
TESTING = "bridge.testing"
# What runtime code may use from bridge/testing/: the offline backend of the demo.
RUNTIME_MAY_USE = {"bridge.testing.mock_backend"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The bridge modules `path` imports, at any depth of the file (lazy imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("bridge")}


def sources() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def test_runtime_modules_use_only_the_mock_backend_from_testing() -> None:
    modules = sources()
    used = {
        (name, imported)
        for name, path in modules.items()
        if not name.startswith(TESTING)
        for imported in imports(path)
        if imported.startswith(TESTING + ".") and imported in modules
    }
    assert {imported for _name, imported in used} <= RUNTIME_MAY_USE, sorted(used)


def test_the_mock_backend_does_not_pull_in_the_fakes() -> None:
    modules = sources()
    seen, todo = set(), list(RUNTIME_MAY_USE)
    while todo:
        name = todo.pop()
        if name in seen or name not in modules:
            continue
        seen.add(name)
        todo += [imported for imported in imports(modules[name]) if imported.startswith(TESTING)]
    assert not {name for name in seen if name.rsplit(".", 1)[-1].startswith("fake_")}, seen
