"""The account gate in the request path: who is asking, and may they be served now?

For each completion request, after the API key and before moderation (:meth:`AccountGate.admit`):

1. **Who**: the key's account, or, when an app names its end user (OpenAI's ``user`` field or the
   ``x-hegui-user`` header), the person the app registered under that name. An app key marked
   ``public`` refuses a user hegui does not know as OTP-verified (``accounts.app_users_must_be_verified``).
2. **Standing**: ``terminated`` and ``suspended`` (until its end) are refused with 403, saying until
   when and how to appeal; ``warned`` is served with a warning notice.
3. **Agreements**: a person who has not accepted the current published version of the service
   agreement or privacy policy gets 403 ``agreement_required``, saying where to accept.
4. **Minor mode**: the ``minor`` scene; no service in the nightly pause; a daily limit of usage
   minutes by age band; a rest reminder after continuous use.
5. **Rate limits**: requests and tokens a minute, per key and per account, set per standing (429
   with ``Retry-After``).

The gate never reads the database per request: profiles are cached per worker and dropped when the
ledger's ``accounts_version`` changes (polled every ``accounts.sync_seconds``), so a suspension bites
on every replica within that time. Counters go through :mod:`hegui.accounts.state`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from hegui.accounts.config import AccountsConfig
from hegui.accounts.state import DatabaseState, RedisState, SharedState
from hegui.accounts.store import AccountStore, Profile
from hegui.gateway.errors import GatewayError

if TYPE_CHECKING:
    from hegui.gateway.auth import Principal
    from hegui.ledger.store import Ledger

log = logging.getLogger("hegui.accounts")

USER_HEADER = "x-hegui-user"
AGREEMENTS_PATH = "/v1/hegui/agreements"


def account_error(status: int, code: str, message: str, *, param: str | None = None,
                  headers: dict[str, str] | None = None, **extra: Any) -> GatewayError:
    return GatewayError(status, message, type="account_error", code=code, param=param, headers=headers,
                        extra=extra or None)


@dataclass
class Admission:
    """A request the gate let through, and what the response should carry."""

    account_id: str | None
    """The account decisions are recorded under: the person when an app named a known user."""
    key_id: str
    profile: Profile
    standing: str
    scene: str | None = None
    """A scene the account imposes (minor mode); None leaves the gateway's choice."""
    notices: list[dict[str, str]] = field(default_factory=list)
    """For the ``hegui.notices`` field of the response: warnings, rest reminders."""


