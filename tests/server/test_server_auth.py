"""Projects and keys: an ingest key cannot read, one project never sees another's data,
keys are stored hashed, and keyless mode is for loopback only."""

from __future__ import annotations

import hashlib
import json

import httpx2
import pytest
from sqlalchemy import select, text

from aiscope.server import create_project, serve
from aiscope.server.auth import authenticate
from aiscope.server.tables import api_keys
from tests.server.harness import Running


def _send(url: str, key: str, trace_id: str, model: str) -> httpx2.Response:
    span = {
        "traceId": trace_id,
        "spanId": "1111111111111111",
        "name": "chat",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000500000000",
        "attributes": [
            {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": model}},
        ],
    }
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    return httpx2.post(f"{url}/v1/traces", json=body, headers={"x-aiscope-key": key}, timeout=10)


def _get(url: str, path: str, key: str | None) -> httpx2.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx2.get(f"{url}{path}", headers=headers, timeout=10)


def test_projects_are_isolated_and_keys_have_one_role(server: Running) -> None:
    a = create_project(server.engine, "A")
    b = create_project(server.engine, "B")
    ta, tb = "a" * 32, "b" * 32
    assert _send(server.url, a.public_key, ta, "gpt-4o").status_code == 200
    assert _send(server.url, b.public_key, tb, "gpt-4o-mini").status_code == 200

    # an ingest key cannot read, a read key cannot ingest
    r = _get(server.url, "/api/calls", a.public_key)
    assert r.status_code == 403 and "secret (read)" in r.json()["detail"]
    assert _send(server.url, a.secret_key, ta, "x").status_code == 403

    # each secret key sees its own project only, on every read endpoint
    for keys, mine, other, model in ((a, ta, tb, "gpt-4o"), (b, tb, ta, "gpt-4o-mini")):
        items = _get(server.url, "/api/calls", keys.secret_key).json()["items"]
        assert [c["model"] for c in items] == [model]
        assert _get(server.url, f"/api/traces/{mine}", keys.secret_key).status_code == 200
        assert _get(server.url, f"/api/traces/{other}", keys.secret_key).status_code == 404
        assert _get(server.url, f"/api/calls?trace_id={other}", keys.secret_key).json() == {
            "items": [],
            "next_cursor": None,
        }
        cost = _get(server.url, "/api/cost", keys.secret_key).json()["rows"]
        assert [row["model"] for row in cost] == [model]
        lat = _get(server.url, "/api/latency", keys.secret_key).json()["rows"]
        assert [row["model"] for row in lat] == [model]


@pytest.mark.parametrize(
    ("key", "status"),
    [
        (None, 401),
        ("nonsense", 401),
        ("ask_sec_0123456789abcdef_" + "0" * 64, 401),  # well-formed, unknown
    ],
)
def test_missing_or_wrong_keys_are_refused(server: Running, key: str | None, status: int) -> None:
    r = _get(server.url, "/api/calls", key)
    assert r.status_code == status
    assert r.json()["detail"]


def test_tampered_secret_is_refused(server: Running) -> None:
    keys = create_project(server.engine, "A")
    tampered = keys.secret_key[:-1] + ("0" if keys.secret_key[-1] != "0" else "1")
    assert _get(server.url, "/api/calls", tampered).status_code == 401
    assert _get(server.url, "/api/calls", keys.secret_key).status_code == 200


def test_keys_are_stored_hashed(server: Running) -> None:
    keys = create_project(server.engine, "A")
    with server.engine.connect() as conn:
        dump = json.dumps([list(r) for r in conn.execute(select(api_keys))], default=str)
        assert conn.execute(text("SELECT count(*) FROM api_keys")).scalar() == 2
    for key in (keys.public_key, keys.secret_key):
        secret = key.rsplit("_", 1)[1]
        assert secret not in dump
        assert hashlib.sha256(secret.encode()).hexdigest() in dump
    who = authenticate(server.engine, keys.secret_key)
    assert who is not None and (who.project_id, who.kind) == (keys.project_id, "secret")


def test_local_mode_needs_no_key_but_only_on_loopback(local_server: Running) -> None:
    assert _send(local_server.url, "", "c" * 32, "gpt-4o").status_code == 200
    assert len(_get(local_server.url, "/api/calls", None).json()["items"]) == 1
    with pytest.raises(ValueError, match="not a loopback address"):
        serve("sqlite:///unused.db", host="0.0.0.0", port=1)


def test_project_id_is_validated(server: Running) -> None:
    with pytest.raises(ValueError, match="project_id"):
        create_project(server.engine, "x", project_id="bad id; drop")
    with pytest.raises(ValueError, match="project name"):
        create_project(server.engine, "  ")


CALL = {"calls": [{"model": "gpt-4o", "provider": "openai", "cost_usd": 12.5}]}


def _stored(url: str) -> int:
    return len(httpx2.get(f"{url}/api/calls", timeout=10).json()["items"])


@pytest.mark.parametrize(
    "headers",
    [
        # what a cross-origin fetch(..., {mode: "no-cors", body}) from another site sends
        {"content-type": "text/plain", "origin": "https://evil.example"},
        {"content-type": "application/json", "origin": "https://evil.example"},
        {"content-type": "application/json", "sec-fetch-site": "cross-site"},
        {"content-type": "application/x-www-form-urlencoded"},
    ],
)
def test_keyless_mode_refuses_cross_site_and_non_json_writes(
    local_server: Running, headers: dict[str, str]
) -> None:
    url = local_server.url
    r = httpx2.post(f"{url}/api/ingest/calls", content=json.dumps(CALL), headers=headers)
    assert r.status_code in (403, 415), r.text
    assert _stored(url) == 0
    # the dashboard's own page (same origin) and programs (no Origin) still write
    port = url.rsplit(":", 1)[1]
    for ok in ({}, {"origin": f"http://localhost:{port}", "sec-fetch-site": "same-origin"}):
        r = httpx2.post(f"{url}/api/ingest/calls", json=CALL, headers=ok, timeout=10)
        assert r.status_code == 200, r.text


def test_keyless_mode_refuses_other_host_names_against_dns_rebinding(
    local_server: Running,
) -> None:
    url = local_server.url
    assert httpx2.post(f"{url}/api/ingest/calls", json=CALL, timeout=10).status_code == 200
    rebound = httpx2.get(f"{url}/api/calls", headers={"host": "evil.example:6363"}, timeout=10)
    assert rebound.status_code == 403 and "evil.example" in rebound.json()["detail"]
    for host in ("localhost:1", "127.0.0.1", "[::1]:6363"):
        assert httpx2.get(f"{url}/api/calls", headers={"host": host}, timeout=10).status_code == 200
    local_server.app.state.settings.allowed_hosts = ("aiscope.internal",)
    named = httpx2.get(f"{url}/api/calls", headers={"host": "aiscope.internal:80"}, timeout=10)
    assert named.status_code == 200 and len(named.json()["items"]) == 1


def test_keys_can_be_revoked_and_rotated_over_the_api(server: Running) -> None:
    keys = create_project(server.engine, "rot")
    url, sec = server.url, keys.secret_key
    listed = _get(url, "/api/keys", sec).json()["keys"]
    assert {k["kind"] for k in listed} == {"public", "secret"}
    assert not any(k["revoked"] for k in listed) and "secret_sha256" not in listed[0]
    pub_id = keys.public_key.split("_")[2]
    auth_h = {"authorization": f"Bearer {sec}"}
    rotated = httpx2.post(f"{url}/api/keys/{pub_id}/rotate", headers=auth_h, timeout=10)
    assert rotated.status_code == 201, rotated.text
    new_pub = rotated.json()["key"]
    assert _send(url, keys.public_key, "a" * 32, "gpt-4o").status_code == 401  # old one dead
    assert _send(url, new_pub, "b" * 32, "gpt-4o").status_code == 200
    # another project's secret key cannot touch this project's keys
    other = create_project(server.engine, "other")
    new_id = new_pub.split("_")[2]
    theirs = {"authorization": f"Bearer {other.secret_key}"}
    assert httpx2.post(f"{url}/api/keys/{new_id}/revoke", headers=theirs).status_code == 404
    assert httpx2.post(f"{url}/api/keys/{new_id}/revoke", headers=auth_h).status_code == 200
    assert _send(url, new_pub, "c" * 32, "gpt-4o").status_code == 401
    assert httpx2.post(f"{url}/api/keys/nothex/revoke", headers=auth_h).status_code == 422


def test_keys_cli_rotates_and_revokes(engine_url_sqlite: str) -> None:
    from typer.testing import CliRunner

    from aiscope.cli import app
    from aiscope.server import open_database

    engine = open_database(engine_url_sqlite)
    keys = create_project(engine, "cli")
    runner = CliRunner()
    out = runner.invoke(app, ["keys", "rotate", keys.secret_key, "--db", engine_url_sqlite])
    assert out.exit_code == 0, out.output
    new_secret = out.output.strip()
    assert authenticate(engine, keys.secret_key) is None
    assert authenticate(engine, new_secret) is not None
    out = runner.invoke(app, ["keys", "revoke", new_secret, "--db", engine_url_sqlite])
    assert out.exit_code == 0 and authenticate(engine, new_secret) is None
    again = runner.invoke(app, ["keys", "revoke", new_secret, "--db", engine_url_sqlite])
    assert again.exit_code == 1 and "no live key" in again.output
    bad = runner.invoke(app, ["keys", "revoke", "nonsense", "--db", engine_url_sqlite])
    assert bad.exit_code == 2
    listed = runner.invoke(app, ["keys", "list", keys.project_id, "--db", engine_url_sqlite])
    assert sum(k["revoked"] for k in json.loads(listed.output)) == 2
    engine.dispose()


@pytest.fixture
def engine_url_sqlite(tmp_path: object) -> str:
    return f"sqlite:///{tmp_path}/keys.db"
