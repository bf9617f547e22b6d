"""Integrity data in ``ReservedCode1`` (producer) and ``ReservedCode2`` (propagator), GB 45438 Annex F.4.

Both fields carry the SHA-256 content digest the label was made for, so a verifier can tell a label
copied onto other content (digest differs) from one whose fields were edited (signature fails).
Values stay inside the Annex E character set (base64url without padding, ``.`` separators):

- ``h1.<digest>``: content hash only (no key configured); detects changed content, not forgery.
- ``s1.<key id>.<digest>.<Ed25519 signature>``: the signature covers the domain tag, the label
  fields named below, and the digest. ``key id`` is the first 8 bytes of SHA-256 of the raw public key.

``ReservedCode1`` signs Label, ContentProducer and ProduceID; ``ReservedCode2`` signs those plus
ReservedCode1, ContentPropagator and PropagateID, so a platform can add itself as propagator
(Labeling Measures Art. 6) without breaking the producer's signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hegui.errors import ConfigError, UserError
from hegui.labeling.metadata import AIGCLabel

if TYPE_CHECKING:
    from hegui.config import HeguiConfig


class SignatureStatus(StrEnum):
    VALID = "valid"
    """Signed with the trusted key; the content is the content that was signed."""
    CONTENT_CHANGED = "content-changed"
    """The digest in the label does not match the content: edited content, or a label copied elsewhere."""
    INVALID = "invalid"
    """The signature does not verify: label fields were edited, or a different key signed it."""
    UNKNOWN_KEY = "unknown-key"
    """Signed, but by a key other than the trusted one."""
    UNVERIFIED = "unverified"
    """Signed, content digest matches, but no public key was given to check the signature."""
    HASH_ONLY = "hash-only"
    """No signature, only a content hash, which matches the content."""
    UNSIGNED = "unsigned"
    """The field is empty."""
    MALFORMED = "malformed"
    """The field is not in hegui's format. The verifier reports this only for a code that claims it
    (``s1.``/``h1.``) and does not parse; other codes it reports as ``not-hegui``."""
    NOT_HEGUI = "not-hegui"
    """The field holds someone else's integrity data (another tool's hash or signature, a number):
    hegui cannot check it, and it is no evidence either way. Set by the verifier (:func:`is_hegui_code`)."""

    @property
    def ok(self) -> bool:
        """No sign of tampering (the label may still be unsigned)."""
        return self in (
            SignatureStatus.VALID,
            SignatureStatus.UNVERIFIED,
            SignatureStatus.HASH_ONLY,
            SignatureStatus.UNSIGNED,
            SignatureStatus.NOT_HEGUI,
        )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def unb64(text: str, size: int | None = None) -> bytes:
    """Strict base64url decoding (the stdlib silently skips stray characters)."""
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if size is not None and len(data) != size:
        raise ValueError(f"expected {size} bytes")
    return data


HEGUI_CODE_TAGS = ("s1.", "h1.")


def is_hegui_code(code: str) -> bool:
    """Does ``code`` claim hegui's integrity format? Only such a code can fail as tampered."""
    return code.startswith(HEGUI_CODE_TAGS)


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return b64(hashlib.sha256(raw).digest()[:8])


def _message(tag: bytes, fields: list[str], digest: bytes) -> bytes:
    return tag + b"\x00" + b"\x00".join(f.encode("utf-8") for f in fields) + b"\x00" + digest


def _producer_message(label: AIGCLabel, digest: bytes) -> bytes:
    return _message(b"GB45438-AIGC-RC1", [label.label, label.content_producer, label.produce_id], digest)


def _propagator_message(label: AIGCLabel, digest: bytes) -> bytes:
    fields = [
        label.label,
        label.content_producer,
        label.produce_id,
        label.reserved_code1,
        label.content_propagator,
        label.propagate_id,
    ]
    return _message(b"GB45438-AIGC-RC2", fields, digest)


def _code(message: bytes, digest: bytes, key: Ed25519PrivateKey | None) -> str:
    if key is None:
        return f"h1.{b64(digest)}"
    return f"s1.{key_id(key.public_key())}.{b64(digest)}.{b64(key.sign(message))}"


