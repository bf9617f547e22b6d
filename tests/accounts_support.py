"""Helpers of the account API tests: a gateway on a real port with a settable clock and a capturing
SMS sender, and a small HTTP client for the ``/v1/hegui`` routes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai

from gateway_support import ADMIN_KEY, ledger_for, make_moderator, serve, write_config
from hegui.accounts.api import account_api
from hegui.accounts.store import AccountStore
from hegui.gateway.app import create_app

MODEL = "hegui-demo"
SHANGHAI = timedelta(hours=8)
SERVICE_TEXT = "# 服务协议\n测试用服务协议。"
PRIVACY_TEXT = "# 隐私政策\n生成内容添加【AI生成】显式标识和 AIGC 隐式标识。"


class Clock:
    """A settable UTC clock shared by the gate, the OTP service and the test (starts at 10:00 in
    Shanghai today, outside the minors' nightly pause)."""

    def __init__(self) -> None:
        today = datetime.now(UTC).date()
        self.now = datetime(today.year, today.month, today.day, 10, 0, tzinfo=UTC) - SHANGHAI

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


class Capture:
    """An SMS sender that keeps what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    async def send(self, phone: str, code: str, purpose: str, ttl_seconds: int) -> None:
        self.sent.append((phone, code, purpose))

    def code(self, phone: str | None = None) -> str:
        for number, code, _ in reversed(self.sent):
            if phone is None or number == phone:
                return code
        raise AssertionError(f"no code was sent to {phone}")


class Env:
    def __init__(self, url: str, app: Any, ledger: Any, clock: Clock, capture: Capture | None) -> None:
        self.url = url
        self.app = app
        self.ledger = ledger
        self.clock = clock
        self.capture = capture
        self.store = AccountStore(ledger)
        self.http = httpx.Client(base_url=url, timeout=30)
        self._clients: dict[str, openai.OpenAI] = {}

    @property
    def gw(self) -> Any:
        return self.app.state.gateway

    @property
    def api(self) -> Any:
        return account_api(self.gw)

    def post(self, path: str, body: dict[str, Any], key: str | None = None, **headers: str) -> httpx.Response:
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return self.http.post("/v1/hegui" + path, json=body, headers=headers)

    def get(self, path: str, key: str | None = None, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return self.http.get("/v1/hegui" + path, params=params, headers=headers)

    def send_code(self, phone: str, purpose: str = "register") -> str:
        r = self.post("/otp", {"phone": phone, "purpose": purpose})
        assert r.status_code == 202, r.text
        assert self.capture is not None
        return self.capture.code(phone)

    def register(self, phone: str, **extra: Any) -> dict[str, Any]:
        code = self.send_code(phone)
        r = self.post("/register", {"phone": phone, "code": code, **extra})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def accept_all(self, key: str, **extra: Any) -> None:
        for kind, version in self.required(key, **extra).items():
            r = self.post("/agreements/accept", {"kind": kind, "version": version, **extra}, key)
            assert r.status_code == 200, r.text

    def required(self, key: str, user: str | None = None) -> dict[str, str]:
        # the user goes in the header: a query string lands in access logs (the user may be a phone number)
        headers = {"Authorization": f"Bearer {key}", **({"x-hegui-user": user} if user else {})}
        r = self.http.get("/v1/hegui/me", headers=headers)
        assert r.status_code == 200, r.text
        return dict(r.json()["required_agreements"])

    def client(self, key: str) -> openai.OpenAI:
        if key not in self._clients:
            self._clients[key] = openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0)
        return self._clients[key]

    def chat(self, key: str, text: str = "你好", **kw: Any) -> Any:
        return self.client(key).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": text}], **kw)

    def close(self) -> None:
        self.http.close()
        for c in self._clients.values():
            c.close()


def base_config(accounts: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "gateway": {"admin_key": ADMIN_KEY},
        "labeling": {"explicit": False},
        "upstreams": [{"name": "demo", "base_url": "demo", "models": ["*"]}],
        # every test request comes from 127.0.0.1: the per-address limit is tested on its own
        "accounts": {"sync_seconds": 0.2, "otp": {"sends_per_ip_per_hour": 1000}, **(accounts or {})},
    }


@contextmanager
def account_env(backend: str, folder: Path, postgres_url: str | None, *, accounts: dict[str, Any] | None = None,
                words: dict[str, str] | None = None, capture: bool = True, publish: bool = True,
                moderator: Any = None) -> Iterator[Env]:
    """A gateway with the account API on ``backend``; agreements ``v1`` published unless ``publish``
    is false; codes captured unless ``capture`` is false (then the log sender writes them)."""
    cfg = write_config(folder, base_config(accounts))
    clock = Clock()
    with ledger_for(backend, folder, postgres_url) as ledger:
        store = AccountStore(ledger)
        if publish:
            store.publish_agreement("service", "v1", "2025-01-01", SERVICE_TEXT, actor="test")
            store.publish_agreement("privacy", "v1", "2025-01-01", PRIVACY_TEXT, actor="test")
        app = create_app(cfg, moderator=moderator or make_moderator(words or {"赌博": "A1h"}), ledger=ledger, clock=clock)
        cap = Capture() if capture else None
        if cap is not None:
            account_api(app.state.gateway).otp.sender = cap
        with serve(app) as url:
            env = Env(url, app, ledger, clock, cap)
            try:
                yield env
            finally:
                env.close()
