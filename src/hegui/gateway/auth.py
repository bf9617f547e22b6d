"""API keys: ``Authorization: Bearer <key>``, looked up (hashed) in the ledger, cached briefly.

The cache is keyed by a SHA-256 of the key so the plaintext is not kept around; a revoked key stops
working within ``gateway.auth_cache_seconds``. The admin key (``/admin/*`` routes) comes from the
config or its environment variable and is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request

from hegui.gateway.config import GatewayConfig
from hegui.gateway.errors import GatewayError, unauthorized

if TYPE_CHECKING:
    from hegui.ledger.store import Ledger


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key and the account it belongs to."""

    key_id: str
    account_id: str | None
    admin: bool = False
    scene: str | None = None
    """Scene bound to the key's account, if the ledger knows one."""
    public: bool = False
    """An app's public key: requests must name a verified end user (the account gate enforces it)."""


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    return token.strip()


class KeyAuth:
    def __init__(self, ledger: Ledger, cfg: GatewayConfig) -> None:
        self._ledger = ledger
        self._ttl = cfg.auth_cache_seconds
        self._cache: dict[bytes, tuple[float, Principal]] = {}
        admin = os.environ.get(cfg.admin_key_env) or cfg.admin_key
        self._admin = admin.encode() if admin else None

    @property
    def admin_enabled(self) -> bool:
        return self._admin is not None

    async def authenticate(self, request: Request) -> Principal:
        token = bearer_token(request)
        digest = hashlib.sha256(token.encode()).digest()
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        if self._admin is not None and hmac.compare_digest(token.encode(), self._admin):
            principal = Principal(key_id="admin", account_id=None, admin=True)
        else:
            principal = await self._lookup(token)
        if self._ttl > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self._ttl, principal)
        return principal

    async def _lookup(self, token: str) -> Principal:
        try:
            key = await self._ledger.alookup_api_key(token)
        except Exception:
            raise GatewayError(503, "cannot check the API key: the ledger is unavailable",
                               type="hegui_unavailable", code="ledger_unavailable") from None
        if key is None or key.revoked:
            raise unauthorized("invalid API key")
        # a scene bound to the key's account wins over the request header (when the ledger has one)
        return Principal(key_id=key.id, account_id=key.account_id, admin=key.admin,
                         scene=getattr(key, "scene", None), public=key.public)

    def forget(self) -> None:
        self._cache.clear()
