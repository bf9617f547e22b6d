"""CSRF tokens for the portal's forms: a double-submit cookie, signed.

Each browser gets a random cookie value (``hegui_csrf``, HttpOnly, SameSite=Lax); every form carries
``HMAC-SHA256(key, cookie value)``. A POST is accepted only when the form's token is the HMAC of the
cookie it came with (compared in constant time). Another site can make a browser send the cookie but
cannot read it, and cannot make the token without the key. The key comes from the environment
variable ``portal.secret_env`` or, unset, from a random key kept in the ledger's ``ledger_meta``
table, so every worker and replica on the same database agrees on it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hegui.ledger.store import Ledger

COOKIE = "hegui_csrf"
FIELD = "csrf_token"
META_KEY = "portal_csrf_key"


class CSRFSigner:
    def __init__(self, key: bytes) -> None:
        self.key = key

    @classmethod
    def from_config(cls, secret_env: str, ledger: Ledger, environ: Mapping[str, str] | None = None) -> CSRFSigner:
        env = os.environ if environ is None else environ
        secret = env.get(secret_env, "")
        if secret:
            return cls(secret.encode())
        # the pattern of the ledger's own salt: made once, shared by everyone on the database
        return cls(ledger.meta_value(META_KEY, lambda: secrets.token_hex(32)).encode())

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_urlsafe(32)

    def token(self, cookie: str) -> str:
        return hmac.new(self.key, b"hegui-portal-csrf\x00" + cookie.encode(), hashlib.sha256).hexdigest()

    def valid(self, cookie: str | None, token: str | None) -> bool:
        if not cookie or not token or len(cookie) > 128:
            return False
        return hmac.compare_digest(self.token(cookie), token)
