"""Takedown requests to the provider's own content system: one signed JSON POST per request.

hegui does not host the content a case is about; the provider's system does. A takedown is a POST
to ``cases.takedown.webhook_url`` with ``x-hegui-signature: sha256=<hex HMAC-SHA256 of the body>``
(key from ``cases.takedown.secret_env``) and ``x-hegui-timestamp`` (Unix seconds, also in the body,
so a receiver can refuse replays). Whatever happens (sent, not configured, failed) is returned as a
:class:`TakedownOutcome` for the caller to record on the case: an unsent takedown is evidence too.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import httpx

from hegui.accounts.sms import sign
from hegui.cases.config import TakedownConfig

SIGNATURE_HEADER = "x-hegui-signature"
TIMESTAMP_HEADER = "x-hegui-timestamp"
MAX_ERROR = 300


@dataclass(frozen=True)
class TakedownOutcome:
    status: Literal["sent", "not_configured", "failed"]
    request_id: str
    http_status: int | None = None
    """The webhook's answer (None when nothing answered)."""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def takedown_body(*, case_id: str, target: str, reason: str, request_id: str, timestamp: int) -> bytes:
    return json.dumps({"case": case_id, "target": target, "reason": reason, "timestamp": timestamp,
                       "request_id": request_id}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


async def send_takedown(cfg: TakedownConfig, *, case_id: str, target: str, reason: str, request_id: str,
                        environ: Mapping[str, str] | None = None,
                        transport: httpx.AsyncBaseTransport | None = None) -> TakedownOutcome:
    """POST the takedown; never raises for the webhook's faults (they are the outcome)."""
    if cfg.webhook_url is None:
        return TakedownOutcome("not_configured", request_id, error="cases.takedown.webhook_url is not set")
    secret = (os.environ if environ is None else environ).get(cfg.secret_env, "")
    if not secret:
        # an unsigned request could not be told from a forged one: refuse to send it
        return TakedownOutcome("failed", request_id, error=f"${cfg.secret_env} is not set (the signing key)")
    timestamp = int(time.time())
    body = takedown_body(case_id=case_id, target=target, reason=reason, request_id=request_id, timestamp=timestamp)
    headers = {"content-type": "application/json", SIGNATURE_HEADER: sign(secret, body),
               TIMESTAMP_HEADER: str(timestamp)}
    try:
        async with httpx.AsyncClient(timeout=cfg.timeout, transport=transport) as client:
            resp = await client.post(str(cfg.webhook_url), content=body, headers=headers)
    except httpx.HTTPError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        return TakedownOutcome("failed", request_id, error=detail[:MAX_ERROR])
    if 200 <= resp.status_code < 300:
        return TakedownOutcome("sent", request_id, http_status=resp.status_code)
    return TakedownOutcome("failed", request_id, http_status=resp.status_code,
                           error=f"the webhook answered {resp.status_code}")
