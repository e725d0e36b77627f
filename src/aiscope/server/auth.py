"""Projects and their API keys.

A key reads ``ask_pub_<key id>_<secret>`` (ingest) or ``ask_sec_<key id>_<secret>``
(read). Only the key id and the SHA-256 of the secret are stored; the secret is
high-entropy (32 random bytes), so a fast hash is enough, and the digests are
compared with :func:`hmac.compare_digest` (constant time).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Engine, insert, select, update

from aiscope.server.db import write_lock
from aiscope.server.tables import api_keys, projects

Kind = Literal["public", "secret"]
_PREFIX: dict[Kind, str] = {"public": "ask_pub_", "secret": "ask_sec_"}
_KEY = re.compile(r"^ask_(pub|sec)_([0-9a-f]{16})_([0-9a-f]{64})$")
_PROJECT_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
LOCAL_PROJECT = "local"


@dataclass(frozen=True, slots=True)
class ProjectKeys:
    """A new project's id and keys: the only time the secrets are seen in clear."""

    project_id: str
    public_key: str
    secret_key: str


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is: a project, and whether it may ingest or read."""

    project_id: str
    kind: Kind


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_key(project_id: str, kind: Kind) -> tuple[dict[str, object], str]:
    key_id = secrets.token_hex(8)
    secret = secrets.token_hex(32)
    row = {
        "key_id": key_id,
        "project_id": project_id,
        "kind": kind,
        "secret_sha256": _digest(secret),
        "created_ts": time.time(),
        "revoked": False,
    }
    return row, f"{_PREFIX[kind]}{key_id}_{secret}"


def create_project(engine: Engine, name: str, project_id: str | None = None) -> ProjectKeys:
    """Create a project with one public and one secret key."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("project name must be a non-empty string")
    pid = project_id or secrets.token_hex(8)
    if not _PROJECT_ID.match(pid):
        raise ValueError(f"project_id must match {_PROJECT_ID.pattern}, got {pid!r}")
    pub_row, pub = _new_key(pid, "public")
    sec_row, sec = _new_key(pid, "secret")
    with write_lock(engine), engine.begin() as conn:
        conn.execute(insert(projects), {"id": pid, "name": name[:200], "created_ts": time.time()})
        conn.execute(insert(api_keys), [pub_row, sec_row])
    return ProjectKeys(pid, pub, sec)


def ensure_local_project(engine: Engine) -> None:
    """The keyless project of local-only mode."""
    with write_lock(engine), engine.begin() as conn:
        found = conn.execute(select(projects.c.id).where(projects.c.id == LOCAL_PROJECT)).first()
        if found is None:
            conn.execute(
                insert(projects),
                {"id": LOCAL_PROJECT, "name": "local", "created_ts": time.time()},
            )


def authenticate(engine: Engine, key: str) -> Principal | None:
    """The project and kind of ``key``, or None for an unknown, malformed or revoked key."""
    m = _KEY.match(key or "")
    if m is None:
        return None
    kind: Kind = "public" if m.group(1) == "pub" else "secret"
    with engine.connect() as conn:
        row = conn.execute(
            select(api_keys.c.project_id, api_keys.c.kind, api_keys.c.secret_sha256).where(
                api_keys.c.key_id == m.group(2), api_keys.c.revoked.is_(False)
            )
        ).first()
    # Compare even when the key id is unknown, so timing does not tell which part was wrong.
    stored = row.secret_sha256 if row is not None else "0" * 64
    ok = hmac.compare_digest(stored.encode(), _digest(m.group(3)).encode())
    if row is None or not ok or row.kind != kind:
        return None
    return Principal(row.project_id, kind)


def key_id_of(key_or_id: str) -> str:
    """The key id of a whole key (``ask_pub_<id>_<secret>``) or of a bare 16-hex key id."""
    m = _KEY.match(key_or_id or "")
    if m is not None:
        return m.group(2)
    if re.fullmatch(r"[0-9a-f]{16}", key_or_id or ""):
        return key_or_id
    raise ValueError("a key is ask_pub_<id>_<secret> or ask_sec_<id>_<secret>, or its 16-hex id")


def revoke_key(engine: Engine, key_or_id: str, project_id: str | None = None) -> bool:
    """Revoke a key (a whole key or its id), of ``project_id`` when given.

    Returns False when no such live key exists. A revoked key is refused at once.
    """
    kid = key_id_of(key_or_id)
    where = [api_keys.c.key_id == kid, api_keys.c.revoked.is_(False)]
    if project_id is not None:
        where.append(api_keys.c.project_id == project_id)
    with write_lock(engine), engine.begin() as conn:
        return bool(conn.execute(update(api_keys).where(*where).values(revoked=True)).rowcount)


def rotate_key(engine: Engine, key_or_id: str, project_id: str | None = None) -> str:
    """A new key of the same project and kind as ``key_or_id``, which is revoked in the
    same transaction; the new key (in clear, shown this once) is returned.

    ``LookupError`` when no such live key exists (of ``project_id`` when given).
    """
    kid = key_id_of(key_or_id)
    with write_lock(engine), engine.begin() as conn:
        where = [api_keys.c.key_id == kid, api_keys.c.revoked.is_(False)]
        if project_id is not None:
            where.append(api_keys.c.project_id == project_id)
        row = conn.execute(select(api_keys.c.project_id, api_keys.c.kind).where(*where)).first()
        if row is None:
            raise LookupError(f"no live key with id {kid}")
        conn.execute(update(api_keys).where(api_keys.c.key_id == kid).values(revoked=True))
        new_row, new_key = _new_key(row.project_id, row.kind)
        conn.execute(insert(api_keys), new_row)
    return new_key


def list_keys(engine: Engine, project_id: str) -> list[dict[str, object]]:
    """A project's keys: id, kind, created time and whether revoked (never a secret)."""
    cols = (api_keys.c.key_id, api_keys.c.kind, api_keys.c.created_ts, api_keys.c.revoked)
    with engine.connect() as conn:
        rows = conn.execute(
            select(*cols).where(api_keys.c.project_id == project_id).order_by(*cols[2:3])
        ).all()
    return [dict(r._mapping) for r in rows]
