"""The public account API: one-time codes, registration and login, agreements, consent, minor mode,
appeals (``/v1/hegui/...``). Routes are mounted by :func:`hegui.gateway.app.create_app`.

Two ways a person arrives, both verified by an SMS code to their phone:

1. **Directly**: ``POST /v1/hegui/otp`` then ``POST /v1/hegui/register`` gives an account and an API key.
2. **Through a provider's app**: the app (with its own key) sends the code and calls
   ``POST /v1/hegui/apps/users`` with its own name for the user (OpenAI's ``user`` field); then the
   app's completion requests name that ``user`` and hegui enforces on the person behind it.

Routes that act on an account (``/me/...``, agreement acceptance, appeals) act on the key's account,
or, for an app's key, on the person the app registered under ``user`` (a body field, the ``user``
query parameter of ``GET /me``, or the ``x-hegui-user`` header).

No answer carries a raw phone number (only ``138****8000``); errors are one line in OpenAI's shape.
Every change is one ledger transaction with its hash-chained event, and drops this worker's cached
profile at once (other workers follow within ``accounts.sync_seconds``).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hegui.accounts.config import MINOR_BANDS, AgeBand
from hegui.accounts.gate import AGREEMENTS_PATH, USER_HEADER, account_error
from hegui.accounts.models import AccountProfile
from hegui.accounts.otp import OTPService, Purpose, normalize_phone
from hegui.accounts.sms import sender_from_config
from hegui.accounts.store import AccountNotFound, AccountStore, Profile, mask_phone
from hegui.accounts.verifier import IdentityVerifier, VerificationRefused, VerifierFailed
from hegui.errors import UserError
from hegui.gateway.errors import service_unavailable
from hegui.gateway.openapi import Operation
from hegui.gateway.request_models import validate_body
from hegui.ledger.errors import LedgerError
from hegui.ledger.events import append_event, events
from hegui.ledger.models import Base, utcnow

if TYPE_CHECKING:
    from hegui.accounts.gate import AccountGate
    from hegui.gateway.auth import Principal
    from hegui.gateway.routes import Gateway

log = logging.getLogger("hegui.accounts")

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

PREFIX = "/v1/hegui"
ACCEPT_PATH = f"{AGREEMENTS_PATH}/accept"
PIN_TRIES_PER_HOUR = 5
"""Guardian-PIN tries (right or wrong) per account and clock hour; then 429."""

_profiles = Base.metadata.tables[AccountProfile.__tablename__]

# -- request bodies ------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


Phone = Annotated[str, Field(min_length=1, max_length=32,
                             description="a mainland China mobile number: `13800138000`, `+86 138 0013 8000`")]
Code = Annotated[str, Field(pattern=r"^[0-9]{4,10}$", description="the one-time code from the SMS")]
User = Annotated[str, Field(min_length=1, max_length=256, pattern=r"\S",
                            description="the app's own name for its end user (as in OpenAI's `user` field)")]
Pin = Annotated[str, Field(pattern=r"^[0-9]{4,8}$", description="a guardian PIN: 4 to 8 digits")]
IdToken = Annotated[str, Field(min_length=1, max_length=4096,
                               description="a token from the identity service, passed to the identity verifier")]
Version = Annotated[str, Field(min_length=1, max_length=64)]


class OTPRequest(_Body):
    """``POST /v1/hegui/otp``."""

    phone: Phone
    purpose: Purpose = Field(description="`register`, `login`, `app_user` (an app registering its user) or "
                                         "`pi_request` (a personal-information request)")


class RegisterRequest(_Body):
    """``POST /v1/hegui/register``."""

    phone: Phone
    code: Code
    age_band: AgeBand | None = Field(None, description="declared age band (a minor band turns minor mode on)")
    id_token: IdToken | None = None
    guardian_pin: Pin | None = Field(None, description="set by a guardian registering a minor")


class LoginRequest(_Body):
    """``POST /v1/hegui/login``."""

    phone: Phone
    code: Code
    id_token: IdToken | None = None


class AppUserRequest(_Body):
    """``POST /v1/hegui/apps/users``: with the app's key; the code was sent with purpose ``app_user``."""

    user: User
    phone: Phone
    code: Code
    age_band: AgeBand | None = None
    id_token: IdToken | None = None
    guardian_pin: Pin | None = None


