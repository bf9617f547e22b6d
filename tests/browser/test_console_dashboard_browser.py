"""The console dashboard in a real browser (Playwright's sync API driving Debian's chromium) against a
real server (uvicorn in a thread, temp SQLite ledger with seeded decisions): log in through the
form, read the chart elements' series back, switch the period, and save screenshots to
``$HEGUI_SCREENSHOTS`` (default ``test-artifacts/screenshots/``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from console_support import PASSWORD, console_config
from gateway_support import ledger_for, make_moderator, serve
from hegui.gateway.app import create_app
from hegui.ledger.records import DecisionRecord
from hegui.ledger.store import Ledger

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no chromium at {CHROMIUM}: browser tests skipped", allow_module_level=True)


def record(at: datetime, direction: str, action: str, risks: list[str]) -> DecisionRecord:
    return DecisionRecord(decision_id=uuid.uuid4().hex, request_id=uuid.uuid4().hex, account_id=None,
                          api_key_id=None, model="m", direction=direction, scene="default", action=action,
                          risks=risks, findings=[], detector_ms={"lexicon": 0.1}, excerpt="x", created_at=at)


def seed(ledger: Ledger, now: datetime) -> None:
    """Per hour h hours ago (h = 0..5): h+1 allowed inputs, h refused inputs (A1h), one masked output (P1)."""
    top = now.replace(minute=0, second=0, microsecond=0)
    for h in range(6):
        at = top - timedelta(hours=h) + timedelta(seconds=1)
        for _ in range(h + 1):
            ledger.record_decision(record(at, "input", "allow", []))
        for _ in range(h):
            ledger.record_decision(record(at, "input", "refuse", ["A1h"]))
        ledger.record_decision(record(at, "output", "mask", ["P1"]))


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = Path(os.environ.get("HEGUI_SCREENSHOTS") or ROOT / "test-artifacts" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("console-dashboard-browser")
    cfg = console_config(folder)
    with ledger_for("sqlite", folder, None) as ledger:
        app = create_app(cfg, moderator=make_moderator({"赌博": "A1h"}), ledger=ledger)
        app.state.gateway.console.staff.create("viewer1", PASSWORD, "viewer", display_name="值班员 Viewer",
                                               actor="test")
        # the hour must not roll over between seeding and reading; seed just after a rollover
        now = datetime.now(UTC)
        if now.minute == 59 and now.second > 50:
            import time

            time.sleep(12)
            now = datetime.now(UTC)
        seed(ledger, now)
        with serve(app) as url:
            yield {"url": url, "ledger": ledger}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_the_dashboard_charts_hold_the_series(site: dict[str, Any], browser: Any, shots: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.goto(site["url"] + "/console")
    assert "/console/login" in page.url
    page.fill("#username", "viewer1")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(site["url"] + "/console")

    assert page.inner_text("#card-decisions .value") == "42"  # 21 allowed + 15 refused inputs + 6 outputs
    assert page.inner_text("#card-refusal-input .value") == "41.7%"  # 15 / 36
    allow = page.get_attribute("#chart-actions g[data-series=allow]", "data-values")
    refuse = page.get_attribute("#chart-actions g[data-series=refuse]", "data-values")
    mask = page.get_attribute("#chart-actions g[data-series=mask]", "data-values")
    assert allow is not None and refuse is not None and mask is not None
    assert allow.split(",")[-6:] == ["6", "5", "4", "3", "2", "1"]
    assert refuse.split(",")[-6:] == ["5", "4", "3", "2", "1", "0"]
    assert mask.split(",")[-6:] == ["1"] * 6 and mask.split(",")[:18] == ["0"] * 18
    # the bars are drawn: one rect per non-zero bucket, each with its own tooltip title
    assert page.locator("#chart-actions g[data-series=refuse] rect").count() == 5
    assert page.locator("#chart-risks g[data-series=decisions]").get_attribute("data-labels") == "A1h,P1"
    assert page.locator("#chart-risks g[data-series=decisions]").get_attribute("data-values") == "15,6"
    rates = page.get_attribute("#chart-refusals g[data-series=input]", "data-values")
    assert rates is not None and rates.split(",")[-1] == "0.0000" and rates.split(",")[-6] == "0.4545"
    assert page.locator("#chart-refusals g[data-series=input] circle").count() == 6
    assert (page.locator("#chart-actions > title").first.text_content() or "").startswith("决定")
    # the same numbers in a table under <details>
    page.click("#h-risks + svg + details summary")
    assert page.locator("#table-risks tbody tr").first.inner_text().split() == ["A1h", "15"]
    page.screenshot(path=str(shots / "console-dashboard-24h.png"), full_page=True)

    page.select_option("#period", "7d")
    page.click("form.card button[type=submit]")
    page.wait_for_url("**/console?period=7d")
    week = page.get_attribute("#chart-actions g[data-series=allow]", "data-values")
    assert week is not None and len(week.split(",")) == 7 and sum(int(v) for v in week.split(",")) == 21
    page.screenshot(path=str(shots / "console-dashboard-7d.png"), full_page=True)
    # no CSP violations, no script errors; the browser's own favicon probe may 404
    assert [u for u in missing if not u.endswith("/favicon.ico")] == []
    assert [e for e in errors if "404" not in e] == []
    page.close()
