"""Staff lexicon and allow-list entries: stored with their events, and in force on running gateways
(one process, and two ``hegui serve`` on one PostgreSQL database) within ~2 s, streams included."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from gateway_support import TEST_KEY, add_test_keys, free_port, ledger_for, say64, serve, write_config
from hegui.cases.config import CasesConfig
from hegui.cases.lexicon_entries import (
    EntryNotFound,
    EntryRefused,
    LexiconSync,
    add_entry,
    entries,
    remove_entry,
    snapshot,
    version,
)
from hegui.cases.store import CaseStore
from hegui.cli import app as cli_app
from hegui.detectors.lexicon import ExtraBlockEntry, ExtraEntries, LexiconConfig, LexiconDetector
from hegui.errors import ConfigError
from hegui.gateway.app import create_app
from hegui.ledger.events import events
from hegui.ledger.store import Ledger
from hegui.moderation import NORMALIZE_LOOKAHEAD
from hegui.text import normalize

LONG_ENTRY = "blue smurf pills sold online"
"""Five words, 28 normalised characters: longer than any starter pattern (13)."""


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture()
def ledger(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    pg = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    with ledger_for(backend, tmp_path, pg) as led:
        yield led


def wait_for(condition: Callable[[], bool], seconds: float) -> float:
    """Seconds until ``condition`` held; fails after ``seconds``."""
    t0 = time.monotonic()
    while not condition():
        if time.monotonic() - t0 > seconds:
            raise AssertionError(f"not within {seconds} s")
        time.sleep(0.02)
    return time.monotonic() - t0


# -- the store -------------------------------------------------------------------------------------

def test_add_list_remove_with_events_and_version(ledger: Ledger) -> None:
    v0 = version(ledger)
    case_id, _ = CaseStore(ledger, CasesConfig()).open_case("complaint", category="illegal", description="x")
    block = add_entry(ledger, list="block", text="蓝精灵", risk="a.1.h", note="黑话", case_id=case_id,
                      actor="staff_1")
    allow = add_entry(ledger, list="allow", text="冰毒检测试剂", risk=None, note="", case_id=None, actor="staff_2")
    assert block.startswith("lx_") and allow.startswith("lx_") and block != allow
    assert version(ledger) == v0 + 2
    rows = {e.id: e for e in entries(ledger)}
    assert rows[block].risk == "A1h" and rows[block].case_id == case_id and rows[block].added_by == "staff_1"
    assert rows[allow].risk is None and rows[allow].list == "allow"
    v, extra = snapshot(ledger)
    assert v == v0 + 2
    assert extra == ExtraEntries(block=(ExtraBlockEntry(block, "蓝精灵", "A1h"),), allow=("冰毒检测试剂",))

    remove_entry(ledger, block, actor="staff_3")
    assert version(ledger) == v0 + 3
    assert [e.id for e in entries(ledger)] == [allow]
    removed = {e.id: e for e in entries(ledger, include_removed=True)}[block]
    assert removed.removed_by == "staff_3" and removed.removed_at is not None and not removed.active
    # the same text may come back once the old entry is out of force
    again = add_entry(ledger, list="block", text="蓝精灵", risk="A1h", case_id=None, actor="staff_1")
    assert again != block

    evs = events(ledger, kind_prefix="lexicon.")
    assert [e.kind for e in evs] == ["lexicon.entry_added", "lexicon.entry_added", "lexicon.entry_removed",
                                     "lexicon.entry_added"]
    first = evs[0].data
    assert first == {"entry": block, "list": "block", "risk": "A1h", "case": case_id,
                     "text_sha256": hashlib.sha256("蓝精灵".encode()).hexdigest()}
    assert evs[2].data["entry"] == block and evs[2].actor == "staff_3"
    # the chain keeps the hash, not the text (an entry may name a person)
    assert all("蓝精灵" not in json.dumps(e.data, ensure_ascii=False) for e in evs)
    assert ledger.verify().ok


@pytest.mark.parametrize("kwargs, message", [
    ({"text": "   "}, "text: empty after normalisation"),
    ({"text": "\u200b\u200c"}, "text: empty after normalisation"),
    ({"text": "一二三四五六七八九十一"}, "standard's keyword length"),
    ({"text": "one two three four five six"}, "standard's keyword length"),
    ({"text": "x" * 201}, "longer than 200"),
    ({"risk": None}, "risk: a block entry needs a risk code"),
    ({"risk": "A9z"}, "unknown risk code 'A9z'"),
    ({"list": "allow", "risk": "A1h"}, "an allow entry takes no risk"),
    ({"list": "deny"}, "list: 'deny' is not one of block, allow"),
    ({"case_id": "cs_nosuchcase"}, "case: no case cs_nosuchcase"),
    ({"actor": " "}, "actor: must have 1 to 128"),
    ({"note": "n" * 501}, "note: longer than 500"),
])
def test_bad_entries_are_refused_and_nothing_is_written(ledger: Ledger, kwargs: dict[str, Any],
                                                        message: str) -> None:
    args: dict[str, Any] = {"list": "block", "text": "蓝精灵", "risk": "A1h", "note": "", "case_id": None,
                            "actor": "staff_1", **kwargs}
    v0, n0 = version(ledger), len(events(ledger, kind_prefix="lexicon."))
    with pytest.raises(EntryRefused, match=message.replace("(", r"\(")):
        add_entry(ledger, **args)
    assert version(ledger) == v0 and len(events(ledger, kind_prefix="lexicon.")) == n0
    assert entries(ledger, include_removed=True) == []


def test_duplicates_are_refused_after_normalisation(ledger: Ledger) -> None:
    first = add_entry(ledger, list="block", text="蓝精灵", risk="A1h", actor="s")
    for same in ("蓝 精 灵", "藍精靈", "蓝\u200b精灵"):
        with pytest.raises(EntryRefused, match=f"already has it \\(entry {first}\\)"):
            add_entry(ledger, list="block", text=same, risk="A1f", actor="s")
    # the other list is a different list
    add_entry(ledger, list="allow", text="蓝精灵", risk=None, actor="s")
    assert len(entries(ledger)) == 2


def test_remove_unknown_or_twice(ledger: Ledger) -> None:
    with pytest.raises(EntryNotFound, match="no lexicon entry lx_nope"):
        remove_entry(ledger, "lx_nope", actor="s")
    entry = add_entry(ledger, list="allow", text="打击蓝精灵", risk=None, actor="s")
    remove_entry(ledger, entry, actor="s")
    v = version(ledger)
    with pytest.raises(EntryNotFound, match="already removed"):
        remove_entry(ledger, entry, actor="s")
    assert version(ledger) == v


# -- the detector ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def starter() -> LexiconDetector:
    return LexiconDetector.from_config(LexiconConfig(), ".")


def test_detector_takes_extra_entries_beside_its_files(starter: LexiconDetector) -> None:
    det = LexiconDetector(sources=starter.sources)
    assert det.detect(normalize("蓝精灵到货")) == []
    hits = [f for f in det.detect(normalize("冰毒检测试剂")) if f.risk == "A1h"]
    assert hits, "the starter list must catch 冰毒 (the allow test below relies on it)"
    before = det.holdback()

    det.use_entries(ExtraEntries(block=(ExtraBlockEntry("lx_1", "蓝精灵", "A1h"),
                                        ExtraBlockEntry("lx_2", LONG_ENTRY, "A1h")),
                                 allow=("冰毒检测试剂",)))
    found = det.detect(normalize("藍 精靈到货"))  # same normalisation as the files' entries
    assert [(f.risk, f.evidence_id, f.kind, f.start, f.end) for f in found] == [
        ("A1h", "lexicon:database:lx_1", "database", 0, 4)]
    wl, entry = det.entry("lexicon:database:lx_1") or (None, None)
    assert wl is not None and entry is not None and entry.word == "蓝精灵"
    assert det.detect(normalize("冰毒检测试剂")) == []  # the staff allow phrase suppresses the starter hit
    assert det.detect(normalize("冰毒"))  # only inside it
    assert det.holdback() == len(LONG_ENTRY) > before
    assert "database" in det.stats().lists

    det.reload()  # a file reload keeps the staff entries
    assert det.detect(normalize("蓝精灵"))
    det.use_entries(ExtraEntries())
    assert det.detect(normalize("蓝精灵")) == [] and det.holdback() == before


def test_a_file_list_named_database_is_refused_when_entries_come(tmp_path: Path) -> None:
    (tmp_path / "database.tsv").write_text("冰毒\tA1h\n", encoding="utf-8")
    det = LexiconDetector.from_paths([tmp_path / "database.tsv"])
    with pytest.raises(ConfigError, match="two lists are named 'database'"):
        det.use_entries(ExtraEntries(block=(ExtraBlockEntry("lx_1", "蓝精灵", "A1h"),)))
    assert det.detect(normalize("冰毒")) and det.extra_entries == ExtraEntries()  # the old state stays


def test_sync_failure_keeps_the_lexicon_and_logs_one_line(ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    applied: list[ExtraEntries] = []
    fail = True

    def apply(extra: ExtraEntries) -> None:
        if fail:
            raise ConfigError("words.tsv:3: unknown risk")
        applied.append(extra)

    sync = LexiconSync(ledger, apply, 0.05)
    sync.load()  # nothing stored: no rebuild at startup
    assert applied == [] and sync.version == version(ledger)
    add_entry(ledger, list="block", text="蓝精灵", risk="A1h", actor="s")

    async def twice() -> tuple[bool, bool]:
        return await sync.refresh(), await sync.refresh()

    assert asyncio.run(twice()) == (False, False)
    warnings = [r for r in caplog.records if "staff entries not reloaded" in r.getMessage()]
    assert len(warnings) == 1 and "words.tsv:3: unknown risk" in warnings[0].getMessage()
    assert sync.version != version(ledger)
    fail = False
    sync._retry_at = 0.0  # as if RETRY_SECONDS had passed
    assert asyncio.run(sync.refresh()) is True
    assert applied[-1].block[0].text == "蓝精灵" and sync.version == version(ledger) and sync.last_error is None


# -- a running gateway -----------------------------------------------------------------------------

def test_running_gateway_applies_entries_within_two_seconds(ledger: Ledger, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # PII off: its detector holds back 73 characters, so the lexicon's hold-back decides the stream's here
    cfg = write_config(tmp_path, {"labeling": {"explicit": False}, "injection": {"enabled": False},
                                  "pii": {"enabled": False}})
    assert cfg.lexicon.db_sync_seconds == 1.0
    add_test_keys(ledger)
    app = create_app(cfg, ledger=ledger)
    gw = app.state.gateway
    with serve(app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key=TEST_KEY, max_retries=0)

        def ask(text: str) -> str | None:
            resp = client.chat.completions.create(model="hegui-demo", messages=[{"role": "user", "content": text}])
            return resp.choices[0].finish_reason

        def stream(text: str) -> tuple[str, str | None]:
            chunks = list(client.chat.completions.create(
                model="hegui-demo", messages=[{"role": "user", "content": say64(text)}], stream=True))
            return "".join(c.choices[0].delta.content or "" for c in chunks), chunks[-1].choices[0].finish_reason

        slang = "/say 新出现的黑话叫做蓝精灵"
        assert ask(slang) == "stop"  # and now its verdict is cached
        entry = add_entry(ledger, list="block", text="蓝精灵", risk="A1h", case_id=None, actor="staff_1")
        took = wait_for(lambda: ask(slang) == "content_filter", 2.0)
        remove_entry(ledger, entry, actor="staff_1")
        wait_for(lambda: ask(slang) == "stop", 2.0)

        meth = "/say 冰毒检测试剂"
        assert ask(meth) == "content_filter"  # a starter-lexicon hit
        add_entry(ledger, list="allow", text="冰毒检测试剂", risk=None, actor="staff_1")
        wait_for(lambda: ask(meth) == "stop", 2.0)
        assert ask("/say 买冰毒") == "content_filter"  # the allow phrase covers only itself

        before = gw.moderator.holdback()
        add_entry(ledger, list="block", text=LONG_ENTRY, risk="A1h", actor="staff_1")
        wait_for(lambda: gw.moderator.holdback() == len(LONG_ENTRY) + NORMALIZE_LOOKAHEAD, 2.0)
        assert gw.moderator.holdback() > before
        filler = "今天我们聊聊天气和城市的公园，" * 4
        received, finish = stream(filler + LONG_ENTRY.upper() + "，然后继续说别的事情。")
        assert finish == "content_filter"
        assert received.startswith("今天我们聊聊天气")  # the stream flowed up to the entry
        assert "blue" not in normalize(received).text  # held back whole: no word of it reached the client
        ms = app.state.lexicon_sync.last_reload_ms
    assert ms is not None and ms < 1000
    with capsys.disabled():
        print(f"\n[lexicon entries] block entry in force after {took:.2f} s; rebuild with the starter "
              f"lexicon: {ms:.1f} ms")
    assert ledger.verify().ok


def test_gateway_starts_with_the_stored_entries(ledger: Ledger, tmp_path: Path) -> None:
    add_entry(ledger, list="block", text="蓝精灵", risk="A1h", actor="staff_1")
    cfg = write_config(tmp_path, {"labeling": {"explicit": False}})
    add_test_keys(ledger)
    app = create_app(cfg, ledger=ledger)
    verdict = app.state.gateway.moderator.check("蓝精灵到货", direction="input", scene=cfg.gateway.default_scene)
    assert any(f.evidence_id.startswith("lexicon:database:lx_") for f in verdict.findings)


# -- CLI -------------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_entries_add_list_remove(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    Ledger.open(url).close()
    res = runner.invoke(cli_app, ["lexicon", "entries", "add", "蓝精灵", "--risk", "A1h", "--note", "黑话",
                                  "--actor", "staff_1", "--url", url])
    assert res.exit_code == 0, res.output
    entry = res.output.strip()
    assert entry.startswith("lx_")
    res = runner.invoke(cli_app, ["lexicon", "entries", "add", "打击蓝精灵", "--list", "allow", "--url", url])
    assert res.exit_code == 0, res.output
    listed = runner.invoke(cli_app, ["lexicon", "entries", "list", "--url", url])
    assert listed.exit_code == 0 and entry in listed.output and "打击蓝精灵" in listed.output
    assert "cli:" in listed.output  # the default actor
    res = runner.invoke(cli_app, ["lexicon", "entries", "remove", entry, "--actor", "staff_2", "--url", url])
    assert res.exit_code == 0 and res.output.strip() == f"removed {entry}"
    data = json.loads(runner.invoke(cli_app, ["lexicon", "entries", "list", "--all", "--json", "--url", url]).output)
    assert data["version"] == 3
    assert {e["id"]: e["removed_by"] for e in data["entries"]}[entry] == "staff_2"
    active = json.loads(runner.invoke(cli_app, ["lexicon", "entries", "list", "--json", "--url", url]).output)
    assert [e["text"] for e in active["entries"]] == ["打击蓝精灵"]


@pytest.mark.parametrize("args, message", [
    (["add", "蓝精灵"], "error: risk: a block entry needs a risk code"),
    (["add", "蓝精灵", "--list", "deny"], "error: --list: 'deny' is not one of block, allow"),
    (["add", "蓝精灵", "--risk", "A1h", "--case", "cs_x"], "error: case: no case cs_x"),
    (["remove", "lx_nope"], "error: no lexicon entry lx_nope"),
])
def test_cli_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    Ledger.open(url).close()
    res = runner.invoke(cli_app, ["lexicon", "entries", *args, "--url", url])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines == [message] or (len(lines) == 1 and lines[0].startswith(message)), res.output


# -- two `hegui serve` processes on one PostgreSQL database ----------------------------------------

@pytest.fixture()
def shared_db(postgres_url: str) -> Iterator[str]:
    import uuid

    name = "hegui_lexicon_" + uuid.uuid4().hex[:10]
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def test_two_serve_processes_pick_up_an_entry_within_two_seconds(tmp_path: Path, shared_db: str) -> None:
    from test_accounts_replicas import start, stop

    cfg = tmp_path / "hegui.yaml"
    cfg.write_text(yaml.safe_dump({
        "ledger": {"url": shared_db},
        "labeling": {"explicit": False},
        "accounts": {"ladder": {"enabled": False}},
    }), encoding="utf-8")
    ledger = Ledger.open(shared_db)
    try:
        account = ledger.create_account("shared")
        _, key = ledger.create_api_key(account)
        ports = free_port(), free_port()
        procs = [start(cfg, ports[0]), start(cfg, ports[1])]
        try:
            body = {"model": "hegui-demo", "messages": [{"role": "user", "content": "/say 新出现的黑话叫做蓝精灵"}]}

            def finish(port: int) -> str:
                r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=10,
                               headers={"Authorization": f"Bearer {key}"})
                assert r.status_code == 200, r.text
                return str(r.json()["choices"][0]["finish_reason"])

            assert [finish(p) for p in ports] == ["stop", "stop"]
            add_entry(ledger, list="block", text="蓝精灵", risk="A1h", case_id=None, actor="staff_1")
            t0 = time.monotonic()
            pending = set(ports)
            while pending and time.monotonic() - t0 < 2.0:
                pending -= {p for p in pending if finish(p) == "content_filter"}
                time.sleep(0.02)
            elapsed = time.monotonic() - t0
            assert not pending, f"the entry did not reach every process within 2 s ({elapsed:.2f} s)"
        finally:
            for p in procs:
                stop(p)
    finally:
        ledger.close()
    with Ledger.open(shared_db, create=False) as after:
        assert after.verify().ok
