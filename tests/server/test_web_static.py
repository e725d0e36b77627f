"""The dashboard's files: served from the package with a strict Content-Security-Policy,
shipped as package data, and written so that no string becomes markup."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from aiscope.server import Settings, create_app, web
from aiscope.server.routes import dashboard as routes

STATIC = Path(web.__file__).with_name("static")
ROOT = Path(__file__).resolve().parents[2]


def test_page_and_assets_are_served_with_a_strict_policy(engine: Engine) -> None:
    client = TestClient(create_app(Settings(engine=engine, compact_every_s=None)))
    page = client.get("/")  # no key needed: the page holds no data
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    for src in re.findall(r'(?:src|href)="(/ui/[^"]+)"', page.text):
        asset = client.get(src)
        assert asset.status_code == 200, src
        assert asset.headers["x-content-type-options"] == "nosniff"
    assert client.get("/ui/routes.py").status_code == 404
    assert client.get("/ui/..%2Froutes.py").status_code == 404
    assert "/" not in client.get("/openapi.json").json()["paths"]  # the page is not API


def test_no_external_resources_and_no_html_parsing_of_data() -> None:
    files = {p.name: p.read_text() for p in STATIC.iterdir()}
    assert set(files) == set(routes.FILES)
    for name, text in files.items():
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), name  # no CDN
        if name.endswith(".js"):
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
                assert sink not in text, f"{name} uses {sink}"


def test_static_files_are_package_data() -> None:
    """A non-editable install has every file the page loads."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["aiscope"]
    pkg = ROOT / "src" / "aiscope"
    for path in STATIC.iterdir():
        rel = path.relative_to(pkg).as_posix()
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), f"{rel} is not package data"


def test_no_page_of_the_server_loads_scripts_from_a_cdn(engine: Engine) -> None:
    """FastAPI's /docs and /redoc fetched Swagger UI from a CDN: broken offline."""
    client = TestClient(create_app(Settings(engine=engine, compact_every_s=None)))
    for path in ("/docs", "/redoc"):
        page = client.get(path)
        assert page.status_code == 404 or not re.search(r"https?://", page.text), path
    assert client.get("/openapi.json").status_code == 200
