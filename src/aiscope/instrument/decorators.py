"""``@aiscope.observe(...)``: attribute every call a function makes, without touching its calls."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from aiscope.context import OperationContext, tags

F = TypeVar("F", bound=Callable[..., Any])


def observe(name: str | None = None, **tag_values: str) -> Callable[[F], F]:
    """Decorate a function (sync or async) so every LLM call made inside it carries
    ``tag_values`` (``feature=``, ``team=``, ``user=``...) and, with ``name``, is
    attributed to that operation::

        @aiscope.observe("summarise", feature="search")
        async def summarise(text: str) -> str: ...
    """
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"observe name must be a non-empty str, got {name!r}")
    for key, value in tag_values.items():
        if not isinstance(value, str):
            raise TypeError(f"tag {key!r} must be a str, got {type(value).__name__} {value!r}")

    def decorate(fn: F) -> F:
        if not callable(fn):
            raise TypeError(f"observe decorates a function, got {fn!r}")
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                with tags(**tag_values):
                    if name is None:
                        return await fn(*args, **kwargs)
                    with OperationContext(name):
                        return await fn(*args, **kwargs)

            return awrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with tags(**tag_values):
                if name is None:
                    return fn(*args, **kwargs)
                with OperationContext(name):
                    return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
