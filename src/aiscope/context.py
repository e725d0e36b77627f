"""Attribution that follows the code: tags and tracked operations, per context.

Both live in contextvars, so they are per thread and per asyncio task, and a
block's tags reach every call made inside it without changing call sites.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_tags: ContextVar[dict[str, str]] = ContextVar("aiscope_tags", default={})  # noqa: B039 - never mutated
_operations: ContextVar[tuple[str, ...]] = ContextVar("aiscope_operations", default=())


def _check_tags(tags: dict[str, Any]) -> dict[str, str]:
    for key, value in tags.items():
        if not isinstance(value, str):
            raise TypeError(f"tag {key!r} must be a str, got {type(value).__name__} {value!r}")
    return tags


def current_tags() -> dict[str, str]:
    """The tags in force here (do not mutate the returned dict)."""
    return _tags.get()


def current_operations() -> tuple[str, ...]:
    """The tracked operations in force here, outermost first."""
    return _operations.get()


#: :func:`current_tags` and :func:`current_operations` as the bound ``ContextVar.get``
#: (no Python frame): the Scope reads both on every call.
read_tags = _tags.get
read_operations = _operations.get


@contextmanager
def tags(**values: str) -> Iterator[dict[str, str]]:
    """Attach tags (feature, team, user, ...) to every call made inside the block.

    Nested blocks add to and override the outer tags::

        with aiscope.tags(feature="search", team="growth"):
            client.chat().user("hi").execute()
    """
    merged = {**_tags.get(), **_check_tags(values)}
    token = _tags.set(merged)
    try:
        yield merged
    finally:
        _tags.reset(token)


class OperationContext:
    """``with``/``async with`` block (or decorator) attributing calls to an operation."""

    __slots__ = ("_name", "_token")

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"operation name must be a non-empty str, got {name!r}")
        self._name = name
        self._token: Any = None

    @property
    def name(self) -> str:
        """The operation's name."""
        return self._name

    def __enter__(self) -> OperationContext:
        stack = _operations.get()
        self._token = _operations.set(stack if self._name in stack else (*stack, self._name))
        return self

    def __exit__(self, *exc: object) -> None:
        _operations.reset(self._token)

    async def __aenter__(self) -> OperationContext:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()

    def __call__(self, fn: F) -> F:
        name = self._name
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                with OperationContext(name):
                    return await fn(*args, **kwargs)

            return awrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with OperationContext(name):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


__all__ = [
    "OperationContext",
    "current_operations",
    "current_tags",
    "read_operations",
    "read_tags",
    "tags",
]
