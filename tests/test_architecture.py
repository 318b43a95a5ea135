"""The design's rules, read from the source: providers are plug-ins, the device layer stands
alone, and no two modules import each other (directly or round a longer loop)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from posbridge.providers.registry import PLUGINS

ROOT = Path(__file__).resolve().parents[1]

#: The bridge's core: it works from the plug-ins' declarations and never names a provider.
CORE = ("posbridge/engine.py", "posbridge/ecr", "posbridge/batches.py", "posbridge/journal.py",
        "posbridge/lifecycle.py", "posbridge/views.py", "posbridge/records.py",
        "posbridge/http/notify.py", "posbridge/operations.py", "posbridge/devices.py",
        "posbridge/daemon.py", "posbridge/sandbox/runtime.py")


def _files(*paths: str) -> Iterator[Path]:
    for rel in paths:
        path = ROOT / rel
        yield from sorted(path.rglob("*.py")) if path.is_dir() else [path]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, at the top, in a function or under TYPE_CHECKING."""
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                yield f"{base}.{alias.name}"  # a submodule, or a name in ``base``


def _providers_named(text: str) -> set[str]:
    lowered = text.lower()
    return {name for name in PLUGINS if name in lowered}


@pytest.mark.parametrize("path", list(_files(*CORE)), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_never_names_a_provider(path: Path) -> None:
    provider_packages = {f"posbridge.providers.{name}" for name in PLUGINS}
    imported = {m for m in _imports(path)
                if any(m == p or m.startswith(p + ".") for p in provider_packages)}
    assert not imported, f"{path.name} imports {sorted(imported)}"
    named = [(node.lineno, node.value) for node in ast.walk(ast.parse(path.read_text("utf-8")))
             if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and _providers_named(node.value)]
    assert not named, f"{path.name} names a provider in a string literal: {named[:3]}"


def test_the_device_layer_imports_nothing_from_the_daemon() -> None:
    offenders = {(str(path.relative_to(ROOT)), m) for path in _files("hardware")
                 for m in _imports(path) if m == "posbridge" or m.startswith("posbridge.")}
    assert not offenders


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in _files("posbridge", "hardware")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for imported in _imports(path):
            target = imported
            while target and target not in modules:
                target = target.rpartition(".")[0]
            # ``from package import submodule`` runs the package's __init__ first; that is
            # the language, not a design loop: only the named module counts.
            if target and target != name and not name.startswith(target + "."):
                graph[name].add(target)
    return graph


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1 visiting, 2 done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles[:5]


def test_every_provider_plugin_declares_what_the_bridge_needs() -> None:
    for name, plugin in PLUGINS.items():
        assert plugin.name == name
        assert plugin.title and plugin.parse_section and plugin.build
        assert any(k.role == "merchant" for k in plugin.keys), name
        assert plugin.sandbox is not None, f"{name} has no sandbox simulator"