class AcceptRequest(_Body):
    """``POST /v1/hegui/agreements/accept``."""

    kind: Literal["service", "privacy"]
    version: Version
    user: User | None = None


class OptOutRequest(_Body):
    """``POST /v1/hegui/me/training-opt-out``."""

    opt_out: bool = Field(description="true: my content is not used to train models; false: it may be")
    user: User | None = None


class AgeBandRequest(_Body):
    """``POST /v1/hegui/me/age-band``."""

    age_band: AgeBand
    user: User | None = None


class GuardianPinRequest(_Body):
    """``POST /v1/hegui/me/guardian-pin``: sets the PIN and turns minor mode on."""

    pin: Pin
    current_pin: Pin | None = Field(None, description="needed to change a PIN already set")
    user: User | None = None


class MinorExitRequest(_Body):
    """``POST /v1/hegui/me/minor-mode/exit``."""

    pin: Pin
    age_band: AgeBand | None = Field(None, description="needed when the declared band is a minor's: the new band")
    user: User | None = None


class AppealRequest(_Body):
    """``POST /v1/hegui/appeals``."""

    reason: str = Field(min_length=1, max_length=2000, pattern=r"\S")
    user: User | None = None


# -- responses (for the OpenAPI document) -------------------------------------------------------------


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow")


class OTPSent(_Doc):
    sent: Literal[True]
    phone: str = Field(description="masked: `138****8000`")
    ttl_seconds: int
    resend_after_seconds: int


class Registered(_Doc):
    account_id: str
    key: str = Field(description="a new API key, shown this once")
    key_id: str
    phone: str
    created: bool
    age_band: str | None
    minor_mode: bool
    required_agreements: dict[str, str] = Field(description="kind → version still to accept")
    accept_at: str


class LoggedIn(_Doc):
    account_id: str
    key: str
    key_id: str
    phone: str | None
    required_agreements: dict[str, str]
    accept_at: str


class AppUserRegistered(_Doc):
    user: str
    account_id: str
    created: bool
    phone: str
    required_agreements: dict[str, str]


class AccountView(_Doc):
    account_id: str
    kind: str
    phone: str | None
    verified: bool
    age_band: str | None
    minor_mode: bool
    training_opt_out: bool
    standing: str
    standing_until: str | None
    standing_reason: str
    accepted: dict[str, str]
    app_id: str | None


class Usage(_Doc):
    day: str
    minutes_used: int
    limit_minutes: int
    curfew: str


class Me(_Doc):
    account: AccountView
    standing: str = Field(description="the standing in force now (a suspension that ran out reads `restricted`)")
    has_guardian_pin: bool
    required_agreements: dict[str, str]
    usage_today: Usage | None = Field(description="minors only")
    links: dict[str, str]


class AgreementText(_Doc):
    kind: str
    version: str
    effective: str
    sha256: str
    text: str
    published_at: str


class Agreements(_Doc):
    agreements: list[AgreementText] = Field(description="the versions in force today, one per kind")
    upcoming: list[AgreementText] = Field(description="published versions that take effect later")
    accept_at: str


class Accepted(_Doc):
    kind: str
    version: str
    event_id: str
    accepted: dict[str, str]
    required_agreements: dict[str, str]


class OptOutSet(_Doc):
    training_opt_out: bool
    event_id: str


class AgeBandSet(_Doc):
    age_band: str
    minor_mode: bool


class PinSet(_Doc):
    minor_mode: Literal[True]
    has_guardian_pin: Literal[True]


class MinorModeLeft(_Doc):
    minor_mode: Literal[False]
    age_band: str | None


class AppealFiled(_Doc):
    appeal_id: str
    status: Literal["open"]


_USER_QUERY = {"name": "user", "in": "query", "required": False,
               "schema": {"type": "string", "minLength": 1, "maxLength": 256},
               "description": "an app's key: the end user to act for"}
_USER_HEADER = {"name": USER_HEADER, "in": "header", "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 256},
                "description": "an app's key: the end user to act for (a `user` field in the body wins)"}
_COMMON = (404, 503)
"""404: the account API is off (``accounts.enabled: false``) or the named ``user`` is unknown."""

