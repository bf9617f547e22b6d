"""Identifiers that look like personal data are stored as salted hashes, never as given.

Callers hand the ledger account identifiers of their own choosing; some put a phone number or an
e-mail address there. Those are personal information (PIPL), so the ledger keeps an HMAC of them:
the same person still maps to the same value, but the value does not reveal the number.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re

DEFAULT_SALT_ENV = "HEGUI_IDENTIFIER_SALT"
HASH_PREFIX = "h:"

_SEPARATORS = re.compile(r"[\s\-().]")
_CN_MOBILE = re.compile(r"^(?:\+?86)?1[3-9]\d{9}$")
_E164 = re.compile(r"^\+\d{7,15}$")
_DIGITS = re.compile(r"^\d{7,}$")
_RESIDENT_ID = re.compile(r"^\d{17}[\dXx]$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def looks_personal(value: str) -> bool:
    """True for phone numbers (CN mobile, E.164), e-mail addresses, 18-digit resident ID numbers
    and any run of 7 or more digits (QQ numbers, landlines): things that identify a person."""
    v = value.strip()
    if v.startswith(HASH_PREFIX):
        return False
    if _EMAIL.match(v):
        return True
    compact = _SEPARATORS.sub("", v)
    return bool(
        _CN_MOBILE.match(compact)
        or _E164.match(compact)
        or _RESIDENT_ID.match(compact)
        or _DIGITS.match(compact)
    )


def _canonical(value: str) -> str:
    v = value.strip()
    if "@" in v:
        return v.lower()
    compact = _SEPARATORS.sub("", v).upper()
    # One person, one hash, whether or not the caller wrote the country code.
    if _CN_MOBILE.match(compact) and len(compact) > 11:
        compact = compact[-11:]
    return compact


def hash_identifier(value: str, salt: str | bytes | None = None, *, env: str = DEFAULT_SALT_ENV) -> str:
    """``h:`` + HMAC-SHA256(salt, canonical value) in hex.

    ``salt`` defaults to the environment variable ``env``; a missing salt is an error, because an
    unsalted hash of a phone number is reversed by trying all numbers.
    """
    if salt is None:
        salt = os.environ.get(env)
        if not salt:
            raise ValueError(f"no salt for hashing identifiers: set ${env}")
    key = salt.encode("utf-8") if isinstance(salt, str) else salt
    digest = hmac.new(key, _canonical(value).encode("utf-8"), hashlib.sha256).hexdigest()
    return HASH_PREFIX + digest