class AccountGate:
    def __init__(self, cfg: AccountsConfig, store: AccountStore, state: SharedState,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.state = state
        self.clock = clock or (lambda: datetime.now(UTC))
        self.zone = ZoneInfo(cfg.timezone)
        self._profiles: dict[str, Profile] = {}
        self._app_users: dict[tuple[str, str], str | None] = {}
        self._public_keys: dict[str, bool] = {}
        self._agreements: dict[str, list[tuple[date, str]]] | None = None
        self._version: int | None = None
        self._reminded: dict[str, int] = {}
        self._poller: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, cfg: AccountsConfig, ledger: Ledger, clock: Callable[[], datetime] | None = None
                    ) -> AccountGate:
        state: SharedState = (RedisState(cfg.redis_url) if cfg.redis_url
                              else DatabaseState(ledger, cfg.sync_seconds, clock))
        return cls(cfg, AccountStore(ledger), state, clock)

    # -- the cache ---------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._poller is None:
            self._poller = asyncio.ensure_future(self._poll())

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(BaseException):
                await self._poller
        await self.state.aclose()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.sync_seconds)
            with contextlib.suppress(Exception):
                await self.refresh()

    async def refresh(self) -> None:
        """Drop cached profiles if any account changed anywhere since the last look."""
        version = await asyncio.to_thread(self.store.version)
        if version != self._version:
            self.forget()
            self._version = version

    def forget(self, account_id: str | None = None) -> None:
        """Drop cached state (of one account, or all); the next request reads it again."""
        if account_id is not None:
            self._profiles.pop(account_id, None)
            return
        self._profiles.clear()
        self._app_users.clear()
        self._public_keys.clear()
        self._agreements = None

    async def profile(self, account_id: str) -> Profile:
        p = self._profiles.get(account_id)
        if p is None:
            p = await asyncio.to_thread(self.store.profile, account_id)
            self._profiles[account_id] = p
        return p

    async def required_agreements(self, today: date) -> dict[str, str]:
        """The version of each agreement kind in force today (the latest published and effective)."""
        if self._agreements is None:
            published = await asyncio.to_thread(self.store.published_agreements)
            table: dict[str, list[tuple[date, str]]] = {}
            for a in published:
                table.setdefault(a["kind"], []).append((date.fromisoformat(a["effective"]), a["version"]))
            self._agreements = table
        out = {}
        for kind, versions in self._agreements.items():
            current = [v for v in versions if v[0] <= today]
            if current:
                out[kind] = max(current)[1]
        return out

    # -- time ----------------------------------------------------------------------------------------

    def local_now(self) -> datetime:
        return self.clock().astimezone(self.zone)

    def in_curfew(self, local: datetime) -> bool:
        start, end = self.cfg.minors.curfew_start, self.cfg.minors.curfew_end
        t = local.time()
        return (start <= t or t < end) if start > end else (start <= t < end)

    def daily_limit(self, profile: Profile) -> int:
        m = self.cfg.minors
        return m.daily_minutes_16_to_18 if profile.age_band == "16-18" else m.daily_minutes_under_16

    # -- admission -----------------------------------------------------------------------------------

    async def who(self, principal: Principal, user: str | None, generation: bool = True) -> str | None:
        """The account a request is on behalf of."""
        account = principal.account_id
        if account is None or not user:
            if generation and principal.public and self.cfg.app_users_must_be_verified and account is not None:
                raise account_error(403, "user_required", "this app key serves verified users only: name the "
                                    f"end user in 'user' or the {USER_HEADER} header", param="user")
            return account
        cache_key = (account, user)
        if cache_key not in self._app_users:
            self._app_users[cache_key] = await asyncio.to_thread(self.store.app_user, account, user)
        person = self._app_users[cache_key]
        if person is None and generation and principal.public and self.cfg.app_users_must_be_verified:
            raise account_error(403, "user_unverified", "this app key serves verified users only, and this "
                                "user has not been registered with a verified phone (POST /v1/hegui/apps/users)",
                                param="user")
        return person or account

    async def admit(self, principal: Principal, user: str | None, *, generation: bool = True) -> Admission:
        """Let the request through (with notices), or raise the 403/429 that says why not.
        ``generation``: a completion or image request; other routes check standing and rates only."""
        now = self.clock()
        account = await self.who(principal, user, generation)
        profile = await self.profile(account) if account is not None else Profile("")
        standing = profile.standing_at(now)
        adm = Admission(account_id=account, key_id=principal.key_id, profile=profile, standing=standing)
        if principal.admin and account is None:
            return adm
        self.check_standing(profile, standing, now)
        if generation and profile.kind == "person":
            await self.check_agreements(profile)
        if generation and profile.minor:
            await self.check_minor(adm)
        await self.check_rates(adm, now)
        if standing == "warned":
            adm.notices.append({"type": "warning", "message": "你的账号因多次违规已被警告，继续违规将被限制或暂停服务。"
                                + (f"原因：{profile.standing_reason}" if profile.standing_reason else "")})
        return adm

    def check_standing(self, profile: Profile, standing: str, now: datetime) -> None:
        appeal = self.cfg.ladder.appeal_contact
        if standing == "terminated":
            raise account_error(403, "account_terminated", f"账号已被终止服务。如有异议，可通过 {appeal} 申诉。"
                                f" (account terminated; appeal via {appeal})", appeal=appeal)
        if standing == "suspended":
            until = profile.standing_until.astimezone(self.zone) if profile.standing_until else None
            when = until.strftime("%Y-%m-%d %H:%M") if until else "另行通知"
            raise account_error(403, "account_suspended", f"账号已被暂停服务至 {when}。如有异议，可通过 {appeal} 申诉。"
                                f" (account suspended until {until.isoformat() if until else 'further notice'}; "
                                f"appeal via {appeal})", until=until.isoformat() if until else None, appeal=appeal)

    async def check_agreements(self, profile: Profile) -> None:
        required = await self.required_agreements(self.local_now().date())
        missing = {k: v for k, v in required.items() if profile.accepted.get(k) != v}
        if missing:
            names = {"service": "服务协议", "privacy": "隐私政策"}
            listed = "、".join(f"{names.get(k, k)}（{v}）" for k, v in sorted(missing.items()))
            raise account_error(403, "agreement_required", f"请先阅读并同意新版{listed}：GET {AGREEMENTS_PATH}，"
                                f"然后 POST {AGREEMENTS_PATH}/accept。 (accept the current agreements first)",
                                required=missing, accept_at=f"{AGREEMENTS_PATH}/accept")

    async def check_minor(self, adm: Admission) -> None:
        m = self.cfg.minors
        adm.scene = m.scene
        local = self.local_now()
        if self.in_curfew(local):
            resume = local.replace(hour=m.curfew_end.hour, minute=m.curfew_end.minute, second=0, microsecond=0)
            if resume <= local:
                resume += timedelta(days=1)
            raise account_error(403, "minor_curfew", f"未成年人模式：{m.curfew_start:%H:%M}–{m.curfew_end:%H:%M} "
                                f"暂停服务，{resume:%H:%M} 后恢复。 (minor mode: no service until "
                                f"{resume.isoformat()})", resumes_at=resume.isoformat())
        assert adm.account_id is not None
        day, minute = local.date().isoformat(), local.hour * 60 + local.minute
        used = await self.state.minutes(adm.account_id, day)
        limit = self.daily_limit(adm.profile)
        if minute not in used and len(used) >= limit:
            tomorrow = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
            raise account_error(403, "minor_time_limit", f"未成年人模式：今日使用时长已达 {limit} 分钟上限，"
                                f"明天 00:00 后恢复。 (minor mode: daily limit of {limit} minutes reached; service "
                                f"resumes at {tomorrow.isoformat()})", limit_minutes=limit,
                                resumes_at=tomorrow.isoformat())
        await self.state.mark_minutes(adm.account_id, day, [minute])
        run = continuous_run(used | {minute}, minute, m.session_gap_minutes)
        block = run // m.rest_reminder_minutes
        if block >= 1 and self._reminded.get(adm.account_id) != block:
            self._reminded[adm.account_id] = block
            adm.notices.append({"type": "rest_reminder",
                                "message": f"你已连续使用约 {run} 分钟，请休息一下，注意保护眼睛。"})

    async def check_rates(self, adm: Admission, now: datetime) -> None:
        limit = self.cfg.rate_limits.get(adm.standing)
        if limit is None or (limit.requests_per_minute is None and limit.tokens_per_minute is None):
            return
        minute = int(now.timestamp()) // 60
        retry = str(max(1, 60 - int(now.timestamp()) % 60))
        subjects = [f"key:{adm.key_id}"] + ([f"acct:{adm.account_id}"] if adm.account_id else [])
        # one round trip: count this request, read this minute's tokens
        adds = [(f"rpm:{s}:{minute}", 1 if limit.requests_per_minute is not None else 0) for s in subjects]
        adds += [(f"tpm:{s}:{minute}", 0) for s in subjects] if limit.tokens_per_minute is not None else []
        totals = await self.state.add_many(adds, 60)
        requests, tokens = totals[:len(subjects)], totals[len(subjects):]
        if limit.requests_per_minute is not None and max(requests) > limit.requests_per_minute:
            raise account_error(429, "rate_limited", f"每分钟请求数已达上限（{limit.requests_per_minute}），请 "
                                f"{retry} 秒后再试。 (requests per minute exceeded)", retry_after=int(retry),
                                headers={"retry-after": retry})
        if limit.tokens_per_minute is not None and max(tokens) >= limit.tokens_per_minute:
            raise account_error(429, "rate_limited", f"每分钟令牌数已达上限（{limit.tokens_per_minute}），请 "
                                f"{retry} 秒后再试。 (tokens per minute exceeded)", retry_after=int(retry),
                                headers={"retry-after": retry})

    async def add_tokens(self, adm: Admission, tokens: int, at: datetime) -> None:
        """Count a response's tokens (ended at ``at``) against the per-minute limits."""
        if tokens <= 0 or self.cfg.rate_limits.get(adm.standing) is None:
            return
        minute = int(at.timestamp()) // 60
        subjects = [f"key:{adm.key_id}"] + ([f"acct:{adm.account_id}"] if adm.account_id else [])
        await self.state.add_many([(f"tpm:{s}:{minute}", tokens) for s in subjects], 60)

    async def finish(self, adm: Admission, ended: datetime) -> None:
        """The response ended at ``ended``: a minor's usage also counts that minute (long streams)."""
        if adm.profile.minor and adm.account_id is not None:
            local = ended.astimezone(self.zone)
            await self.state.mark_minutes(adm.account_id, local.date().isoformat(), [local.hour * 60 + local.minute])


def continuous_run(minutes: frozenset[int] | set[int], upto: int, gap: int) -> int:
    """Length in minutes of the session ending at ``upto``: back from it through active minutes,
    bridging pauses shorter than ``gap`` minutes."""
    start = upto
    probe = upto
    while True:
        earlier = [m for m in range(probe - 1, probe - gap - 1, -1) if m in minutes]
        if not earlier:
            break
        probe = earlier[0]
        start = probe
    return upto - start + 1


def estimate_tokens(text: str) -> int:
    """Tokens of a text when the upstream reports none: about one per 1.5 characters of Chinese."""
    return math.ceil(len(text) / 1.5)