OPERATIONS: tuple[Operation, ...] = (
    Operation(f"{PREFIX}/otp", "post", "Send a one-time code by SMS", "accounts", OTPSent, OTPRequest,
              auth="none", status=202, errors=(400, 413, 429, 502, *_COMMON)),
    Operation(f"{PREFIX}/register", "post", "Register by phone and one-time code; returns an API key", "accounts",
              Registered, RegisterRequest, auth="none", status=201, errors=(400, 403, 409, 413, 429, 502, *_COMMON)),
    Operation(f"{PREFIX}/login", "post", "Log in by phone and one-time code; returns a new API key", "accounts",
              LoggedIn, LoginRequest, auth="none", errors=(400, 403, 413, 429, 502, *_COMMON)),
    Operation(f"{PREFIX}/apps/users", "post", "An app registers its end user (phone verified by a one-time code)",
              "accounts", AppUserRegistered, AppUserRequest, status=201,
              errors=(400, 403, 413, 429, 502, *_COMMON), params=(_USER_HEADER,)),
    Operation(f"{PREFIX}/me", "get", "The account: standing, agreements to accept, minor-mode usage today",
              "accounts", Me, errors=(400, 403, *_COMMON), params=(_USER_QUERY, _USER_HEADER)),
    Operation(AGREEMENTS_PATH, "get", "The service agreement and privacy policy in force, with their text",
              "accounts", Agreements, auth="none", errors=_COMMON),
    Operation(ACCEPT_PATH, "post", "Accept the current version of an agreement", "accounts", Accepted,
              AcceptRequest, errors=(400, 403, 413, *_COMMON), params=(_USER_HEADER,)),
    Operation(f"{PREFIX}/me/training-opt-out", "post", "Opt out of (or back into) training on my content",
              "accounts", OptOutSet, OptOutRequest, errors=(400, 403, 413, *_COMMON), params=(_USER_HEADER,)),
    Operation(f"{PREFIX}/me/age-band", "post", "Declare the account's age band", "accounts", AgeBandSet,
              AgeBandRequest, errors=(400, 403, 413, *_COMMON), params=(_USER_HEADER,)),
    Operation(f"{PREFIX}/me/guardian-pin", "post", "Set the guardian PIN (turns minor mode on)", "accounts",
              PinSet, GuardianPinRequest, errors=(400, 403, 413, 429, *_COMMON), params=(_USER_HEADER,)),
    Operation(f"{PREFIX}/me/minor-mode/exit", "post", "Leave minor mode with the guardian PIN", "accounts",
              MinorModeLeft, MinorExitRequest, errors=(400, 403, 413, 429, *_COMMON), params=(_USER_HEADER,)),
    Operation(f"{PREFIX}/appeals", "post", "Appeal against an enforcement action", "accounts", AppealFiled,
              AppealRequest, status=201, errors=(400, 403, 413, *_COMMON), params=(_USER_HEADER,)),
)

# -- helpers ---------------------------------------------------------------------------------------

_hasher = PasswordHasher()


def hash_pin(pin: str) -> str:
    """argon2id: a PIN has few digits and lives for years, so it gets a slow, salted hash."""
    return _hasher.hash(pin)


def pin_matches(stored: str, pin: str) -> bool:
    try:
        return _hasher.verify(stored, pin)
    except (VerificationError, InvalidHashError):
        return False


def client_ip(request: Request) -> str:
    """The client's address as the server sees it (behind a proxy, run uvicorn with
    ``--forwarded-allow-ips`` so ``X-Forwarded-For`` is honoured)."""
    return request.client.host if request.client else "unknown"


