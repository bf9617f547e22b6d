"""A person's data (SQLite and PostgreSQL): the export holds everything hegui has on them, readable
and escaped; the erasure leaves nothing of theirs anywhere (tables, ledger file, attachments,
vault) while both chains still verify, and another person's data is untouched."""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway_support import ledger_for
from hegui.accounts.store import AccountStore, mask_phone
from hegui.cases.config import CasesConfig
from hegui.cases.pi import (
    ERASED_TEXT,
    PersonNotFound,
    collect_person,
    erase_person,
    export_person,
    find_traces,
)
from hegui.cases.store import AttachmentIn, CaseStore
from hegui.ledger.events import events
from hegui.ledger.models import Base
from hegui.ledger.records import DecisionRecord
from hegui.ledger.store import Ledger
from hegui.masking import TokenVault

SCRIPT = "<script>alert('pwned')</script>"


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    pg = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    with ledger_for(request.param, tmp_path, pg) as led:
        yield led


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[TokenVault]:
    with TokenVault(tmp_path / "vault.db", salt=b"test-vault-salt") as v:
        yield v


@dataclass
class Person:
    phone: str
    account_id: str
    phone_hash: str
    key_id: str
    key_prefix: str
    token: str
    contact: str
    description: str
    appeal_reason: str
    stored_name: str
    original_name: str
    case_id: str
    pi_case_id: str
    decision_id: str

    def needles(self) -> list[str]:
        return [self.phone, self.account_id, self.phone_hash, mask_phone(self.phone), self.key_id, self.key_prefix,
                self.token, self.contact, self.description, self.appeal_reason, self.stored_name,
                self.original_name]


def make_person(ledger: Ledger, vault: TokenVault, folder: Path, phone: str, name: str) -> Person:
    accounts = AccountStore(ledger)
    cases = CaseStore(ledger, CasesConfig())
    account_id, created = accounts.register_person(phone)
    assert created
    phone_hash = accounts.phone_hash(phone)
    key_id, plaintext = ledger.create_api_key(account_id, name=f"{name}'s key")
    token = vault.tokenize(phone, "CN_MOBILE")
    decision_ids = []
    for i in range(2):
        did = f"dec_{name}_{i}"
        ledger.record_decision(DecisionRecord(
            decision_id=did, request_id=f"req_{name}_{i}", account_id=account_id, api_key_id=key_id, model="m",
            direction="input", scene="default", action="refuse", risks=["A1a"],
            findings=[{"risk": "PI", "evidence": token, "start": 6, "end": 20}], detector_ms={},
            excerpt=f"我的手机号是{token}，{name}"))
        decision_ids.append(did)
    accounts.accept(account_id, "service", "2026-12")
    accounts.set_standing(account_id, "warned", actor="system", reason="2 refused inputs", evidence=decision_ids)
    appeal_reason = f"{name} 申诉：我没有违规"
    accounts.file_appeal(account_id, appeal_reason)
    now = datetime.now(UTC)
    with ledger.engine.begin() as conn:
        t = Base.metadata.tables
        conn.execute(sa.insert(t["otp_codes"]).values(
            id="otp_" + secrets.token_hex(6), phone_hash=phone_hash, ip_hash="ip", purpose="login", code_hash="c",
            attempts=0, expires_at=now + timedelta(minutes=5), consumed_at=now, created_at=now))
        conn.execute(sa.insert(t["usage_minutes"]).values(account_id=account_id, day="2026-12-03", minute=600))
        conn.execute(sa.insert(t["counters"]).values(key=f"acct:{account_id}:rpm@1700000000", value=3,
                                                     expires_at=now + timedelta(minutes=1)))
    stored_name = secrets.token_hex(16) + ".txt"
    (folder / stored_name).write_text(f"screenshot text of {name}", encoding="utf-8")
    original_name = f"{name}-截图.txt"
    contact = f"微信 {name}_wx_8842"
    description = f"{SCRIPT} 请删除 {name} 的内容 {name}@example.com"
    body = (folder / stored_name).read_bytes()
    case_id, _code = cases.open_case(
        "complaint", category="privacy", description=description, contact=contact, account_id=account_id,
        reference=f"https://example.com/{name}",
        attachments=[AttachmentIn(stored_name, "text/plain", len(body), hashlib.sha256(body).hexdigest(),
                                  original_name)])
    cases.note(case_id, f"called {name} back", actor="staff1")
    pi_case_id, _ = cases.open_case("pi_request", pi_action="delete", description=f"delete {name}",
                                    phone_hash=phone_hash, source="portal")
    return Person(phone, account_id, phone_hash, key_id, plaintext[:10], token, contact, description, appeal_reason,
                  stored_name, original_name, case_id, pi_case_id, decision_ids[0])


@pytest.fixture
def people(ledger: Ledger, vault: TokenVault, tmp_path: Path) -> tuple[Person, Person]:
    folder = tmp_path / "attachments"
    folder.mkdir()
    return (make_person(ledger, vault, folder, "13912345678", "alice"),
            make_person(ledger, vault, folder, "13700001111", "bob"))


