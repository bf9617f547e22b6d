"""The identity-verifier hook: an adapter (e.g. for the national network identity service, 国家网络
身份认证) tells hegui a person's age band, and nothing else.

hegui POSTs ``{"phone": "13800138000", "token": "<what the person's app got from the service>",
"timestamp": 1767225600}`` to ``accounts.verifier.webhook_url`` (signed like the SMS webhook when
``$<accounts.verifier.secret_env>`` is set) and accepts exactly ``{"age_band": "<band>"}`` with a band
of :data:`~hegui.accounts.config.AgeBand`. An answer with any other field is refused, so a name or an
ID number can never pass through hegui on its way to the database: only the band is stored
(``account.age_band`` event with ``source: verifier``).

A 4xx answer means the verifier refused the token (403 ``identity_not_verified`` to the client); a
timeout, a 5xx or a malformed answer is a failure of the verifier (502 ``verifier_failed``).
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from hegui.accounts.config import AgeBand
from hegui.accounts.sms import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

if TYPE_CHECKING:
    from hegui.accounts.config import VerifierConfig


class VerifierFailed(Exception):
    """The verifier did not answer usably (one line; never the answer's content)."""


class VerificationRefused(Exception):
    """The verifier answered 4xx: the token does not verify."""


class VerifierAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    age_band: AgeBand


class IdentityVerifier:
    def __init__(self, url: str, *, timeout: float = 5.0, secret: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self._secret = secret.encode("utf-8") if secret else None
        self.transport = transport
        """An httpx transport (tests pass ``httpx.MockTransport``); None: the network."""

    @classmethod
    def from_config(cls, cfg: VerifierConfig, environ: dict[str, str] | None = None) -> IdentityVerifier | None:
        """The configured verifier, or None when ``accounts.verifier.webhook_url`` is unset."""
        if not cfg.webhook_url:
            return None
        env = os.environ if environ is None else environ
        return cls(cfg.webhook_url, timeout=cfg.timeout, secret=env.get(cfg.secret_env) or None)

    async def age_band(self, phone: str, token: str) -> str:
        """The age band the verifier vouches for. Raises :class:`VerificationRefused` or
        :class:`VerifierFailed`."""
        now = int(time.time())
        body = json.dumps({"phone": phone, "token": token, "timestamp": now}, ensure_ascii=False,
                          separators=(",", ":")).encode("utf-8")
        headers = {"content-type": "application/json", TIMESTAMP_HEADER: str(now)}
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        try:
            async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport,
                                         follow_redirects=False) as client:
                resp = await client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise VerifierFailed(f"the identity verifier did not answer ({exc.__class__.__name__})") from None
        if 400 <= resp.status_code < 500:
            raise VerificationRefused(f"the identity verifier refused the token (HTTP {resp.status_code})")
        if not 200 <= resp.status_code < 300:
            raise VerifierFailed(f"the identity verifier answered HTTP {resp.status_code}")
        try:
            answer = VerifierAnswer.model_validate(json.loads(resp.content))
        except (ValueError, ValidationError):
            raise VerifierFailed('the identity verifier\'s answer is not {"age_band": <band>} '
                                 "(and nothing else)") from None
        return answer.age_band
