"""``/api/keys``: a project's API keys, listed, revoked and rotated with its secret key.

A revoked key is refused from the next request on. Rotating a key revokes it and
answers a new key of the same kind, shown this once: roll it out, then the old one is
already dead (rotate the public key first if clients must keep sending meanwhile:
issue a second one by rotating, not by sharing the secret one).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path

from aiscope.server import auth
from aiscope.server.deps import Db, Reader

router = APIRouter(tags=["keys"])
KeyId = Annotated[str, Path(pattern="^[0-9a-f]{16}$", description="the key's 16-hex id")]


@router.get("/api/keys")
def keys(who: Reader, engine: Db) -> dict[str, Any]:
    """The project's keys (ids, kinds, created, revoked), never their secrets."""
    return {"keys": auth.list_keys(engine, who.project_id)}


@router.post("/api/keys/{key_id}/revoke")
def revoke(who: Reader, engine: Db, key_id: KeyId) -> dict[str, str]:
    """Revoke one of the project's keys (404 if it has no such live key)."""
    if not auth.revoke_key(engine, key_id, who.project_id):
        raise HTTPException(404, f"the project has no live key {key_id}")
    return {"revoked": key_id}


@router.post("/api/keys/{key_id}/rotate", status_code=201)
def rotate(who: Reader, engine: Db, key_id: KeyId) -> dict[str, str]:
    """Revoke one of the project's keys and answer a new one of the same kind."""
    try:
        new = auth.rotate_key(engine, key_id, who.project_id)
    except LookupError:
        raise HTTPException(404, f"the project has no live key {key_id}") from None
    return {"revoked": key_id, "key": new}