def test_the_export_holds_everything_and_escapes_it(ledger: Ledger, people: tuple[Person, Person]) -> None:
    alice, bob = people
    blob = export_person(ledger, account_id=alice.account_id, phone_hash=None)
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert sorted(zf.namelist()) == ["data.json", "index.html"]
        text = zf.read("data.json").decode("utf-8")
        page = zf.read("index.html").decode("utf-8")
    data = json.loads(text)
    assert data["subject"] == {"account_id": alice.account_id, "phone_hash": alice.phone_hash}
    assert data["account"]["id"] == alice.account_id
    assert data["profile"]["phone_masked"] == "139****5678" and data["profile"]["guardian_pin_set"] is False
    [key] = data["api_keys"]
    assert key["id"] == alice.key_id and key["prefix"] == alice.key_prefix
    assert [d["decision_id"] for d in data["decisions"]] == ["dec_alice_0", "dec_alice_1"]
    assert alice.token in data["decisions"][0]["excerpt"]
    kinds = [e["kind"] for e in data["events"]]
    assert {"account.registered", "agreement.accepted", "ladder.warned", "appeal.filed", "case.opened"} <= set(kinds)
    assert data["agreements"]["accepted"] == {"service": "2026-12"}
    assert [a["reason"] for a in data["appeals"]] == [alice.appeal_reason]
    assert len(data["otp_codes"]) == 1 and "code_hash" not in data["otp_codes"][0]
    assert data["usage_minutes"] == [{"day": "2026-12-03", "minutes": [600]}]
    assert [c["value"] for c in data["counters"]] == [3]
    complaint = next(c for c in data["cases"] if c["id"] == alice.case_id)
    assert complaint["contact"] == alice.contact and complaint["description"] == alice.description
    assert [a["original_name"] for a in complaint["attachments"]] == [alice.original_name]
    assert len(complaint["notes"]) == 1 and "text" not in complaint["notes"][0]  # the fact, not the text
    assert any(c["id"] == alice.pi_case_id for c in data["cases"])  # found by the phone hash
    # secrets and other people stay out
    for secret in ("key_hash", "code_hash", "guardian_pin_hash", "called alice back"):
        assert secret not in text
    for other in bob.needles():
        assert other not in text and other not in page
    # the page shows the same, escaped
    assert SCRIPT not in page and "&lt;script&gt;" in page
    assert alice.contact in page and alice.token in page and "个人信息副本" in page


def test_the_person_is_found_by_phone_hash_alone(ledger: Ledger, people: tuple[Person, Person]) -> None:
    alice, _ = people
    data = collect_person(ledger, account_id=None, phone_hash=alice.phone_hash)
    assert data["account"]["id"] == alice.account_id
    with pytest.raises(PersonNotFound, match="no data held for account acc_nobody"):
        collect_person(ledger, account_id="acc_nobody", phone_hash=None)


def test_erasure_leaves_nothing_of_the_person_and_the_chains_verify(
        ledger: Ledger, vault: TokenVault, people: tuple[Person, Person], tmp_path: Path) -> None:
    alice, bob = people
    folder = tmp_path / "attachments"
    # before: every needle is found somewhere, so the scan would see them
    before = find_traces(ledger, needles=alice.needles(), attachments_dir=folder, vault_path=vault.path)
    for needle in alice.needles():
        assert any(repr(needle) in hit for hit in before), needle
    if ledger.engine.dialect.name == "sqlite":  # the raw file is read too, not only the tables
        assert any("ledger file" in hit and repr(alice.contact) in hit for hit in before)
    assert any("vault file" in hit for hit in before) and any("attachment" in hit for hit in before)
    report = erase_person(ledger, account_id=alice.account_id, phone_hash=None, attachments_dir=folder,
                          vault=vault, actor="dpo", case_id=alice.pi_case_id)
    assert report.deleted["accounts"] == 1 and report.deleted["api_keys"] == 1 and report.deleted["appeals"] == 1
    assert report.deleted["otp_codes"] == 1 and report.deleted["usage_minutes"] == 1
    assert report.deleted["counters"] == 1 and report.deleted["case_attachments"] == 1
    assert report.erased["decisions"] == 2 and report.erased["cases"] == 2 and report.kept["decisions"] == 0
    assert report.files == 1 and report.tokens == 1
    assert find_traces(ledger, needles=alice.needles(), attachments_dir=folder, vault_path=vault.path) == []
    verified = ledger.verify()
    assert verified.ok, verified.problems
    # tombstones: the case is still there (its handling is accountable), without the person
    view = CaseStore(ledger, CasesConfig()).get(alice.case_id)
    assert (view.description, view.contact, view.account_id, view.kind) == (ERASED_TEXT, None, None, "complaint")
    assert [n["text"] for n in view.notes] == [ERASED_TEXT]
    [erased_event] = [e for e in events(ledger, limit=None) if e.kind == "pi.erased"]
    assert erased_event.account_id is None and erased_event.actor == "dpo"
    assert erased_event.data["case"] == alice.pi_case_id and erased_event.data["counts"]["files"] == 1
    # Bob is untouched
    accounts = AccountStore(ledger)
    assert accounts.find_by_phone(bob.phone) is not None
    assert vault.detokenize(bob.token) == bob.phone
    assert (folder / bob.stored_name).exists()
    bob_data = collect_person(ledger, account_id=bob.account_id, phone_hash=None)
    assert len(bob_data["decisions"]) == 2 and bob.token in bob_data["decisions"][0]["excerpt"]
    assert bob_data["cases"][0]["contact"] == bob.contact
    still = find_traces(ledger, needles=bob.needles(), attachments_dir=folder, vault_path=vault.path)
    for needle in bob.needles():
        assert any(repr(needle) in hit for hit in still), needle
    # a second erasure of the same person finds nothing left to erase
    with pytest.raises(PersonNotFound):
        erase_person(ledger, account_id=alice.account_id, phone_hash=None, attachments_dir=folder, vault=vault,
                     actor="dpo", case_id=None)
