"""The enforcement ladder (``hegui.accounts.ladder.consider``) on SQLite and PostgreSQL, and the staff
side over HTTP (``/admin/accounts…``, ``/admin/appeals…``)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway_support import (
    ADMIN_KEY,
    TEST_KEY,
    add_test_keys,
    ledger_for,
    make_moderator,
    serve,
    write_config,
)
from hegui.accounts import ladder
from hegui.accounts.config import LadderConfig, LadderStep
from hegui.accounts.store import AccountNotFound, AccountStore
from hegui.gateway.app import create_app
from hegui.ledger.events import events
from hegui.ledger.records import DecisionRecord
from hegui.ledger.store import Ledger

ACCOUNT = "acc_ladder"


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    pg = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    with ledger_for(request.param, tmp_path, pg) as led:
        led.ensure_account(ACCOUNT, name="ladder test")
        yield led


def record(ledger: Ledger, n: int = 1, *, account: str = ACCOUNT, risks: tuple[str, ...] = ("A1h",),
           action: str = "refuse", direction: str = "input", kind: str = "decision",
           created_at: datetime | None = None) -> list[str]:
    ids = []
    for _ in range(n):
        did = "dec_" + uuid.uuid4().hex[:16]
        ledger.record_decision(DecisionRecord(
            decision_id=did, request_id=uuid.uuid4().hex, account_id=account, api_key_id="key_t", model="m",
            direction=direction, scene="default", action=action, risks=list(risks), findings=[],
            detector_ms={}, excerpt="", created_at=created_at, kind=kind))  # type: ignore[arg-type]
        ids.append(did)
    return ids


def cfg(n: int = 3, risks: list[str] | None = None, **kw: Any) -> LadderConfig:
    return LadderConfig(step=LadderStep(refusals=n, risks=risks or []), **kw)


def now() -> datetime:
    return datetime.now(UTC)


def ladder_events(ledger: Ledger, account: str = ACCOUNT) -> list[Any]:
    return events(ledger, account_id=account, kind_prefix="ladder.", limit=None)


def test_steps_at_exactly_n_refusals_with_the_evidence(ledger: Ledger) -> None:
    store = AccountStore(ledger)
    first = record(ledger, 2)
    assert ladder.consider(store, cfg(3), ACCOUNT, now()) is None
    assert store.profile(ACCOUNT).standing == "good"
    third = record(ledger, 1)
    event_id = ladder.consider(store, cfg(3), ACCOUNT, now())
    assert event_id is not None
    p = store.profile(ACCOUNT)
    assert p.standing == "warned" and p.standing_until is None
    assert "3 refused inputs within 24 h" in p.standing_reason
    (ev,) = ladder_events(ledger)
    assert ev.event_id == event_id and ev.kind == "ladder.warned" and ev.actor == "system"
    assert ev.data["from"] == "good" and ev.data["to"] == "warned"
    assert ev.data["evidence"] == first + third
    assert ev.data["automatic"] is True and ev.data["threshold"] == 3
    assert "any risk" in ev.data["reason"]
    # nothing new: no second step
    assert ladder.consider(store, cfg(3), ACCOUNT, now()) is None
    assert len(ladder_events(ledger)) == 1
    assert ledger.verify().ok


def test_each_step_needs_fresh_refusals_and_a_suspension_is_not_extended(ledger: Ledger) -> None:
    store = AccountStore(ledger)
    c = cfg(2, suspend_days=3)
    seen = []
    for expected in ("warned", "restricted", "suspended"):
        record(ledger, 1)
        assert ladder.consider(store, c, ACCOUNT, now()) is None  # one fresh refusal is not enough
        record(ledger, 1)
        t = now()
        assert ladder.consider(store, c, ACCOUNT, t) is not None
        p = store.profile(ACCOUNT)
        assert p.standing == expected
        seen.append(t)
    assert p.standing_until is not None
    assert abs((p.standing_until - (seen[-1] + timedelta(days=3))).total_seconds()) < 1
    # suspended: more refusals do not move it (termination is manual only)
    record(ledger, 5)
    version = store.version()
    assert ladder.consider(store, c, ACCOUNT, now()) is None
    assert store.profile(ACCOUNT).standing == "suspended"
    assert store.version() == version  # nothing written, so no worker drops its cache
    steps = ladder_events(ledger)
    assert [e.kind for e in steps] == ["ladder.warned", "ladder.restricted", "ladder.suspended"]
    assert steps[-1].data["until"] == p.standing_until.isoformat()
    assert all(len(e.data["evidence"]) == 2 for e in steps)
    assert ledger.verify().ok


def test_an_expired_suspension_counts_from_restricted(ledger: Ledger) -> None:
    store = AccountStore(ledger)
    store.set_standing(ACCOUNT, "suspended", actor="staff", reason="test", until=now() + timedelta(days=1))
    later = now() + timedelta(days=2)
    record(ledger, 2, created_at=later - timedelta(minutes=5))
    assert ladder.consider(store, cfg(2), ACCOUNT, later) is not None
    p = store.profile(ACCOUNT)
    assert p.standing == "suspended" and p.standing_until is not None
    assert abs((p.standing_until - (later + timedelta(days=7))).total_seconds()) < 1
    assert ladder_events(ledger)[-1].data["from"] == "restricted"


def test_only_the_configured_risks_count(ledger: Ledger) -> None:
    store = AccountStore(ledger)
    c = cfg(3, risks=["A1", "A4c"])  # a category and a code
    a1 = record(ledger, 2, risks=("A1h",))
    record(ledger, 3, risks=("A2a",))
    record(ledger, 2, risks=("PI",))
    assert ladder.consider(store, c, ACCOUNT, now()) is None
    a4c = record(ledger, 1, risks=("A2a", "A4c"))
    assert ladder.consider(store, c, ACCOUNT, now()) is not None
    ev = ladder_events(ledger)[-1]
    assert ev.data["evidence"] == a1 + a4c
    assert ev.data["risks"] == ["A1", "A4c"] and "risks: A1, A4c" in ev.data["reason"]


def test_only_refused_inputs_of_the_account_within_the_window_count(ledger: Ledger) -> None:
    store = AccountStore(ledger)
    ledger.ensure_account("acc_other")
    record(ledger, 3, created_at=now() - timedelta(hours=25))  # outside the 24 h window
    record(ledger, 3, action="allow")
    record(ledger, 3, action="flag")
    record(ledger, 3, action="mask")
    record(ledger, 3, direction="output")
    record(ledger, 3, account="acc_other")
    record(ledger, 3, kind="stream_open", action="refuse")
    assert ladder.consider(store, cfg(3), ACCOUNT, now()) is None
    record(ledger, 1, action="block")
    record(ledger, 1, action="refuse")
    assert ladder.consider(store, cfg(3), ACCOUNT, now()) is None
    inside = record(ledger, 1, created_at=now() - timedelta(hours=23))
    assert ladder.consider(store, cfg(3), ACCOUNT, now()) is not None
    assert len(ladder_events(ledger)[-1].data["evidence"]) == 3 and inside[0] in ladder_events(ledger)[-1].data["evidence"]
    assert store.profile("acc_other").standing == "good"
    # a shorter window leaves the older ones out
    record(ledger, 3, created_at=now() - timedelta(hours=2))
    assert ladder.consider(store, cfg(3, window_hours=1), ACCOUNT, now()) is None


def test_a_staff_action_starts_the_count_afresh(ledger: Ledger) -> None:
    store = AccountStore(ledger)
    record(ledger, 2)
    store.set_standing(ACCOUNT, "good", actor="staff", reason="talked to them", kind="ladder.restored")
    record(ledger, 2)
    assert ladder.consider(store, cfg(3), ACCOUNT, now()) is None
    record(ledger, 1)
    assert ladder.consider(store, cfg(3), ACCOUNT, now()) is not None


def test_terminated_and_disabled_never_step(ledger: Ledger) -> None:
    store = AccountStore(ledger)
    record(ledger, 5)
    assert ladder.consider(store, cfg(3, enabled=False), ACCOUNT, now()) is None
    store.set_standing(ACCOUNT, "terminated", actor="staff", reason="fraud")
    record(ledger, 5)
    assert ladder.consider(store, cfg(3), ACCOUNT, now()) is None
    assert store.profile(ACCOUNT).standing == "terminated"


def test_refusals_of_an_unknown_account_are_reported(ledger: Ledger) -> None:
    record(ledger, 3, account="acc_nobody")
    with pytest.raises(AccountNotFound):
        ladder.consider(AccountStore(ledger), cfg(3), "acc_nobody", now())


def test_concurrent_calls_step_once(ledger: Ledger) -> None:
    store = AccountStore(ledger)
    record(ledger, 3)
    threads = 8
    barrier = threading.Barrier(threads)
    results: list[str | None] = []
    errors: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        try:
            results.append(ladder.consider(AccountStore(ledger), cfg(3), ACCOUNT, now()))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(30)
    assert not errors, errors
    assert len([r for r in results if r]) == 1
    assert [e.kind for e in ladder_events(ledger)] == ["ladder.warned"]
    assert store.profile(ACCOUNT).standing == "warned"
    assert ledger.verify().ok


def test_concurrent_refusals_and_calls_never_skip_a_step(ledger: Ledger) -> None:
    """Workers each record a refusal and consider at once: the account goes down one step per
    threshold reached, never two steps on the same refusals."""
    threads = 6
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        try:
            for _ in range(2):
                record(ledger, 1)
                ladder.consider(AccountStore(ledger), cfg(3), ACCOUNT, now())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    assert not errors, errors
    steps = ladder_events(ledger)
    evidence = [d for e in steps for d in e.data["evidence"]]
    assert len(evidence) == len(set(evidence))  # no refusal counted twice
    assert all(len(e.data["evidence"]) >= 3 for e in steps)
    assert 1 <= len(steps) <= 12 // 3
    assert ledger.verify().ok


# -- the admin API over HTTP ----------------------------------------------------------------------

class Admin:
    def __init__(self, url: str, ledger: Ledger) -> None:
        self.url = url
        self.ledger = ledger
        self.store = AccountStore(ledger)

    def get(self, path: str, key: str = ADMIN_KEY, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, headers={"authorization": f"Bearer {key}"}, timeout=30, **kw)

    def post(self, path: str, body: Any, key: str = ADMIN_KEY) -> httpx.Response:
        return httpx.post(self.url + path, json=body, headers={"authorization": f"Bearer {key}"}, timeout=30)

    def act(self, account: str, **body: Any) -> httpx.Response:
        return self.post(f"/admin/accounts/{account}/actions", body)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def admin(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    folder = tmp_path_factory.mktemp("admin")
    pg = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    config = write_config(folder, {
        "gateway": {"admin_key": ADMIN_KEY},
        "labeling": {"explicit": False},
        "upstreams": [{"name": "demo", "base_url": "demo", "models": ["*"]}],
        "accounts": {"ladder": {"step": {"refusals": 2}}},
    })
    with ledger_for(request.param, folder, pg) as led:
        add_test_keys(led)
        app = create_app(config, moderator=make_moderator({"赌博": "A1h"}), ledger=led)
        with serve(app) as url:
            yield Admin(url, led)


def fresh(admin: Admin) -> str:
    account = "acc_" + uuid.uuid4().hex[:10]
    admin.ledger.ensure_account(account, name="admin api test")
    return account


def test_admin_actions_move_the_account_and_are_recorded(admin: Admin) -> None:
    account = fresh(admin)
    evidence = record(admin.ledger, 1, account=account)
    r = admin.act(account, action="warn", reason="repeated gambling ads", evidence=evidence)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["standing"] == "warned" and body["event_id"].startswith("ev_") and body["standing_until"] is None
    assert admin.store.profile(account).standing == "warned"

    assert admin.act(account, action="restrict", reason="again").json()["standing"] == "restricted"
    r = admin.act(account, action="suspend", reason="third time", days=2)
    assert r.status_code == 200, r.text
    until = datetime.fromisoformat(r.json()["standing_until"])
    assert abs((until - (now() + timedelta(days=2))).total_seconds()) < 60
    r = admin.act(account, action="suspend", reason="until a date", until="2099-01-01T00:00:00+08:00")
    assert r.status_code == 200, r.text
    assert datetime.fromisoformat(r.json()["standing_until"]) == datetime(2098, 12, 31, 16, tzinfo=UTC)
    assert admin.act(account, action="terminate", reason="fraud").json()["standing"] == "terminated"
    r = admin.act(account, action="warn", reason="too late")
    assert r.status_code == 409 and "terminated" in r.json()["error"]["message"]
    r = admin.act(account, action="restore", reason="court order")
    assert r.status_code == 200 and r.json()["standing"] == "good"

    kinds = [e.kind for e in ladder_events(admin.ledger, account)]
    assert kinds == ["ladder.warned", "ladder.restricted", "ladder.suspended", "ladder.suspended",
                     "ladder.terminated", "ladder.restored"]
    first = ladder_events(admin.ledger, account)[0]
    assert first.actor == "admin" and first.data["evidence"] == evidence
    assert first.data["reason"] == "repeated gambling ads"

    detail = admin.get(f"/admin/accounts/{account}")
    assert detail.status_code == 200
    d = detail.json()
    assert d["account"]["account_id"] == account and d["account"]["standing"] == "good"
    assert [e["kind"] for e in d["events"]][-1] == "ladder.restored"
    assert d["appeals"] == []
    assert admin.ledger.verify().ok


def test_admin_list_filters_by_standing(admin: Admin) -> None:
    account = fresh(admin)
    admin.act(account, action="restrict", reason="list test")
    r = admin.get("/admin/accounts", params={"standing": "restricted"})
    assert r.status_code == 200
    rows = r.json()["data"]
    assert account in {a["account_id"] for a in rows}
    assert {a["standing"] for a in rows} == {"restricted"}
    everyone = admin.get("/admin/accounts").json()["data"]
    assert "acc_test" in {a["account_id"] for a in everyone}
    r = admin.get("/admin/accounts", params={"standing": "naughty"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "standing"


@pytest.mark.parametrize("body, words", [
    ({"action": "warn"}, "reason: is required"),
    ({"action": "warn", "reason": "   "}, "reason"),
    ({"action": "warn", "reason": "x" * 501}, "reason"),
    ({"action": "ban", "reason": "x"}, "action"),
    ({"action": "suspend", "reason": "x"}, "needs an end"),
    ({"action": "suspend", "reason": "x", "days": 1, "until": "2099-01-01T00:00:00Z"}, "not both"),
    ({"action": "suspend", "reason": "x", "until": "tomorrow"}, "until"),
    ({"action": "suspend", "reason": "x", "days": 0}, "days"),
    ({"action": "warn", "reason": "x", "days": 3}, "suspend only"),
    ({"action": "warn", "reason": "x", "extra": 1}, "extra"),
    ({"action": "warn", "reason": 5}, "reason"),
    ({"action": "suspend", "reason": "x", "days": "3"}, "days"),
])
def test_admin_action_bad_input_is_a_400(admin: Admin, body: dict[str, Any], words: str) -> None:
    account = fresh(admin)
    r = admin.act(account, **body)
    assert r.status_code == 400, r.text
    assert words in r.json()["error"]["message"]
    assert admin.store.profile(account).standing == "good"


@pytest.mark.parametrize("body, words", [
    ({"action": "suspend", "reason": "x", "until": "2000-01-01T00:00:00Z"}, "not in the future"),
    ({"action": "suspend", "reason": "x", "until": "9999-01-01T00:00:00Z"}, "days ahead"),
    ({"action": "warn", "reason": "x", "evidence": ["dec_missing"]}, "no decision dec_missing"),
])
def test_admin_action_that_cannot_be_done_now_is_a_409(admin: Admin, body: dict[str, Any], words: str) -> None:
    """Well formed (the document allows it) but impossible given the clock or the ledger."""
    account = fresh(admin)
    r = admin.act(account, **body)
    assert r.status_code == 409, r.text
    assert words in r.json()["error"]["message"]
    assert admin.store.profile(account).standing == "good"


def test_admin_until_takes_every_rfc3339_form(admin: Admin) -> None:
    account = fresh(admin)
    for until in ("2099-01-01t00:00:00z", "2099-01-01T08:00:00.5+08:00", "2099-01-01T00:00:00Z"):
        r = admin.act(account, action="suspend", reason="x", until=until)
        assert r.status_code == 200, r.text
        assert r.json()["standing_until"].startswith("2099-01-01T00:00:00")


def test_admin_list_refuses_unknown_query_parameters(admin: Admin) -> None:
    r = admin.get("/admin/accounts", params={"standing": "good", "limit": "5"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "limit"
    r = admin.get("/admin/appeals", params=[("status", "open"), ("status", "upheld")])
    assert r.status_code == 400


def test_admin_routes_need_the_admin_key_and_known_ids(admin: Admin) -> None:
    account = fresh(admin)
    for method, path in [("get", "/admin/accounts"), ("get", f"/admin/accounts/{account}"),
                         ("post", f"/admin/accounts/{account}/actions"), ("get", "/admin/appeals"),
                         ("post", "/admin/appeals/ap_x/decision")]:
        r = (admin.get(path, key=TEST_KEY) if method == "get"
             else admin.post(path, {"action": "warn", "reason": "x"}, key=TEST_KEY))
        assert r.status_code == 403, (path, r.text)
        r = httpx.request(method.upper(), admin.url + path, timeout=30)
        assert r.status_code == 401
    assert admin.store.profile(account).standing == "good"
    r = admin.get("/admin/accounts/acc_nobody")
    assert r.status_code == 404 and "acc_nobody" in r.json()["error"]["message"]
    assert admin.get("/admin/accounts/acc%00x").status_code == 404  # PostgreSQL cannot hold a NUL
    assert admin.post("/admin/appeals/ap%00/decision", {"restore": True, "reason": "x"}).status_code == 404
    r = admin.act("acc_nobody", action="suspend", reason="x")  # unknown account first, whatever else is wrong
    assert r.status_code == 404
    r = admin.post("/admin/appeals/ap_nothing/decision", {"restore": True, "reason": "x"})
    assert r.status_code == 404


def test_appeals_are_listed_and_decided(admin: Admin) -> None:
    account = fresh(admin)
    admin.act(account, action="suspend", reason="spam", days=7)
    appeal = admin.store.file_appeal(account, "it was my brother")
    listed = admin.get("/admin/appeals", params={"status": "open"}).json()["data"]
    assert appeal in {a["id"] for a in listed} and {a["status"] for a in listed} == {"open"}
    assert admin.get("/admin/appeals", params={"status": "pending"}).status_code == 400

    r = admin.post(f"/admin/appeals/{appeal}/decision", {"restore": True, "reason": "believable"})
    assert r.status_code == 200, r.text
    assert r.json() == {"appeal_id": appeal, "account_id": account, "status": "restored", "standing": "good"}
    assert admin.store.profile(account).standing == "good"
    r = admin.post(f"/admin/appeals/{appeal}/decision", {"restore": False, "reason": "again"})
    assert r.status_code == 409
    assert admin.post(f"/admin/appeals/{appeal}/decision", {"restore": "yes", "reason": "x"}).status_code == 400

    second = admin.store.file_appeal(account, "and another")
    r = admin.post(f"/admin/appeals/{second}/decision", {"restore": False, "reason": "nothing to restore"})
    assert r.json()["status"] == "upheld"
    kinds = [e.kind for e in events(admin.ledger, account_id=account, limit=None)]
    assert kinds[-4:] == ["appeal.restored", "ladder.restored", "appeal.filed", "appeal.upheld"]
    detail = admin.get(f"/admin/accounts/{account}").json()
    assert [a["status"] for a in detail["appeals"]] == ["restored", "upheld"]
    assert admin.ledger.verify().ok


def test_refused_inputs_through_the_gateway_step_the_account(admin: Admin) -> None:
    """End to end: the gateway records refused inputs and calls the ladder (threshold 2 here); the
    account is then warned, and a suspension refuses with its end and where to appeal."""
    account = fresh(admin)
    key = "sk-hegui-ladder-" + uuid.uuid4().hex[:8]
    admin.ledger.ensure_api_key(account, key, name="ladder e2e")
    for _ in range(2):
        r = httpx.post(admin.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                       json={"model": "hegui-demo", "messages": [{"role": "user", "content": "网上赌博怎么玩"}]},
                       timeout=30)
        assert r.status_code == 200, r.text
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while admin.store.profile(account).standing == "good" and datetime.now(UTC) < deadline:
        threading.Event().wait(0.05)
    assert admin.store.profile(account).standing == "warned"
    (ev,) = ladder_events(admin.ledger, account)
    assert ev.actor == "system" and len(ev.data["evidence"]) == 2

    admin.act(account, action="suspend", reason="test", until="2099-01-01T00:00:00+08:00")
    r = httpx.post(admin.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                   json={"model": "hegui-demo", "messages": [{"role": "user", "content": "你好"}]}, timeout=30)
    assert r.status_code == 403
    err = r.json()["error"]
    assert err["code"] == "account_suspended" and "2099-01-01" in err["message"] and err["appeal"]
