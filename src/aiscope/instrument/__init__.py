"""One line to observe the SDKs an application already uses.

::

    aiscope.instrument()                 # every openai / anthropic client, from now on
    client = aiscope.wrap(OpenAI())      # or just this one client
    aiscope.uninstrument()               # the SDK exactly as it was

Each call becomes one :class:`~aiscope.CallRecord` in the current scope, like
AiClient's: metrics, traces, costs, budgets and logs see it unchanged. Response
objects and streams are the SDK's own (see :mod:`aiscope.instrument._streams`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, TypeVar

from aiscope._fork import fork_safe_lock

if TYPE_CHECKING:
    from aiscope.instrument._patch import Target
    from aiscope.instrument.decorators import observe as observe
    from aiscope.resilience.ratelimit import RateLimiterLike
    from aiscope.scope import Scope

# The adapters (and through them the Scope, pricing and ledgers) load on the first
# call, not here: ``import aiscope`` binds ``aiscope.instrument`` and must stay light.

__all__ = ["instrument", "is_instrumented", "observe", "uninstrument", "wrap"]

C = TypeVar("C")

_lock = fork_safe_lock()


def __getattr__(name: str) -> Any:
    if name == "observe":
        from aiscope.instrument.decorators import observe

        return observe
    raise AttributeError(f"module 'aiscope.instrument' has no attribute {name!r}")


def _targets(openai: bool, anthropic: bool) -> list[Target]:
    found: list[Target] = []
    if openai:
        found += importlib.import_module("aiscope.instrument._openai").targets()
    if anthropic:
        found += importlib.import_module("aiscope.instrument._anthropic").targets()
    return found


def instrument(
    *,
    openai: bool = True,
    anthropic: bool = True,
    include_usage: bool = False,
    rate_limiter: RateLimiterLike | None = None,
) -> None:
    """Record every call of the openai / anthropic SDKs in this process.

    Idempotent: calling it again wraps nothing twice. ``include_usage`` adds
    ``stream_options={"include_usage": True}`` to OpenAI chat streams that do not
    say, so their usage is reported rather than estimated (off by default: it
    adds a final chunk the application did not ask for). ``rate_limiter`` (a
    :class:`~aiscope.resilience.RateLimiter` or
    :class:`~aiscope.resilience.RedisRateLimiter`) makes every call wait for (or be
    refused by) that limit before the SDK sends it, as AiClient's calls do. An SDK
    that is not installed is skipped.
    """
    for name, flag in (
        ("openai", openai),
        ("anthropic", anthropic),
        ("include_usage", include_usage),
    ):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {flag!r}")
    _check_limiter(rate_limiter)
    from aiscope.instrument._patch import is_wrapped, make_wrapper, settings

    with _lock:
        settings.include_usage = include_usage
        settings.rate_limiter = rate_limiter
        for t in _targets(openai, anthropic):
            current = t.cls.__dict__.get(t.name)
            if current is None or is_wrapped(current):
                continue
            setattr(t.cls, t.name, make_wrapper(t, current))


def uninstrument(*, openai: bool = True, anthropic: bool = True) -> None:
    """Put back the SDKs' own methods (the very same function objects)."""
    from aiscope.instrument._patch import ORIGINAL, is_wrapped, settings

    with _lock:
        for t in _targets(openai, anthropic):
            current = t.cls.__dict__.get(t.name)
            if current is not None and is_wrapped(current):
                setattr(t.cls, t.name, getattr(current, ORIGINAL))
        settings.include_usage = False
        settings.rate_limiter = None


def _check_limiter(limiter: object) -> None:
    from aiscope.resilience.ratelimit import RateLimiterLike

    if limiter is not None and not isinstance(limiter, RateLimiterLike):
        raise TypeError(f"rate_limiter must be a RateLimiter or RedisRateLimiter, got {limiter!r}")


def is_instrumented(*, openai: bool = True, anthropic: bool = True) -> bool:
    """True if every method of the chosen SDKs is wrapped (False if none is installed)."""
    from aiscope.instrument._patch import is_wrapped

    found = _targets(openai, anthropic)
    return bool(found) and all(is_wrapped(t.cls.__dict__.get(t.name)) for t in found)


def _resource(client: Any, target: Target) -> Any:
    from aiscope.instrument import _anthropic, _openai

    paths = {**_openai.CLIENT_PATHS, **_anthropic.CLIENT_PATHS}
    path = paths.get(target.cls.__name__.removeprefix("Async"))
    obj = client
    for attr in path or ():
        obj = getattr(obj, attr, None)
        if obj is None:
            return None
    return obj if isinstance(obj, target.cls) else None


def wrap(
    client: C, *, scope: Scope | None = None, rate_limiter: RateLimiterLike | None = None
) -> C:
    """Record the calls of this one ``openai``/``anthropic`` client (returned, for chaining).

    ``scope`` sends its records to that scope instead of the current one;
    ``rate_limiter`` limits this client's calls (instead of ``instrument``'s). The
    client's methods are wrapped on its own resource objects, so other clients
    stay untouched; wrapping twice wraps once.
    """
    from aiscope.instrument._patch import ORIGINAL, is_wrapped, make_wrapper
    from aiscope.scope import Scope

    if scope is not None and not isinstance(scope, Scope):
        raise TypeError(f"scope must be an aiscope.Scope, got {scope!r}")
    _check_limiter(rate_limiter)
    done = 0
    for t in _targets(True, True):
        res = _resource(client, t)
        if res is None:
            continue
        done += 1
        if is_wrapped(res.__dict__.get(t.name)):
            continue
        bound = getattr(res, t.name)
        if is_wrapped(getattr(bound, "__func__", None)):
            bound = getattr(bound.__func__, ORIGINAL).__get__(res)  # globally instrumented
        res.__dict__[t.name] = make_wrapper(
            t, bound, resource=res, scope=scope, rate_limiter=rate_limiter
        )
    if done == 0:
        raise TypeError(f"wrap() takes an openai or anthropic client, got {type(client).__name__}")
    return client
