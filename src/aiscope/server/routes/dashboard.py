"""Serving the dashboard: ``GET /`` (the page) and ``GET /ui/{file}`` (its JS and CSS).

The files ship inside the package (package data), so nothing is fetched from the
internet. The page needs no key: it holds no data, and asks the query API with the
secret key the user types in (kept in the browser tab's ``sessionStorage``).
A strict Content-Security-Policy (scripts and styles from this origin only, no
inline script) backs up the page's rule of inserting every stored string as text.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

#: file -> media type: the only files served
FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


@cache
def asset(name: str) -> bytes:
    """The bytes of a shipped file (read once)."""
    return (resources.files("aiscope.server.web") / "static" / name).read_bytes()


def _serve(name: str) -> Response:
    return Response(asset(name), media_type=FILES[name], headers=HEADERS)


router = APIRouter(tags=["dashboard"])


@router.get("/", include_in_schema=False)
def index() -> Response:
    """The dashboard page."""
    return _serve("index.html")


@router.get("/ui/{name}", include_in_schema=False)
def static_file(name: str) -> Response:
    """One of the page's scripts or style sheets."""
    if name not in FILES:
        raise HTTPException(404, f"no file {name[:80]!r}")
    return _serve(name)
