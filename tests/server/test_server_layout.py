"""The server's modules: no import cycles (deferred imports count too), every route
module one ``APIRouter`` included by the app, and one lifespan for background work."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Engine

import aiscope.server
from aiscope.server import Settings, create_app, routes

PACKAGE = "aiscope.server"


def _modules() -> dict[str, Path]:
    root = Path(aiscope.server.__file__).parent
    found = {PACKAGE: root / "__init__.py"}
    for info in pkgutil.walk_packages([str(root)], f"{PACKAGE}."):
        spec = importlib.util.find_spec(info.name)
        assert spec is not None and spec.origin is not None
        found[info.name] = Path(spec.origin)
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The server modules ``name`` imports anywhere in its body (in functions too:
    a cycle broken by a deferred import is still a cycle)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                up = parts[: len(parts) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            # ``from pkg import mod`` imports the submodule when there is one
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        out.update(t for t in targets if t in known and t != name)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_the_server_has_no_import_cycles() -> None:
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(name, path, known) for name, path in modules.items()}
    # the package's __init__ re-exports its submodules: an edge into it from one of
    # them is the import system loading the parent first, not a dependency
    for name, deps in graph.items():
        if name != PACKAGE:
            deps.discard(PACKAGE)
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_deferred_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    source = "def f():\n    from aiscope.server import app\n"
    tree_path = Path(__file__).with_name("_cycle_probe.txt")
    tree_path.write_text(source)
    try:
        found = _imports("aiscope.server.x", tree_path, {"aiscope.server.app", "aiscope.server.x"})
    finally:
        tree_path.unlink()
    assert found == {"aiscope.server.app"}


def _api(router: APIRouter) -> set[tuple[str, str]]:
    return {
        (r.path, m.lower())
        for r in router.routes
        if isinstance(r, APIRoute) and r.include_in_schema
        for m in r.methods
    }


def test_every_route_module_is_one_router_the_app_includes(engine: Engine) -> None:
    app = create_app(Settings(engine=engine, compact_every_s=None, alert_every_s=None))
    served = {(p, m) for p, ops in app.openapi()["paths"].items() for m in ops}
    root = Path(routes.__file__).parent
    names = [info.name for info in pkgutil.iter_modules([str(root)])]
    for name in names:
        router = importlib.import_module(f"{routes.__name__}.{name}").router
        assert isinstance(router, APIRouter), name
        assert router in routes.ROUTERS, f"{name}'s router is not in ROUTERS"
        assert router.routes, name
    assert len(routes.ROUTERS) == len(names)
    # every operation of the API comes from a route module, and each is served
    assert served == set().union(*(_api(r) for r in routes.ROUTERS))
    client = TestClient(app)
    assert client.get("/").status_code == 200  # the dashboard's router too


def test_one_lifespan_starts_and_stops_all_background_work(engine: Engine) -> None:
    import threading

    app: FastAPI = create_app(Settings(engine=engine, compact_every_s=60, alert_every_s=30))
    before = {t.name for t in threading.enumerate()}
    with TestClient(app):
        running = {t.name for t in threading.enumerate()} - before
        assert {"aiscope-maintenance", "aiscope-alerts"} <= running
    left = {t.name for t in threading.enumerate() if t.is_alive()} - before
    assert not left & {"aiscope-maintenance", "aiscope-alerts"}