def _check(code: str, message: bytes, digest: bytes, public_key: Ed25519PublicKey | None) -> SignatureStatus:
    if not code:
        return SignatureStatus.UNSIGNED
    parts = code.split(".")
    try:
        if parts[0] == "h1" and len(parts) == 2:
            return (
                SignatureStatus.HASH_ONLY
                if unb64(parts[1], 32) == digest
                else SignatureStatus.CONTENT_CHANGED
            )
        if parts[0] != "s1" or len(parts) != 4:
            return SignatureStatus.MALFORMED
        kid, signed_digest, sig = parts[1], unb64(parts[2], 32), unb64(parts[3], 64)
    except (binascii.Error, ValueError):
        return SignatureStatus.MALFORMED
    if public_key is None:
        return SignatureStatus.UNVERIFIED if signed_digest == digest else SignatureStatus.CONTENT_CHANGED
    if kid != key_id(public_key):
        return SignatureStatus.UNKNOWN_KEY
    signed_message = message[: -len(digest)] + signed_digest
    try:
        public_key.verify(sig, signed_message)
    except InvalidSignature:
        return SignatureStatus.INVALID
    # The fields are genuine; only now is a digest mismatch evidence of changed content, not forgery.
    return SignatureStatus.VALID if signed_digest == digest else SignatureStatus.CONTENT_CHANGED


def sign(label: AIGCLabel, content_digest: bytes, key: Ed25519PrivateKey | None) -> AIGCLabel:
    """``label`` with ``ReservedCode1`` bound to ``content_digest`` (signed when ``key`` is given)."""
    return replace(label, reserved_code1=_code(_producer_message(label, content_digest), content_digest, key))


def sign_propagation(label: AIGCLabel, content_digest: bytes, key: Ed25519PrivateKey | None) -> AIGCLabel:
    """``label`` with ``ReservedCode2`` over the producer and propagator fields and the digest."""
    return replace(
        label, reserved_code2=_code(_propagator_message(label, content_digest), content_digest, key)
    )


def verify_signature(
    label: AIGCLabel, content_digest: bytes, public_key: Ed25519PublicKey | None
) -> SignatureStatus:
    """Check ``ReservedCode1`` against the content digest and (when given) the producer's public key."""
    return _check(label.reserved_code1, _producer_message(label, content_digest), content_digest, public_key)


def verify_propagation(
    label: AIGCLabel, content_digest: bytes, public_key: Ed25519PublicKey | None
) -> SignatureStatus:
    """Check ``ReservedCode2`` against the content digest and (when given) the propagator's public key."""
    return _check(
        label.reserved_code2, _propagator_message(label, content_digest), content_digest, public_key
    )


# --- keys -------------------------------------------------------------------------------------


def generate_keypair() -> tuple[bytes, bytes]:
    """A new Ed25519 key pair as (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def write_keypair(path: Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write a new key to ``path`` (mode 0600) and its public key to ``path`` + ``.pub``."""
    pub_path = path.with_name(path.name + ".pub")
    for p in (path, pub_path):
        if p.exists() and not overwrite:
            raise UserError(f"{p}: already exists (use --force to replace it)")
    private_pem, public_pem = generate_keypair()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    pub_path.write_bytes(public_pem)
    return path, pub_path


def load_private_key(path: Path, what: str = "labeling.signing_key") -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path} ({exc.strerror})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what}: {path} is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{what}: {path} is not an Ed25519 key (make one with `hegui label keygen`)")
    return key


def load_public_key(path: Path, what: str = "labeling.public_key") -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (a private key file is accepted too)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{what}: cannot read {path} ({exc.strerror})") from None
    if b"PRIVATE KEY" in data:
        return load_private_key(path, what).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise UserError(f"{what}: {path} is not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UserError(f"{what}: {path} is not an Ed25519 public key")
    return key


def load_signing_key(cfg: HeguiConfig) -> Ed25519PrivateKey | None:
    """The configured ``labeling.signing_key``, or None (labels then carry a content hash only)."""
    if not cfg.labeling.signing_key:
        return None
    return load_private_key(cfg.resolve_path(cfg.labeling.signing_key))


def load_trusted_public_key(cfg: HeguiConfig, override: Path | None = None) -> Ed25519PublicKey | None:
    """``override``, else ``labeling.public_key``, else the public half of ``labeling.signing_key``."""
    if override is not None:
        return load_public_key(override, "--public-key")
    if cfg.labeling.public_key:
        return load_public_key(cfg.resolve_path(cfg.labeling.public_key))
    key = load_signing_key(cfg)
    return key.public_key() if key is not None else None


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
