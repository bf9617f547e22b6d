"""The public account API over real HTTP: register by SMS code, accept the agreements, chat with the
new key (the official ``openai`` client); login; an app registering its end users and calling for
them with a public key; agreements, training opt-out, minor mode and the guardian PIN, appeals; and
the identity verifier. Storage on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from accounts_support import PRIVACY_TEXT, SERVICE_TEXT, Env, account_env
from hegui.accounts.api import account_api
from hegui.accounts.verifier import IdentityVerifier
from hegui.ledger.events import events

BACKENDS = ["sqlite", "postgres"]


def phone() -> str:
    return "139" + "".join(random.choices("0123456789", k=8))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")
    return str(request.param)


@pytest.fixture
def env(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    with account_env(backend, tmp_path, url) as e:
        yield e


def error(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"} and "\n" not in body["error"]["message"], body
    return dict(body["error"])


# -- direct registration -------------------------------------------------------------------------------


def test_register_accept_and_chat(env: Env) -> None:
    number = phone()
    r = env.post("/otp", {"phone": f"+86 {number[:3]} {number[3:7]} {number[7:]}", "purpose": "register"})
    assert r.status_code == 202
    assert r.json() == {"sent": True, "phone": number[:3] + "****" + number[-4:], "ttl_seconds": 300,
                        "resend_after_seconds": 60}
    assert env.capture is not None and env.capture.sent[-1][0] == number  # normalised to 11 digits
    reg = env.post("/register", {"phone": number, "code": env.capture.code(number)})
    assert reg.status_code == 201, reg.text
    body = reg.json()
    assert body["phone"] == number[:3] + "****" + number[-4:] and number not in reg.text
    assert body["created"] is True and body["minor_mode"] is False
    assert body["required_agreements"] == {"privacy": "v1", "service": "v1"}
    key = body["key"]

    with pytest.raises(openai.PermissionDeniedError) as exc:
        env.chat(key)
    assert exc.value.body["code"] == "agreement_required"  # type: ignore[index]

    docs = env.get("/agreements")
    assert docs.status_code == 200
    texts = {d["kind"]: d["text"] for d in docs.json()["agreements"]}
    assert texts == {"service": SERVICE_TEXT, "privacy": PRIVACY_TEXT}
    env.accept_all(key)
    assert env.chat(key).choices[0].message.content

    me = env.get("/me", key).json()
    assert me["account"]["phone"] == number[:3] + "****" + number[-4:] and me["account"]["kind"] == "person"
    assert me["account"]["accepted"] == {"service": "v1", "privacy": "v1"} and me["required_agreements"] == {}
    assert me["standing"] == "good" and me["usage_today"] is None
    kinds = [e.kind for e in events(env.ledger, account_id=body["account_id"])]
    assert kinds.count("agreement.accepted") == 2 and "account.registered" in kinds


def test_a_new_version_must_be_accepted_and_only_the_current_one_can_be(env: Env) -> None:
    key = env.register(phone())["key"]
    env.accept_all(key)
    env.chat(key)
    today = env.gw.accounts.local_now().date()
    env.store.publish_agreement("service", "v2", today.isoformat(), SERVICE_TEXT + "\n第二版。", actor="test")
    env.store.publish_agreement("service", "v3", (today + timedelta(days=30)).isoformat(), "下一版", actor="test")
    env.gw.accounts.forget()
    with pytest.raises(openai.PermissionDeniedError) as exc:
        env.chat(key)
    err: Any = exc.value.body
    assert err["code"] == "agreement_required" and err["required"] == {"service": "v2"}
    assert err["accept_at"] == "/v1/hegui/agreements/accept"

    docs = env.get("/agreements").json()
    assert {(d["kind"], d["version"]) for d in docs["agreements"]} == {("service", "v2"), ("privacy", "v1")}
    assert [d["version"] for d in docs["upcoming"]] == ["v3"]
    for old in ("v1", "v3", "nope"):
        r = env.post("/agreements/accept", {"kind": "service", "version": old}, key)
        assert r.status_code == 400 and error(r)["code"] == "agreement_version_not_current"
        assert error(r)["current_version"] == "v2"
    r = env.post("/agreements/accept", {"kind": "service", "version": "v2"}, key)
    assert r.status_code == 200 and r.json()["required_agreements"] == {}
    assert r.json()["event_id"].startswith("ev_")
    env.chat(key)


def test_an_existing_number_gets_409_and_logs_in_instead(env: Env) -> None:
    number = phone()
    first = env.register(number)
    env.clock.advance(seconds=61)
    code = env.send_code(number)
    r = env.post("/register", {"phone": number, "code": code})
    assert r.status_code == 409 and error(r)["code"] == "phone_registered"
    env.clock.advance(seconds=61)
    login = env.post("/login", {"phone": number, "code": env.send_code(number, "login")})
    assert login.status_code == 200, login.text
    assert login.json()["account_id"] == first["account_id"] and login.json()["key"] != first["key"]
    env.accept_all(login.json()["key"])
    env.chat(login.json()["key"])
    env.chat(first["key"])  # the old key still works

    stranger = phone()
    r = env.post("/login", {"phone": stranger, "code": env.send_code(stranger, "login")})
    assert r.status_code == 404 and error(r)["code"] == "account_not_found"


def test_codes_are_bound_to_their_purpose(env: Env) -> None:
    number = phone()
    code = env.send_code(number, "login")
    r = env.post("/register", {"phone": number, "code": code})
    assert r.status_code == 400 and error(r)["code"] == "otp_invalid"


def test_bad_requests_are_one_line_400s(env: Env) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"phone": "12345", "purpose": "register"}, "phone"),
        ({"phone": "+1 415 555 2671", "purpose": "register"}, "phone"),
        ({"phone": "010-12345678", "purpose": "register"}, "phone"),  # a landline gets no SMS
        ({"phone": "1" * 40, "purpose": "register"}, "phone"),
        ({"phone": phone(), "purpose": "spam"}, "purpose"),
        ({"phone": phone()}, "purpose"),
        ({"phone": 13800138000, "purpose": "register"}, "phone"),
        ({"phone": phone(), "purpose": "register", "extra": 1}, "extra"),
    ]
    for body, param in cases:
        r = env.post("/otp", body)
        assert r.status_code == 400, (body, r.text)
        assert error(r)["param"] == param, (body, r.text)
    r = env.post("/register", {"phone": phone(), "code": "12ab56"})
    assert r.status_code == 400 and error(r)["param"] == "code"
    r = env.http.post("/v1/hegui/otp", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and error(r)["code"] == "invalid_json"


# -- the app path ------------------------------------------------------------------------------------


def app_key(env: Env, public: bool = True) -> tuple[str, str]:
    app_id = env.ledger.create_account("chat app")
    key_id, key = env.ledger.create_api_key(app_id, name="app")
    if public:
        env.store.set_key_public(key_id, True, actor="test")
    return app_id, key


def test_an_app_registers_its_users_and_calls_for_them(env: Env) -> None:
    app_id, key = app_key(env)
    number = phone()
    code = env.send_code(number, "app_user")
    r = env.post("/apps/users", {"user": "u-42", "phone": number, "code": code}, key)
    assert r.status_code == 201, r.text
    person = r.json()["account_id"]
    assert r.json() == {"user": "u-42", "account_id": person, "created": True,
                        "phone": number[:3] + "****" + number[-4:],
                        "required_agreements": {"privacy": "v1", "service": "v1"}}
    assert env.store.profile(person).app_id == app_id

    # the person has not accepted yet: the gate refuses the app's request for them
    with pytest.raises(openai.PermissionDeniedError) as exc:
        env.chat(key, user="u-42")
    assert exc.value.body["code"] == "agreement_required"  # type: ignore[index]
    env.accept_all(key, user="u-42")
    assert env.chat(key, user="u-42").choices[0].message.content
    # an unknown user, or none, is refused on a public key
    with pytest.raises(openai.PermissionDeniedError) as exc:
        env.chat(key, user="u-unknown")
    assert exc.value.body["code"] == "user_unverified"  # type: ignore[index]

    me = env.get("/me", key, user="u-42").json()
    assert me["account"]["account_id"] == person and me["required_agreements"] == {}
    by_header = env.http.get("/v1/hegui/me", headers={"Authorization": f"Bearer {key}", "x-hegui-user": "u-42"})
    assert by_header.json()["account"]["account_id"] == person
    r = env.get("/me", key, user="u-unknown")
    assert r.status_code == 404 and error(r)["code"] == "user_not_found"
    assert env.get("/me", key).json()["account"]["account_id"] == app_id

    # the same person through a second name of the same app: linked, not created again
    env.clock.advance(seconds=61)
    r = env.post("/apps/users", {"user": "u-42-alt", "phone": number, "code": env.send_code(number, "app_user")}, key)
    assert r.status_code == 201 and r.json()["created"] is False and r.json()["account_id"] == person


def test_a_person_cannot_register_app_users(env: Env) -> None:
    key = env.register(phone())["key"]
    number = phone()
    r = env.post("/apps/users", {"user": "x", "phone": number, "code": env.send_code(number, "app_user")}, key)
    assert r.status_code == 403 and error(r)["code"] == "not_an_app"
    r = env.post("/apps/users", {"user": "x", "phone": number, "code": "123456"})
    assert r.status_code == 401


def test_a_code_for_direct_registration_does_not_register_an_app_user(env: Env) -> None:
    _, key = app_key(env)
    number = phone()
    r = env.post("/apps/users", {"user": "u", "phone": number, "code": env.send_code(number, "register")}, key)
    assert r.status_code == 400 and error(r)["code"] == "otp_invalid"


# -- consent -----------------------------------------------------------------------------------------


def test_training_opt_out_is_one_call_and_recorded(env: Env) -> None:
    reg = env.register(phone())
    key = reg["key"]
    me = env.get("/me", key).json()
    assert me["account"]["training_opt_out"] is False
    assert me["links"]["training_opt_out"] == "/v1/hegui/me/training-opt-out"
    r = env.post("/me/training-opt-out", {"opt_out": True}, key)
    assert r.status_code == 200 and r.json()["training_opt_out"] is True
    assert env.get("/me", key).json()["account"]["training_opt_out"] is True
    assert env.store.profile(reg["account_id"]).training_opt_out is True
    r = env.post("/me/training-opt-out", {"opt_out": False}, key)
    assert r.json()["training_opt_out"] is False
    kinds = [e.kind for e in events(env.ledger, account_id=reg["account_id"], kind_prefix="consent.")]
    assert kinds == ["consent.training_opt_out", "consent.training_opt_in"]
    r = env.post("/me/training-opt-out", {"opt_out": "yes"}, key)
    assert r.status_code == 400 and error(r)["param"] == "opt_out"


# -- minors ------------------------------------------------------------------------------------------


def test_a_declared_minor_without_a_pin_cannot_leave(env: Env) -> None:
    reg = env.register(phone(), age_band="12-16")
    key = reg["key"]
    assert reg["minor_mode"] is True and reg["age_band"] == "12-16"
    env.accept_all(key)
    me = env.get("/me", key).json()
    assert me["account"]["minor_mode"] is True and me["usage_today"]["limit_minutes"] == 60
    assert me["has_guardian_pin"] is False
    env.chat(key)  # 10:00: served, in the minor scene
    assert env.get("/me", key).json()["usage_today"]["minutes_used"] >= 1

    r = env.post("/me/minor-mode/exit", {"pin": "1234", "age_band": "adult"}, key)
    assert r.status_code == 403 and error(r)["code"] == "guardian_pin_missing"
    r = env.post("/me/guardian-pin", {"pin": "1234"}, key)
    assert r.status_code == 403 and error(r)["code"] == "minor_mode_locked"
    r = env.post("/me/age-band", {"age_band": "adult"}, key)
    assert r.status_code == 403 and error(r)["code"] == "minor_mode_on"
    r = env.post("/me/age-band", {"age_band": "16-18"}, key)  # within the minor bands: allowed
    assert r.status_code == 200 and r.json() == {"age_band": "16-18", "minor_mode": True}
    assert env.get("/me", key).json()["usage_today"]["limit_minutes"] == 120


def test_a_guardian_pin_governs_leaving_minor_mode(env: Env) -> None:
    reg = env.register(phone(), age_band="8-12", guardian_pin="2468")
    key = reg["key"]
    assert reg["minor_mode"] is True
    stored = env.store.guardian_pin_hash(reg["account_id"])
    assert stored is not None and stored.startswith("$argon2id$") and "2468" not in stored

    r = env.post("/me/minor-mode/exit", {"pin": "2468"}, key)
    assert r.status_code == 400 and error(r)["code"] == "age_band_required"
    r = env.post("/me/minor-mode/exit", {"pin": "1111", "age_band": "adult"}, key)
    assert r.status_code == 403 and error(r)["code"] == "guardian_pin_wrong" and error(r)["tries_left"] == 4
    r = env.post("/me/guardian-pin", {"pin": "1111"}, key)  # changing the PIN needs the current one
    assert r.status_code == 400 and error(r)["code"] == "current_pin_required"
    r = env.post("/me/minor-mode/exit", {"pin": "2468", "age_band": "adult"}, key)
    assert r.status_code == 200 and r.json() == {"minor_mode": False, "age_band": "adult"}
    me = env.get("/me", key).json()
    assert me["account"]["minor_mode"] is False and me["usage_today"] is None
    kinds = [e.kind for e in events(env.ledger, account_id=reg["account_id"])]
    assert kinds[-2:] == ["account.age_band", "minor.mode_off"]


def test_guardian_pin_tries_are_limited(env: Env) -> None:
    key = env.register(phone(), guardian_pin="9753")["key"]  # an adult turning minor mode on
    assert env.get("/me", key).json()["account"]["minor_mode"] is True
    for left in (4, 3, 2, 1, 0):
        r = env.post("/me/minor-mode/exit", {"pin": "0000"}, key)
        assert r.status_code == 403 and error(r)["tries_left"] == left
    r = env.post("/me/minor-mode/exit", {"pin": "9753"}, key)  # the right PIN, too late this hour
    assert r.status_code == 429 and error(r)["code"] == "guardian_pin_locked"
    assert int(r.headers["retry-after"]) >= 1
    env.clock.advance(hours=1)
    r = env.post("/me/minor-mode/exit", {"pin": "9753"}, key)
    assert r.status_code == 200 and r.json()["minor_mode"] is False


def test_setting_a_pin_turns_minor_mode_on_and_changing_it_needs_the_old_one(env: Env) -> None:
    key = env.register(phone())["key"]
    r = env.post("/me/guardian-pin", {"pin": "123456"}, key)
    assert r.status_code == 200 and r.json() == {"minor_mode": True, "has_guardian_pin": True}
    r = env.post("/me/guardian-pin", {"pin": "654321", "current_pin": "000000"}, key)
    assert r.status_code == 403 and error(r)["code"] == "guardian_pin_wrong"
    r = env.post("/me/guardian-pin", {"pin": "654321", "current_pin": "123456"}, key)
    assert r.status_code == 200
    r = env.post("/me/minor-mode/exit", {"pin": "123456"}, key)
    assert r.status_code == 403
    for bad in ("123", "123456789", "12a4"):
        r = env.post("/me/guardian-pin", {"pin": bad}, key)
        assert r.status_code == 400 and error(r)["param"] == "pin"


def test_age_bands_and_minor_mode_are_for_people(env: Env) -> None:
    acc = env.ledger.create_account("service")
    _, key = env.ledger.create_api_key(acc)
    for path, body in (("/me/age-band", {"age_band": "12-16"}), ("/me/guardian-pin", {"pin": "1234"}),
                       ("/me/minor-mode/exit", {"pin": "1234"})):
        r = env.post(path, body, key)
        assert r.status_code == 403 and error(r)["code"] == "not_a_person", path
    r = env.get("/me", "sk-hegui-test-admin")
    assert r.status_code == 403 and error(r)["code"] == "no_account"


# -- the identity verifier ---------------------------------------------------------------------------


class Verifier:
    """A fake identity-verification adapter behind an httpx MockTransport."""

    def __init__(self, answer: Any, status: int = 200) -> None:
        self.answer = answer
        self.status = status
        self.requests: list[dict[str, Any]] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append({"body": json.loads(request.content), "headers": dict(request.headers)})
        return httpx.Response(self.status, json=self.answer)

    def install(self, env: Env) -> None:
        account_api(env.gw).verifier = IdentityVerifier("http://verifier.test/verify",
                                                        transport=httpx.MockTransport(self.handler))


def test_the_verifier_sets_the_age_band_and_nothing_else(env: Env) -> None:
    fake = Verifier({"age_band": "12-16"})
    fake.install(env)
    number = phone()
    reg = env.register(number, age_band="adult", id_token="tok-1")
    assert reg["age_band"] == "12-16" and reg["minor_mode"] is True  # the verifier wins over the declaration
    assert fake.requests[0]["body"]["phone"] == number and fake.requests[0]["body"]["token"] == "tok-1"
    found = events(env.ledger, account_id=reg["account_id"], kind_prefix="account.age_band")
    assert found[-1].data == {"age_band": "12-16", "source": "verifier"}
    r = env.post("/me/age-band", {"age_band": "16-18"}, reg["key"])
    assert r.status_code == 403 and error(r)["code"] == "age_band_verified"

    # login with a token later: a verified adult leaves a declared minor mode (no guardian PIN)
    adult = Verifier({"age_band": "adult"})
    adult.install(env)
    other = phone()
    reg2 = env.register(other, age_band="16-18")
    env.clock.advance(seconds=61)
    r = env.post("/login", {"phone": other, "code": env.send_code(other, "login"), "id_token": "tok-2"})
    assert r.status_code == 200, r.text
    me = env.get("/me", reg2["key"]).json()["account"]
    assert me["age_band"] == "adult" and me["minor_mode"] is False


@pytest.mark.parametrize(("answer", "status", "code", "http"), [
    ({"age_band": "adult", "name": "张三"}, 200, "verifier_failed", 502),
    ({"age_band": "forty"}, 200, "verifier_failed", 502),
    ("adult", 200, "verifier_failed", 502),
    ({"error": "bad token"}, 403, "identity_not_verified", 403),
    ({"error": "down"}, 503, "verifier_failed", 502),
])
def test_the_verifier_answer_is_checked(env: Env, answer: Any, status: int, code: str, http: int) -> None:
    Verifier(answer, status).install(env)
    number = phone()
    r = env.post("/register", {"phone": number, "code": env.send_code(number), "id_token": "t"})
    assert r.status_code == http and error(r)["code"] == code
    assert "张三" not in r.text
    assert env.store.find_by_phone(number) is None


def test_a_token_without_a_verifier_is_a_400(env: Env) -> None:
    number = phone()
    r = env.post("/register", {"phone": number, "code": env.send_code(number), "id_token": "t"})
    assert r.status_code == 400 and error(r)["code"] == "verifier_not_configured"


# -- appeals -------------------------------------------------------------------------------------------


def test_an_appeal_is_filed_with_personal_data_masked(backend: str, tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    with account_env(backend, tmp_path, url, words={"15912345678": "PI"}) as env:
        reg = env.register(phone())
        r = env.post("/appeals", {"reason": "我没有违规，请回电 15912345678"}, reg["key"])
        assert r.status_code == 201 and r.json()["status"] == "open"
        appeal_id = r.json()["appeal_id"]
        stored = env.store.appeals(account_id=reg["account_id"])
        assert [a["id"] for a in stored] == [appeal_id]
        assert "15912345678" not in stored[0]["reason"] and "我没有违规" in stored[0]["reason"]
        r = env.post("/appeals", {"reason": "   "}, reg["key"])
        assert r.status_code == 400 and error(r)["param"] == "reason"
        r = env.post("/appeals", {"reason": "长" * 2001}, reg["key"])
        assert r.status_code == 400


def test_the_api_is_404_when_accounts_are_off(tmp_path: Path) -> None:
    with account_env("sqlite", tmp_path, None, accounts={"enabled": False}) as env:
        for r in (env.post("/otp", {"phone": phone(), "purpose": "register"}), env.get("/agreements"),
                  env.get("/me", "sk-x")):
            assert r.status_code == 404 and error(r)["code"] == "accounts_disabled"