class AccountAPI:
    """The handlers, with what they share: the store, the gate, the OTP service, the verifier."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        cfg = gw.cfg.accounts
        self.cfg = cfg
        self.store = AccountStore(gw.ledger)
        gate = gw.accounts
        self.otp = OTPService(self.store, cfg.otp, sender_from_config(cfg.sms, gw.cfg.source),
                              clock=gate.clock if gate is not None else None)
        """Tests replace ``otp.sender`` (and ``otp.clock``)."""
        self.verifier: IdentityVerifier | None = IdentityVerifier.from_config(cfg.verifier)
        if cfg.sms.sender == "log" and gate is not None:
            log.warning("accounts.sms.sender is 'log': one-time codes are written to the hegui.sms log "
                     "(development only)")

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def gate(self) -> AccountGate:
        gate = self.gw.accounts
        if gate is None:
            raise account_error(404, "accounts_disabled", "the account API is off (accounts.enabled: false)")
        return gate

    def require_enabled(self) -> None:
        """404 before anything else when the account API is off."""
        _ = self.gate

    def now(self) -> datetime:
        return self.gate.clock()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A store call in a thread, its failures as one-line HTTP errors."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except AccountNotFound as exc:
            raise account_error(404, "account_not_found", str(exc)) from None
        except UserError as exc:
            raise account_error(400, "invalid_request", str(exc)) from None
        except LedgerError as exc:
            log.error("account change failed: %s", exc)
            raise service_unavailable("the account database is unavailable", "ledger_unavailable") from None

    async def body(self, request: Request, model: type[M]) -> M:
        self.require_enabled()
        return validate_body(model, await self.gw.read_json(request))

    async def principal(self, request: Request) -> Principal:
        self.require_enabled()
        principal = await self.gw.auth.authenticate(request)
        if principal.account_id is None:
            raise account_error(403, "no_account", "this key belongs to no account (the admin key): use an "
                                "account's API key")
        return principal

    async def subject(self, request: Request, principal: Principal, user: str | None) -> str:
        """The account a route acts on: the key's, or the person an app registered as ``user``."""
        assert principal.account_id is not None
        if user is None:
            header = request.headers.get(USER_HEADER)
            if header is not None:
                if not header.strip() or len(header) > 256:
                    raise account_error(400, "invalid_user", f"{USER_HEADER}: 1 to 256 characters", param=USER_HEADER)
                user = header
        if user is None:
            return principal.account_id
        person = await self.run(self.store.app_user, principal.account_id, user)
        if person is None:
            raise account_error(404, "user_not_found", "this key's account has not registered a user by that "
                                "name (POST /v1/hegui/apps/users)", param="user")
        return person

    async def profile(self, account_id: str) -> Profile:
        return await self.run(self.store.profile, account_id)

    async def person(self, account_id: str) -> Profile:
        p = await self.profile(account_id)
        if p.kind != "person":
            raise account_error(403, "not_a_person", "age bands and minor mode belong to people registered by "
                                "phone (POST /v1/hegui/register or /v1/hegui/apps/users); this account is "
                                f"a {p.kind} account")
        return p

    def changed(self, account_id: str | None = None) -> None:
        """Drop this worker's cached state so the change bites at once."""
        gate = self.gw.accounts
        if gate is not None:
            gate.forget(account_id)

    async def missing_agreements(self, profile: Profile) -> dict[str, str]:
        current = await self.gate.required_agreements(self.gate.local_now().date())
        return {k: v for k, v in sorted(current.items()) if profile.accepted.get(k) != v}

    async def checked_code(self, phone: str, purpose: str, code: str) -> str:
        """The normalised number once ``code`` checks; else 400 (the code counts a try)."""
        try:
            number = normalize_phone(phone)
        except ValueError as exc:
            raise account_error(400, "invalid_phone", f"phone: {exc}", param="phone") from None
        result = await self.otp.check(number, purpose, code)
        if not result.ok:
            more = (f"; {result.attempts_left} more tr{'y' if result.attempts_left == 1 else 'ies'} allowed"
                    if result.attempts_left else "; request a new code: POST /v1/hegui/otp")
            raise account_error(400, "otp_invalid", f"code: wrong, expired or already used{more}", param="code",
                                attempts_left=result.attempts_left)
        return number

    async def verified_band(self, number: str, token: str | None) -> str | None:
        if token is None:
            return None
        if self.verifier is None:
            raise account_error(400, "verifier_not_configured", "id_token: no identity verifier is configured "
                                "(accounts.verifier.webhook_url)", param="id_token")
        try:
            return await self.verifier.age_band(number, token)
        except VerificationRefused as exc:
            raise account_error(403, "identity_not_verified", str(exc), param="id_token") from None
        except VerifierFailed as exc:
            log.error("identity verifier failed: %s", exc)
            raise account_error(502, "verifier_failed", str(exc)) from None

    def apply_verified_band(self, account_id: str, band: str, actor: str) -> None:
        """Store the verifier's band (and nothing else it knows). A verified adult leaves a minor mode
        that came from a declared band, unless a guardian set a PIN for it."""
        def change(conn: Connection) -> None:
            r = conn.execute(sa.select(_profiles.c.minor_mode, _profiles.c.guardian_pin_hash)
                             .where(_profiles.c.account_id == account_id)).one()
            minor = band in MINOR_BANDS or (bool(r.minor_mode) and r.guardian_pin_hash is not None)
            conn.execute(sa.update(_profiles).where(_profiles.c.account_id == account_id)
                         .values(age_band=band, minor_mode=minor, updated_at=utcnow()))
            append_event(conn, "account.age_band", account_id, actor, {"age_band": band, "source": "verifier"})
            if r.minor_mode and not minor:
                append_event(conn, "minor.mode_off", account_id, actor, {"reason": "identity verifier: adult"})

        self.store.write(change)

    def band_source(self, account_id: str) -> str | None:
        """Where the current age band came from (``declared`` or ``verifier``); None if never changed
        after registration (declared then)."""
        found = events(self.store.ledger, account_id=account_id, kind_prefix="account.age_band", limit=1)
        return str(found[-1].data.get("source")) if found else None

    async def check_pin(self, account_id: str, pin: str) -> None:
        stored = await self.run(self.store.guardian_pin_hash, account_id)
        if stored is None:
            raise account_error(403, "guardian_pin_missing", "no guardian PIN is set for this account: a minor "
                                "without a guardian PIN cannot leave minor mode (appeal: POST /v1/hegui/appeals)")
        tries = await self.gate.state.add(f"pin:{account_id}", 1, 3600)
        if tries > PIN_TRIES_PER_HOUR:
            now = self.now()
            retry = max(1, 3600 - int(now.timestamp()) % 3600)
            raise account_error(429, "guardian_pin_locked", f"too many guardian-PIN tries (at most "
                                f"{PIN_TRIES_PER_HOUR} an hour); try again in {retry} s", retry_after=retry,
                                headers={"retry-after": str(retry)})
        if not await asyncio.to_thread(pin_matches, stored, pin):
            left = PIN_TRIES_PER_HOUR - tries
            raise account_error(403, "guardian_pin_wrong", f"wrong guardian PIN ({left} more tries this hour)",
                                param="pin", tries_left=left)

    async def set_pin(self, account_id: str, pin: str, current: str | None, actor: str) -> None:
        """The PIN rules: a PIN already set changes only with it; minor mode that is on without a PIN
        (a declared or verified minor) cannot get one afterwards, or the minor could set it and leave."""
        profile = await self.profile(account_id)
        stored = await self.run(self.store.guardian_pin_hash, account_id)
        if stored is not None:
            if current is None:
                raise account_error(400, "current_pin_required", "current_pin: is required to change the guardian "
                                    "PIN", param="current_pin")
            await self.check_pin(account_id, current)
        elif profile.minor:
            raise account_error(403, "minor_mode_locked", "minor mode is on without a guardian PIN; a PIN can only "
                                "be set together with turning minor mode on (or at registration). To change this, "
                                "appeal: POST /v1/hegui/appeals")
        digest = await asyncio.to_thread(hash_pin, pin)
        await self.run(self.store.set_guardian_pin, account_id, digest, actor=actor)

    # -- identity ------------------------------------------------------------------------------

    async def send_otp(self, request: Request) -> Response:
        req = await self.body(request, OTPRequest)
        sent = await self.otp.send(req.phone, req.purpose, client_ip(request))
        return JSONResponse({"sent": True, "phone": sent.phone_masked, "ttl_seconds": sent.ttl_seconds,
                             "resend_after_seconds": sent.resend_after_seconds}, status_code=202)

    async def register(self, request: Request) -> Response:
        req = await self.body(request, RegisterRequest)
        number = await self.checked_code(req.phone, "register", req.code)
        if await self.run(self.store.find_by_phone, number) is not None:
            raise account_error(409, "phone_registered", "this number is already registered: request a code with "
                                "purpose 'login' and POST /v1/hegui/login", param="phone")
        band = await self.verified_band(number, req.id_token)
        account_id, created = await self.run(self.store.register_person, number, age_band=band or req.age_band)
        if not created:
            raise account_error(409, "phone_registered", "this number was registered a moment ago: log in instead",
                                param="phone")
        if band is not None:
            await self.run(self.apply_verified_band, account_id, band, account_id)
        if req.guardian_pin is not None:
            await self.run(self.store.set_guardian_pin, account_id, await asyncio.to_thread(hash_pin, req.guardian_pin),
                           actor=account_id)
        key_id, key = await self.run(self.store.ledger.create_api_key, account_id, name="registered by phone")
        self.changed(account_id)
        profile = await self.profile(account_id)
        return JSONResponse({
            "account_id": account_id, "key": key, "key_id": key_id, "phone": mask_phone(number), "created": True,
            "age_band": profile.age_band, "minor_mode": profile.minor,
            "required_agreements": await self.missing_agreements(profile), "accept_at": ACCEPT_PATH,
        }, status_code=201)

    async def login(self, request: Request) -> Response:
        req = await self.body(request, LoginRequest)
        number = await self.checked_code(req.phone, "login", req.code)
        found = await self.run(self.store.find_by_phone, number)
        if found is None:
            raise account_error(404, "account_not_found", "no account has this number: register first "
                                "(purpose 'register', POST /v1/hegui/register)", param="phone")
        band = await self.verified_band(number, req.id_token)
        if band is not None:
            await self.run(self.apply_verified_band, found.account_id, band, found.account_id)
        key_id, key = await self.run(self.store.ledger.create_api_key, found.account_id, name="login by phone")
        self.changed(found.account_id)
        profile = await self.profile(found.account_id)
        return JSONResponse({
            "account_id": profile.account_id, "key": key, "key_id": key_id, "phone": profile.phone_masked,
            "required_agreements": await self.missing_agreements(profile), "accept_at": ACCEPT_PATH,
        })

    async def app_user(self, request: Request) -> Response:
        principal = await self.principal(request)
        req = await self.body(request, AppUserRequest)
        app_id = principal.account_id
        assert app_id is not None
        if (await self.profile(app_id)).kind == "person":
            raise account_error(403, "not_an_app", "a person's key cannot register app users: use the app's own "
                                "key (an account created with `hegui ledger account create` or POST /admin/keys)")
        number = await self.checked_code(req.phone, "app_user", req.code)
        band = await self.verified_band(number, req.id_token)
        person, created = await self.run(self.store.register_person, number, age_band=band or req.age_band,
                                         app_id=app_id, actor=app_id)
        if person == app_id:
            raise account_error(400, "invalid_user", "an app cannot register its own account as its user")
        if band is not None:
            await self.run(self.apply_verified_band, person, band, app_id)
        if req.guardian_pin is not None:
            if created:
                await self.run(self.store.set_guardian_pin, person,
                               await asyncio.to_thread(hash_pin, req.guardian_pin), actor=app_id)
            else:
                await self.set_pin(person, req.guardian_pin, None, app_id)
        await self.run(self.store.link_app_user, app_id, req.user, person, actor=app_id)
        self.changed()  # the gate caches app users too (an unknown one as None)
        profile = await self.profile(person)
        return JSONResponse({"user": req.user, "account_id": person, "created": created,
                             "phone": profile.phone_masked or mask_phone(number),
                             "required_agreements": await self.missing_agreements(profile)}, status_code=201)

    # -- the account ---------------------------------------------------------------------------

    async def me(self, request: Request) -> Response:
        principal = await self.principal(request)
        unknown = sorted(set(request.query_params) - {"user"})
        if unknown:
            raise account_error(400, "invalid_request", f"{unknown[0]}: unknown query parameter (only 'user')",
                                param=unknown[0][:64])
        user = request.query_params.get("user")
        if user is not None and (not user.strip() or len(user) > 256):
            raise account_error(400, "invalid_user", "user: 1 to 256 characters", param="user")
        account_id = await self.subject(request, principal, user)
        profile = await self.profile(account_id)
        gate = self.gate
        usage = None
        if profile.minor:
            local = gate.local_now()
            used = await gate.state.minutes(account_id, local.date().isoformat())
            m = self.cfg.minors
            usage = {"day": local.date().isoformat(), "minutes_used": len(used),
                     "limit_minutes": gate.daily_limit(profile),
                     "curfew": f"{m.curfew_start:%H:%M}-{m.curfew_end:%H:%M}"}
        return JSONResponse({
            "account": profile.to_dict(), "standing": profile.standing_at(self.now()),
            "has_guardian_pin": profile.has_guardian_pin,
            "required_agreements": await self.missing_agreements(profile), "usage_today": usage,
            "links": {"agreements": AGREEMENTS_PATH, "accept": ACCEPT_PATH,
                      "training_opt_out": f"{PREFIX}/me/training-opt-out", "age_band": f"{PREFIX}/me/age-band",
                      "guardian_pin": f"{PREFIX}/me/guardian-pin", "minor_mode_exit": f"{PREFIX}/me/minor-mode/exit",
                      "appeals": f"{PREFIX}/appeals"},
        })

    async def agreements(self, request: Request) -> Response:
        today = self.gate.local_now().date()
        published = await self.run(self.store.published_agreements)
        current = await self.gate.required_agreements(today)
        fields = ("kind", "version", "effective", "sha256", "text", "published_at")
        docs = [{k: a[k] for k in fields} for a in published]
        return JSONResponse({
            "agreements": [d for d in docs if current.get(d["kind"]) == d["version"]],
            "upcoming": [d for d in docs if d["effective"] > today.isoformat()],
            "accept_at": ACCEPT_PATH,
        })

    async def accept(self, request: Request) -> Response:
        principal = await self.principal(request)
        req = await self.body(request, AcceptRequest)
        account_id = await self.subject(request, principal, req.user)
        current = await self.gate.required_agreements(self.gate.local_now().date())
        if req.kind not in current:
            raise account_error(404, "agreement_not_published", f"kind: no {req.kind} agreement is in force",
                                param="kind")
        if req.version != current[req.kind]:
            raise account_error(400, "agreement_version_not_current", f"version: the {req.kind} agreement in force "
                                f"is version {current[req.kind]!r}; only that one can be accepted (GET "
                                f"{AGREEMENTS_PATH})", param="version", current_version=current[req.kind])
        event_id = await self.run(self.store.accept, account_id, req.kind, req.version, actor=principal.account_id)
        self.changed(account_id)
        profile = await self.profile(account_id)
        return JSONResponse({"kind": req.kind, "version": req.version, "event_id": event_id,
                             "accepted": profile.accepted, "required_agreements": await self.missing_agreements(profile)})

    async def training_opt_out(self, request: Request) -> Response:
        principal = await self.principal(request)
        req = await self.body(request, OptOutRequest)
        account_id = await self.subject(request, principal, req.user)
        event_id = await self.run(self.store.set_training_opt_out, account_id, req.opt_out, actor=principal.account_id)
        self.changed(account_id)
        return JSONResponse({"training_opt_out": req.opt_out, "event_id": event_id})

    # -- minors ----------------------------------------------------------------------------------

    async def age_band(self, request: Request) -> Response:
        principal = await self.principal(request)
        req = await self.body(request, AgeBandRequest)
        account_id = await self.subject(request, principal, req.user)
        profile = await self.person(account_id)
        if await self.run(self.band_source, account_id) == "verifier":
            raise account_error(403, "age_band_verified", f"the age band {profile.age_band} comes from the identity "
                                "verifier and cannot be changed by declaration", param="age_band")
        if profile.minor and req.age_band not in MINOR_BANDS:
            raise account_error(403, "minor_mode_on", "the account is in minor mode: leave it with the guardian "
                                f"PIN and the new band (POST {PREFIX}/me/minor-mode/exit)", param="age_band")
        await self.run(self.store.set_age_band, account_id, req.age_band, source="declared",
                       actor=principal.account_id)
        self.changed(account_id)
        after = await self.profile(account_id)
        return JSONResponse({"age_band": after.age_band, "minor_mode": after.minor})

    async def guardian_pin(self, request: Request) -> Response:
        principal = await self.principal(request)
        req = await self.body(request, GuardianPinRequest)
        account_id = await self.subject(request, principal, req.user)
        await self.person(account_id)
        assert principal.account_id is not None
        await self.set_pin(account_id, req.pin, req.current_pin, principal.account_id)
        self.changed(account_id)
        return JSONResponse({"minor_mode": True, "has_guardian_pin": True})

    async def minor_exit(self, request: Request) -> Response:
        principal = await self.principal(request)
        req = await self.body(request, MinorExitRequest)
        account_id = await self.subject(request, principal, req.user)
        profile = await self.person(account_id)
        if not profile.minor:
            return JSONResponse({"minor_mode": False, "age_band": profile.age_band})
        new_band = req.age_band if req.age_band is not None and req.age_band != profile.age_band else None
        if profile.age_band in MINOR_BANDS or (new_band is not None and new_band in MINOR_BANDS):
            if await self.run(self.band_source, account_id) == "verifier":
                raise account_error(403, "age_band_verified", f"the identity verifier gave the age band "
                                    f"{profile.age_band}: minor mode follows from it", param="age_band")
            if new_band is None or new_band in MINOR_BANDS:
                raise account_error(400, "age_band_required", f"age_band: the declared age band is "
                                    f"{profile.age_band or 'unset'}; leaving minor mode needs a band that is not "
                                    "a minor's (e.g. adult)", param="age_band")
        await self.check_pin(account_id, req.pin)
        actor = principal.account_id or account_id

        def leave(conn: Connection) -> None:
            values: dict[str, Any] = {"minor_mode": False, "updated_at": utcnow()}
            if new_band is not None:
                values["age_band"] = new_band
                append_event(conn, "account.age_band", account_id, actor, {"age_band": new_band, "source": "declared"})
            conn.execute(sa.update(_profiles).where(_profiles.c.account_id == account_id).values(**values))
            append_event(conn, "minor.mode_off", account_id, actor, {"reason": "guardian PIN"})

        await self.run(self.store.write, leave)
        self.changed(account_id)
        after = await self.profile(account_id)
        return JSONResponse({"minor_mode": False, "age_band": after.age_band})

    # -- appeals ---------------------------------------------------------------------------------

    async def appeal(self, request: Request) -> Response:
        principal = await self.principal(request)
        req = await self.body(request, AppealRequest)
        account_id = await self.subject(request, principal, req.user)
        # the reason is free text: stored as decision excerpts are, personal information masked
        try:
            verdict = await self.gw.moderator.acheck(req.reason, direction="input", scene=self.gw.gw.default_scene)
        except Exception:
            log.exception("masking an appeal failed")
            raise service_unavailable("cannot check the appeal's text for personal information; try again later",
                                      "moderation_unavailable") from None
        appeal_id = await self.run(self.store.file_appeal, account_id, verdict.redacted or req.reason)
        self.changed(account_id)
        return JSONResponse({"appeal_id": appeal_id, "status": "open"}, status_code=201)


