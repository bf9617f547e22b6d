"""Sending one-time codes by SMS: a small interface, so a provider plugs in its own SMS service.

- :class:`LogSender` (``accounts.sms.sender: log``, development): the code goes to the ``hegui.sms``
  log at WARNING, with the number masked. ``hegui demo`` prints it.
- :class:`WebhookSender` (``accounts.sms.sender: webhook``): a signed JSON POST to your adapter, which
  calls Aliyun, Tencent Cloud or any SMS provider with its own SDK. hegui depends on none of them.

The raw number leaves hegui only here, in the webhook's body, because an SMS cannot be sent without
it; it is never logged and never stored (the database keeps a salted HMAC and ``138****8000``).

The webhook request (documented in ``docs/accounts.md``)::

    POST <accounts.sms.webhook_url>
    content-type: application/json
    x-hegui-timestamp: 1767225600
    x-hegui-signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with $HEGUI_SMS_WEBHOOK_SECRET>

    {"phone": "13800138000", "code": "123456", "purpose": "register", "ttl_seconds": 300,
     "template": "您的验证码是 123456，5 分钟内有效。…", "timestamp": 1767225600}

The timestamp is inside the signed body too, so an adapter that rejects old timestamps (say, more
than 5 minutes off) cannot be fed a replayed request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from typing import TYPE_CHECKING, Protocol

import httpx

from hegui.accounts.store import mask_phone
from hegui.errors import ConfigError

if TYPE_CHECKING:
    from hegui.accounts.config import SMSConfig

log = logging.getLogger("hegui.sms")

SIGNATURE_HEADER = "x-hegui-signature"
TIMESTAMP_HEADER = "x-hegui-timestamp"


class SMSFailed(Exception):
    """The code could not be handed to the SMS service (one line, no phone number in it)."""


class SMSSender(Protocol):
    """Delivers a one-time code to a mainland mobile number (11 digits, no country code)."""

    async def send(self, phone: str, code: str, purpose: str, ttl_seconds: int) -> None:
        """Deliver the code, or raise :class:`SMSFailed`."""
        ...


def message_text(template: str, code: str, ttl_seconds: int) -> str:
    """The SMS text from ``accounts.sms.template`` (``{code}`` and ``{minutes}`` filled in)."""
    return template.format(code=code, minutes=max(1, round(ttl_seconds / 60)))


class LogSender:
    """Development: writes ``SMS to 138****8000: code 123456 (register)`` to the ``hegui.sms`` log."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or log

    async def send(self, phone: str, code: str, purpose: str, ttl_seconds: int) -> None:
        # the code is shown (that is the point of this sender); the number is masked
        self.log.warning("SMS to %s: code %s (%s)", mask_phone(phone), code, purpose)


def sign(secret: str | bytes, body: bytes) -> str:
    """The ``x-hegui-signature`` value of ``body``: ``sha256=`` + hex HMAC-SHA256."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(secret: str | bytes, body: bytes, header: str) -> bool:
    """What a receiver does: recompute the signature and compare in constant time."""
    return hmac.compare_digest(sign(secret, body), header)


class WebhookSender:
    """A signed JSON POST per code; any 2xx answer counts as sent."""

    def __init__(self, url: str, secret: str, *, timeout: float = 5.0, template: str = "",
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url
        self._secret = secret.encode("utf-8")
        self.timeout = timeout
        self.template = template
        self.transport = transport
        """An httpx transport (tests pass ``httpx.MockTransport``); None: the network."""

    async def send(self, phone: str, code: str, purpose: str, ttl_seconds: int) -> None:
        now = int(time.time())
        body = json.dumps({
            "phone": phone, "code": code, "purpose": purpose, "ttl_seconds": ttl_seconds,
            "template": message_text(self.template, code, ttl_seconds) if self.template else "",
            "timestamp": now,
        }, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {"content-type": "application/json", SIGNATURE_HEADER: sign(self._secret, body),
                   TIMESTAMP_HEADER: str(now)}
        try:
            async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport,
                                         follow_redirects=False) as client:
                resp = await client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SMSFailed(f"the SMS webhook did not answer ({exc.__class__.__name__})") from None
        if not 200 <= resp.status_code < 300:
            raise SMSFailed(f"the SMS webhook answered HTTP {resp.status_code}")


def sender_from_config(cfg: SMSConfig, source: str = "hegui.yaml", environ: dict[str, str] | None = None
                       ) -> SMSSender:
    """The sender ``accounts.sms`` names. A webhook without its secret is a config error: unsigned
    requests would let anyone who can reach the adapter send SMS in the provider's name."""
    if cfg.sender == "log":
        return LogSender()
    env = os.environ if environ is None else environ
    secret = env.get(cfg.webhook_secret_env)
    if not secret:
        raise ConfigError(f"{source}: accounts.sms: sender 'webhook' needs the signing secret in "
                          f"${cfg.webhook_secret_env} (accounts.sms.webhook_secret_env)")
    assert cfg.webhook_url is not None  # checked by SMSConfig
    return WebhookSender(cfg.webhook_url, secret, timeout=cfg.timeout, template=cfg.template)
