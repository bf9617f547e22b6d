"""The portal in a real browser (Playwright's sync API driving Debian's chromium) against a real server
(uvicorn in a thread, temp SQLite ledger). Each journey saves full-page screenshots to
``$HEGUI_SCREENSHOTS`` (default ``test-artifacts/screenshots/``)."""

from __future__ import annotations

import logging
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
SMS_LINE = re.compile(r"SMS to (\S+): code (\d+) \((\w+)\)")

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no chromium at {CHROMIUM}: browser tests skipped", allow_module_level=True)


class SMSLog(logging.Handler):
    """Keeps the codes the ``log`` SMS sender writes to ``hegui.sms`` (the server runs in this process)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.codes: list[tuple[str, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        m = SMS_LINE.search(record.getMessage())
        if m:
            self.codes.append((m.group(1), m.group(2), m.group(3)))


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = Path(os.environ.get("HEGUI_SCREENSHOTS") or ROOT / "test-artifacts" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("portal-browser")
    cfg = write_config(folder, {
        "gateway": {"admin_key": ADMIN_KEY},
        "labeling": {"explicit": False},
        "upstreams": [{"name": "demo", "base_url": "demo", "models": ["*"]}],
        "accounts": {"otp": {"resend_after_seconds": 0}},
        "cases": {"attachments_dir": "attachments"},
        "portal": {"texts": {"filing_number": "Beijing-WangXinSuan-20250001"}},
    })
    sms = SMSLog()
    logger = logging.getLogger("hegui.sms")
    logger.addHandler(sms)
    try:
        with ledger_for("sqlite", folder, None) as ledger:
            app = create_app(cfg, moderator=make_moderator({"赌博": "A1h"}), ledger=ledger)
            with serve(app) as url:
                yield {"url": url, "ledger": ledger, "cfg": cfg, "sms": sms}
    finally:
        logger.removeHandler(sms)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_a_complaint_is_answered_and_the_person_reads_the_reply(site: dict[str, Any], browser: Any,
                                                                 shots: Path) -> None:
    page = browser.new_page(viewport={"width": 1024, "height": 800})
    page.goto(site["url"] + "/")
    assert page.url.endswith("/about")
    assert "Beijing-WangXinSuan-20250001" in page.inner_text("main")
    page.screenshot(path=str(shots / "01-about.png"), full_page=True)
    page.click("text=投诉与举报 >> nth=0")
    page.check("#kind-report")
    page.select_option("#f-category", "illegal")
    page.fill("#f-description", "回答里出现了赌博网站的推广链接。<script>alert(1)</script>")
    page.fill("#f-reference", "dec_0123456789abcdef")
    page.screenshot(path=str(shots / "02-complaint-filled.png"), full_page=True)
    page.click("button[type=submit]")
    code = page.inner_text("#case-code").strip()
    assert re.fullmatch(r"HG(-[0-9A-Z]{4}){5}", code)
    page.screenshot(path=str(shots / "03-complaint-received.png"), full_page=True)

    cases = CaseStore(site["ledger"], site["cfg"].cases)
    found = cases.by_code(code)
    assert found is not None and found.kind == "report"
    cases.reply(found.id, "我们已删除该内容，并封禁了相关账号。", actor="reviewer")

    page.goto(site["url"] + "/cases")
    page.fill("#f-code", code.lower())
    page.click("button[type=submit]")
    assert page.inner_text("#case-reply") == "我们已删除该内容，并封禁了相关账号。"
    assert page.inner_text("#case-status") == "已答复"
    assert "<script>alert(1)</script>" in page.inner_text("#case-description")  # shown as text, not run
    page.screenshot(path=str(shots / "04-case-replied.png"), full_page=True)
    page.goto(site["url"] + "/cases/" + code + "?lang=en")
    assert page.inner_text("#case-status") == "answered"
    page.screenshot(path=str(shots / "05-case-replied-en.png"), full_page=True)
    page.close()


def test_a_pi_request_by_phone_and_sms_code(site: dict[str, Any], browser: Any, shots: Path) -> None:
    page = browser.new_page(viewport={"width": 1024, "height": 800})
    page.goto(site["url"] + "/pi-requests/new")
    page.fill("#f-phone", "13800138000")
    page.screenshot(path=str(shots / "10-pi-phone.png"), full_page=True)
    page.click("button[type=submit]")
    assert "138****8000" in page.inner_text("main")
    sent = [c for c in site["sms"].codes if c[0] == "138****8000" and c[2] == "pi_request"]
    assert sent, "no SMS code was logged"
    page.fill("#f-phone", "13800138000")
    page.fill("#f-code", sent[-1][1])
    page.select_option("#f-action", "delete")
    page.fill("#f-details", "请删除我 2025 年 3 月的全部对话记录。")
    page.screenshot(path=str(shots / "11-pi-verify.png"), full_page=True)
    page.click("button[type=submit]")
    code = page.inner_text("#case-code").strip()
    assert re.fullmatch(r"HG(-[0-9A-Z]{4}){5}", code)
    page.screenshot(path=str(shots / "12-pi-received.png"), full_page=True)
    view = CaseStore(site["ledger"], site["cfg"].cases).by_code(code)
    assert view is not None and (view.kind, view.pi_action) == ("pi_request", "delete")
    page.close()


def test_the_complaint_form_on_a_phone(site: dict[str, Any], browser: Any, shots: Path) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 812}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True)
    page = context.new_page()
    page.goto(site["url"] + "/complaints/new")
    page.screenshot(path=str(shots / "20-phone-complaint.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    for field in ("f-category", "f-description", "f-reference", "f-attachment", "f-contact"):
        label = page.locator(f"label[for={field}]")
        assert label.count() == 1 and label.inner_text().strip(), field
    # an error is announced next to its field and the page still fits
    page.click("button[type=submit]")
    assert page.get_attribute("#f-description", "aria-invalid") == "true"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(shots / "21-phone-complaint-errors.png"), full_page=True)
    page.goto(site["url"] + "/about")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(shots / "22-phone-about.png"), full_page=True)
    context.close()


def test_no_script_runs_and_none_is_needed(site: dict[str, Any], browser: Any) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(site["url"] + "/cases")
    page.fill("#f-code", "HG-0000-0000-0000-0000-0000")
    page.click("button[type=submit]")
    assert "没有与此查询码对应的记录" in page.content()
    context.close()
