"""Each package's ``__all__`` is its public API (modelled on httpx's
``tests/package/test_exported_members.py``).

* every name in every aiscope package's ``__all__`` is importable from it (lazy PEP
  562 attributes included) and a class, function or module among them has a docstring;
* every public (non-underscore) class or function defined in a public module is in
  that module's ``__all__`` or its package's: anything else is private by name.
* no aiscope module imports another module's private (underscore) name: what is
  shared is public, in a private module when it is internal.

The second check is a ratchet: the modules in :data:`PENDING` are being restructured
elsewhere (issue 13); each is listed with what it still does not export, and a module
that has caught up must leave the list, so the list only shrinks.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from types import ModuleType

import pytest

import aiscope

#: module prefix -> why it is not held to the second check yet
PENDING: dict[str, str] = {
    "aiscope.server": "being split into plain routers (issue 13 item 4)",
}


def _public(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


def _modules() -> dict[str, ModuleType]:
    """Every public module of aiscope (packages included), imported."""
    out = {"aiscope": aiscope}
    for info in pkgutil.walk_packages(aiscope.__path__, "aiscope."):
        if _public(info.name) and ".migrations" not in info.name:
            out[info.name] = importlib.import_module(info.name)
    return out


MODULES = _modules()
PACKAGES = sorted(name for name, m in MODULES.items() if hasattr(m, "__path__"))


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_is_importable_and_documented(name: str) -> None:
    package = MODULES[name]
    exported = getattr(package, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    for member in exported:
        obj = getattr(package, member)  # lazy attributes are imported here
        if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj):
            assert (obj.__doc__ or "").strip(), f"{name}.{member} has no docstring"


def _not_exported(name: str) -> list[str]:
    """The public classes and functions defined in module ``name`` that neither its
    ``__all__`` nor its package's lists."""
    module = MODULES[name]
    package = name if hasattr(module, "__path__") else name.rpartition(".")[0]
    listed = set(getattr(module, "__all__", ())) | set(getattr(sys.modules[package], "__all__", ()))
    return sorted(
        attr
        for attr, obj in vars(module).items()
        if not attr.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and obj.__module__ == name
        and attr not in listed
    )


def _pending(name: str) -> str | None:
    return next((p for p in PENDING if name == p or name.startswith(p + ".")), None)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_public_definition_is_exported_or_private(name: str) -> None:
    missing = _not_exported(name)
    if _pending(name) is None:
        assert not missing, f"{name}: export these in __all__ or make them private: {missing}"


@pytest.mark.parametrize("prefix", sorted(PENDING))
def test_pending_modules_still_have_unexported_definitions(prefix: str) -> None:
    # once a pending package exports or hides everything, it leaves PENDING
    behind = {n: m for n in MODULES if _pending(n) == prefix and (m := _not_exported(n))}
    assert behind, f"{prefix} exports everything now: remove it from PENDING"


def _private_imports() -> list[str]:
    """``from aiscope.x import _name`` anywhere in aiscope, where ``_name`` is not a
    (private) module: another module's private name."""
    import ast
    from pathlib import Path

    root = Path(aiscope.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aiscope")):
                continue
            for alias in node.names:
                target = root.parent.joinpath(*f"{node.module}.{alias.name}".split("."))
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and not (target.is_dir() or target.with_suffix(".py").exists()):
                    found.append(f"{path.relative_to(root)}:{node.lineno}: {alias.name}")
    return found


def test_no_private_name_is_imported_across_modules() -> None:
    # a name another module needs is public (in a private module if it is internal)
    assert _private_imports() == []
