"""The authority report opens: the DOCX parses back with python-docx (title, Chinese text, the decisions
table), the PDF's text extracts with the Chinese intact (pypdf and pdftotext), the JSON round-trips, the
chart is a real picture; and a report that cannot be written leaves nothing behind."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docx
import pytest
from docx.oxml.ns import qn
from PIL import Image
from pypdf import PdfReader

from hegui import taxonomy
from hegui.cases import incidents, report
from hegui.config import ProviderConfig
from hegui.ledger.records import DecisionRecord
from hegui.ledger.store import Ledger

TITLE = "生成赌博网站推广内容事件"
PROVIDER = ProviderConfig(name="示例人工智能科技有限公司")
START = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


@dataclass
class Built:
    ledger: Ledger
    incident_id: str
    decision_ids: list[str]
    facts: report.Report
    folder: Path
    seconds: float


def _record(ledger: Ledger, i: int) -> str:
    did = uuid.uuid4().hex
    ledger.record_decision(DecisionRecord(
        decision_id=did, request_id=f"req{i}", account_id="acc_x", api_key_id=None, model="m",
        direction="output" if i % 2 else "input", scene="chat", action=("block", "refuse", "mask")[i % 3],
        risks=["A1h"] if i % 2 else ["A2c"], findings=[], detector_ms={},
        excerpt=f"第{i}条：赌博网站推广 <script>alert(1)</script>", created_at=START + timedelta(minutes=50 * i),
        flags={"training_opt_out": True} if i == 0 else None))
    return did


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    import time

    folder = tmp_path_factory.mktemp("report")
    ledger = Ledger.open(f"sqlite:///{folder / 'ledger.db'}")
    ids = [_record(ledger, i) for i in range(12)]
    iid = incidents.open_incident(ledger, title=TITLE, summary="用户诱导模型生成赌博网站推广文案，共 12 条。",
                                  decision_ids=ids, case_id="cs_0123456789abcdef", actor="staff:li")
    incidents.record_containment(ledger, iid, "已停止生成、传输，并删除全部相关输出。", actor="staff:li")
    incidents.export_samples(ledger, iid, folder / "samples.jsonl", actor="staff:li")
    incidents.record_rectification(ledger, iid, "词库新增 3 个词条；安排模型优化训练。", actor="staff:wang")
    incidents.mark_reported(ledger, iid, "上海市网信办", "沪网信〔2025〕12号", actor="staff:wang")
    t0 = time.perf_counter()
    facts = report.build_report(ledger, iid, PROVIDER, None, now=START + timedelta(days=1))
    report.write_report(facts, folder / "out")
    seconds = time.perf_counter() - t0
    print(f"report of {len(ids)} decisions built and written (json, docx, pdf) in {seconds:.2f}s")
    try:
        yield Built(ledger, iid, ids, facts, folder / "out", seconds)
    finally:
        ledger.close()


def path(b: Built, fmt: str) -> Path:
    return b.folder / f"incident-{b.incident_id}.{fmt}"


def test_the_folder_holds_every_format_and_the_chart(built: Built) -> None:
    assert sorted(p.name for p in built.folder.iterdir()) == sorted(
        ["chart.png", "chart.svg", *(f"incident-{built.incident_id}.{f}" for f in ("json", "docx", "pdf"))])
    assert [p.name for p in built.folder.parent.iterdir() if p.name.startswith(".")] == []


def test_the_docx_parses_back_with_title_chinese_text_and_the_decisions_table(built: Built) -> None:
    document = docx.Document(str(path(built, "docx")))
    paragraphs = [p.text for p in document.paragraphs]
    assert paragraphs[0] == "生成式人工智能服务安全事件报告" and paragraphs[1] == TITLE
    assert "已停止生成、传输，并删除全部相关输出。" in paragraphs
    assert "词库新增 3 个词条；安排模型优化训练。" in paragraphs
    assert any("导出 11 条，因用户选择退出训练而排除 1 条" in p for p in paragraphs)
    facts, decisions, steps = document.tables
    fact_rows = {r.cells[0].text: r.cells[1].text for r in facts.rows}
    assert fact_rows["服务提供者"] == "示例人工智能科技有限公司"
    assert fact_rows["报告对象"] == "上海市网信办（文号 沪网信〔2025〕12号）"
    assert [c.text for c in decisions.rows[0].cells][:4] == ["决定编号", "时间", "方向", "处置"]
    body = decisions.rows[1:]
    assert [r.cells[0].text for r in body] == built.decision_ids
    assert body[0].cells[1].text == "2025-03-03 09:00:00"  # local time (Asia/Shanghai)
    assert (body[0].cells[3].text, body[1].cells[3].text, body[2].cells[3].text) == ("拦截", "拒绝", "遮蔽")
    assert body[1].cells[4].text == taxonomy.BY_CODE["A1h"].name_zh == "其他法律、行政法规禁止的内容"
    assert body[0].cells[5].text.startswith("第0条：赌博网站推广")
    assert [r.cells[1].text for r in steps.rows[1:]] == ["立案", "停止与消除", "导出整改训练样本", "模型整改",
                                                         "向主管部门报告"]
    # the East-Asian font is set, so Word does not fall back to a font without these glyphs
    east_asia = document.styles["Normal"].element.rPr.rFonts.get(qn("w:eastAsia"))
    assert east_asia and east_asia == document.styles["Heading 1"].element.rPr.rFonts.get(qn("w:eastAsia"))
    pictures = [r for r in document.part.rels.values() if "image" in r.reltype]
    assert len(pictures) == 1 and pictures[0].target_part.blob == built.facts.chart_png


def test_the_pdf_text_extracts_with_the_chinese_intact(built: Built) -> None:
    reader = PdfReader(str(path(built, "pdf")))
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    for needle in (TITLE, "人工智能", "生成式人工智能服务安全事件报告", "示例人工智能科技有限公司",
                   "已停止生成、传输，并删除全部相关输出", "上海市网信办", "拦截", "处置过程"):
        assert needle in text, needle
    assert "\ufffd" not in text and "□" not in text
    assert "<script>alert(1)</script>" in text.replace("\n", "")  # escaped as text, not markup
    if shutil.which("pdftotext"):
        out = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path(built, "pdf")), "-"], capture_output=True,
                             check=True).stdout.decode("utf-8")
        assert TITLE in out and "人工智能" in out
    fonts: set[str] = set()
    for page in reader.pages:
        resources: Any = page["/Resources"]
        fonts.update(str(f.get_object()["/BaseFont"]) for f in resources.get("/Font", {}).values())
    assert any("WenQuanYi" in f or "Micro" in f or "CJK" in f for f in fonts), fonts  # the CJK font is embedded


def test_the_json_round_trips(built: Built) -> None:
    data = json.loads(path(built, "json").read_text(encoding="utf-8"))
    assert data == json.loads(json.dumps(built.facts.to_dict(), ensure_ascii=False))
    assert data["incident"]["title"] == TITLE and data["incident"]["status"] == "reported"
    assert [d["decision_id"] for d in data["decisions"]] == built.decision_ids
    assert data["counts_by_action"] == {"block": 4, "refuse": 4, "mask": 4}
    assert data["counts_by_risk"] == {"A2c": 6, "A1h": 6}
    assert data["decisions"][0]["training_opt_out"] is True
    assert [e["kind"] for e in data["timeline"]] == ["incident.opened", "incident.contained",
                                                      "incident.samples_exported", "incident.rectified",
                                                      "incident.reported"]
    # 12 decisions 50 minutes apart span 9 h 10 min: hourly bins, gaps kept
    assert data["chart"]["unit"] == "hour" and len(data["chart"]["bins"]) == 10
    assert sum(sum(b["counts"].values()) for b in data["chart"]["bins"]) == 12


def test_the_chart_is_a_real_picture(built: Built) -> None:
    png = (built.folder / "chart.png").read_bytes()
    image = Image.open(io.BytesIO(png))
    assert image.size[0] >= 800 and image.size[1] >= 300
    colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 20  # bars, text, legend: not a blank canvas
    svg = (built.folder / "chart.svg").read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and svg.count("<path") > 20
    assert len(svg) > 20_000


def test_days_become_daily_bins() -> None:
    times = [datetime(2025, 3, 1, 10, tzinfo=UTC), datetime(2025, 3, 5, 10, tzinfo=UTC)]
    bins, unit = report._bins(times, ["block", "mask"])
    assert unit == "day" and [b["label"] for b in bins] == [f"2025-03-0{d}" for d in range(1, 6)]
    assert bins[0]["counts"] == {"block": 1} and bins[2]["counts"] == {} and bins[4]["counts"] == {"mask": 1}


def test_no_chinese_font_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(report.ReportError, match=r"cases.report_font: .*nope.ttf: no such font file.*"
                                                 r"fonts-wqy-microhei"):
        report.find_font(tmp_path / "nope.ttf")
    monkeypatch.setattr(report, "_fontconfig_zh", lambda: None)
    with pytest.raises(report.ReportError) as info:
        report.find_font(None)
    assert str(info.value) == ("no Chinese font found for the incident report: set cases.report_font to a CJK "
                               "font file (.ttf/.ttc/.otf), or install one (Debian: apt install fonts-wqy-microhei)")


def test_the_configured_font_is_used(built: Built) -> None:
    found = report.find_font(None)
    assert report.find_font(found) == found and found.is_file()
    assert built.facts.font == str(found)


def test_a_failing_writer_leaves_nothing(built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(r: Any, p: Path) -> None:
        p.write_bytes(b"%PDF-half")
        raise OSError("disk full")

    monkeypatch.setattr(report, "write_pdf", broken)
    with pytest.raises(OSError, match="disk full"):
        report.write_report(built.facts, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
