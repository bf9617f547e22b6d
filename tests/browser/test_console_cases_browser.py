"""A reviewer answers a portal case in the console and the person sees it, in a real browser
(Playwright's sync API driving Debian's chromium) against a real server (uvicorn in a thread, temp
SQLite ledger). Full-page screenshots of each step go to ``$HEGUI_SCREENSHOTS`` (default
``test-artifacts/screenshots/``), named ``console-cases-*.png``."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway_support import ADMIN_KEY, ledger_for, make_moderator, serve, write_config
from hegui.cases.store import CaseStore
from hegui.gateway.app import create_app

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic"]
PASSWORD = "reviewer password 1"
REPLY = "您好，我们已删除该内容，并对相关账号作出处理。感谢您的举报。"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no chromium at {CHROMIUM}: browser tests skipped", allow_module_level=True)


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = Path(os.environ.get("HEGUI_SCREENSHOTS") or ROOT / "test-artifacts" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("console-cases-browser")
    cfg = write_config(folder, {
        "gateway": {"admin_key": ADMIN_KEY},
        "labeling": {"explicit": False},
        "upstreams": [{"name": "demo", "base_url": "demo", "models": ["*"]}],
        "cases": {"attachments_dir": "attachments"},
    })
    with ledger_for("sqlite", folder, None) as ledger:
        app = create_app(cfg, moderator=make_moderator({"赌博": "A1h"}), ledger=ledger)
        app.state.gateway.console.staff.create("li.reviewer", PASSWORD, "reviewer", display_name="李审核",
                                               actor="test")
        with serve(app) as url:
            yield {"url": url, "ledger": ledger, "cfg": cfg}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_a_reviewer_answers_a_portal_case_and_the_person_sees_it(site: dict[str, Any], browser: Any,
                                                                  shots: Path) -> None:
    url = site["url"]
    person = browser.new_context(viewport={"width": 1024, "height": 800})
    p = person.new_page()
    p.goto(url + "/complaints/new")
    p.check("#kind-complaint")
    p.select_option("#f-category", "illegal")
    p.fill("#f-description", "助手的回答里推荐了赌博网站。<b>请处理</b>")
    p.screenshot(path=str(shots / "console-cases-01-complaint-filled.png"), full_page=True)
    p.click("button[type=submit]")
    code = p.inner_text("#case-code").strip()
    assert re.fullmatch(r"HG(-[0-9A-Z]{4}){5}", code)
    p.screenshot(path=str(shots / "console-cases-02-complaint-received.png"), full_page=True)
    found = CaseStore(site["ledger"], site["cfg"].cases).by_code(code)
    assert found is not None
    case_id = found.id

    staff = browser.new_context(viewport={"width": 1280, "height": 900})  # its own cookies
    s = staff.new_page()
    s.goto(url + "/console")
    assert "/console/login" in s.url
    s.fill("#username", "li.reviewer")
    s.fill("#password", PASSWORD)
    s.screenshot(path=str(shots / "console-cases-03-login.png"), full_page=True)
    s.click("button[type=submit]")
    s.goto(url + "/console/cases")
    assert case_id in s.inner_text("main")
    s.screenshot(path=str(shots / "console-cases-04-case-list.png"), full_page=True)
    s.click(f"text={case_id}")
    assert "助手的回答里推荐了赌博网站。<b>请处理</b>" == s.inner_text("#case-description")  # as text
    s.select_option("#assignee", "me")
    s.click("form[action$='/assign'] button")
    assert "Assigned" in s.inner_text(".notice")
    s.fill("#reply-text", REPLY)
    s.screenshot(path=str(shots / "console-cases-05-case-reply-typed.png"), full_page=True)
    s.click("form[action$='/reply'] button")
    assert "Reply sent" in s.inner_text(".notice")
    assert s.inner_text("#case-reply") == REPLY and s.inner_text("#case-status") == "replied"
    s.screenshot(path=str(shots / "console-cases-06-case-replied.png"), full_page=True)
    staff.close()

    p.goto(url + "/cases")
    p.fill("#f-code", code)
    p.click("button[type=submit]")
    assert p.inner_text("#case-reply") == REPLY
    assert p.inner_text("#case-status") == "已答复"
    p.screenshot(path=str(shots / "console-cases-07-person-reads-reply.png"), full_page=True)
    person.close()
    assert site["ledger"].verify().ok