_APIS: weakref.WeakKeyDictionary[Gateway, AccountAPI] = weakref.WeakKeyDictionary()


def account_api(gw: Gateway) -> AccountAPI:
    """The account API of a gateway (tests reach ``.otp.sender`` and ``.verifier`` through it)."""
    return _APIS[gw]


def routes(gw: Gateway) -> list[Route]:
    api = AccountAPI(gw)
    _APIS[gw] = api

    table: dict[tuple[str, str], Callable[[Request], Awaitable[Response]]] = {
        (f"{PREFIX}/otp", "post"): api.send_otp,
        (f"{PREFIX}/register", "post"): api.register,
        (f"{PREFIX}/login", "post"): api.login,
        (f"{PREFIX}/apps/users", "post"): api.app_user,
        (f"{PREFIX}/me", "get"): api.me,
        (AGREEMENTS_PATH, "get"): api.agreements,
        (ACCEPT_PATH, "post"): api.accept,
        (f"{PREFIX}/me/training-opt-out", "post"): api.training_opt_out,
        (f"{PREFIX}/me/age-band", "post"): api.age_band,
        (f"{PREFIX}/me/guardian-pin", "post"): api.guardian_pin,
        (f"{PREFIX}/me/minor-mode/exit", "post"): api.minor_exit,
        (f"{PREFIX}/appeals", "post"): api.appeal,
    }
    assert set(table) == {(op.path, op.method) for op in OPERATIONS}
    return [Route(op.path, table[(op.path, op.method)], methods=[op.method.upper()]) for op in OPERATIONS]

