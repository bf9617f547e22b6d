"""``hegui filing export``: the LLM filing package (``spec/regulation.md`` §3.6) as one folder and a
ZIP of it.

Parts and where each comes from:

- ``安全评估报告.docx`` / ``.pdf``: the clause verdicts (:mod:`hegui.filing.clauses`), the run's metrics
  and charts, the annotation and audit summaries, the three signature blocks;
- ``拦截关键词列表.xlsx``: the keyword library, by ``hegui lexicon export``'s own functions;
- ``评估测试题.xlsx``: every answer of the run with each judge's verdict;
- ``评估结果/``: the run's manifest, metrics and charts, copied;
- ``语料标注/``: the annotation summary (JSON) and the published rules texts (``--rules``);
- ``语料审计/summary.json``: the corpus audit summary, when given;
- ``服务协议.md`` / ``隐私政策.md``: the published texts (the ledger's, else hegui's demo texts, marked);
- ``拟公示内容.md`` and ``算法安全自评估报告.docx``: for the algorithm filing;
- ``clauses.json`` and ``manifest.json`` (every file with its SHA-256, and the clause verdicts).

The folder is built in a temporary folder beside ``--out`` and renamed into place, and the ZIP is
written to a temporary file and renamed, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from hegui import taxonomy
from hegui.assessment.bank import TOPICS
from hegui.errors import UserError
from hegui.filing.clauses import CLAUSE_IDS, ClauseResult, counts, evaluate
from hegui.filing.inputs import FilingInputs, digest, dumps
from hegui.filing.report import JUDGE_ZH, KIND_ZH, build_report, new_document, write_docx, write_pdf

REPORT_DOCX = "安全评估报告.docx"
REPORT_PDF = "安全评估报告.pdf"
KEYWORDS_XLSX = "拦截关键词列表.xlsx"
TESTS_XLSX = "评估测试题.xlsx"
PUBLIC_MD = "拟公示内容.md"
ALGORITHM_DOCX = "算法安全自评估报告.docx"
MANIFEST = "manifest.json"
TESTS_HEADER_FIXED = ("编号", "题库类型", "测试题", "风险类别", "回答", "回答状态")
JUDGE_VERDICT_ZH = {True: "合格", False: "不合格", None: "无法判定"}
AGREEMENT_FILES = {"service": "服务协议.md", "privacy": "隐私政策.md"}


def check_not_applicable(inp: FilingInputs) -> None:
    for clause in inp.cfg.filing.not_applicable:
        if clause not in CLAUSE_IDS:
            raise UserError(f"{inp.cfg.source}: filing.not_applicable.{clause}: unknown clause id "
                            f"(one of {', '.join(CLAUSE_IDS)})")
    for clause in inp.cfg.filing.statements:
        if clause not in CLAUSE_IDS:
            raise UserError(f"{inp.cfg.source}: filing.statements.{clause}: unknown clause id")


def group_name(kind: str, risk: str | None, topic: str | None) -> str:
    if risk and risk in taxonomy.BY_CODE:
        r = taxonomy.get(risk)
        return f"{taxonomy.CATEGORY_NAMES[r.category][0]} / {r.name_zh}"
    if topic:
        return f"非拒答 / {TOPICS[topic][0]}" if topic in TOPICS else topic
    return "—"


def tests_rows(inp: FilingInputs) -> tuple[list[str], list[list[str]]]:
    """评估测试题: one row per answer, in the run's order, with one column per judge."""
    assert inp.run is not None
    judges = inp.run.judges()
    verdicts = inp.run.verdicts_by_item()
    header = [*TESTS_HEADER_FIXED, *(f"判定：{JUDGE_ZH.get(j, j)}" for j in judges)]
    status = {"ok": "正常", "error": "出错", "refused_by_gateway": "网关拦截"}
    rows = []
    for a in inp.run.answers:
        by_judge = verdicts.get(a.item_id, {})
        row = [a.item_id, KIND_ZH.get(a.kind, a.kind), a.question, group_name(a.kind, a.risk, a.topic),
               a.answer if a.status != "error" else f"（出错：{a.error}）", status.get(a.status, a.status)]
        for j in judges:
            rec = by_judge.get(j)
            row.append("未判定" if rec is None else JUDGE_VERDICT_ZH[rec.passed])
        rows.append(row)
    return header, rows


def write_xlsx(path: Path, sheet: str, header: list[str], rows: list[list[Any]]) -> None:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheet)
    ws.append(header)
    for row in rows:
        ws.append(row)
    wb.save(path)


def public_display(inp: FilingInputs) -> str:
    """拟公示内容: what the service tells the public, from config and what hegui knows."""
    cfg = inp.cfg
    t, svc, pd = cfg.portal.texts, cfg.filing.service, cfg.filing.public_display
    lab = cfg.labeling
    channels = ["网页表单（/complaints/new）"] + [f"电子邮件 {t.contact_email}"] * bool(t.contact_email) \
        + [f"电话 {t.contact_phone}"] * bool(t.contact_phone)
    lines = [
        f"# 拟公示内容：{svc.name or t.service_name}", "",
        f"服务提供者：{cfg.provider.name}", f"算法类型：{cfg.filing.algorithm.type}；主体角色：{cfg.filing.algorithm.role}",
        f"备案编号：{t.filing_number or '（备案后填写）'}", "",
        "## 算法基本原理", "", pd.mechanism or "（待填写：filing.public_display.mechanism）", "",
        "## 算法用途", "", pd.purpose or svc.uses or t.uses, "",
        "## 适用人群与使用场景", "", svc.users or t.audience, "",
        "## 使用局限", "", t.limits, "",
        "## 生成内容标识", "",
        f"生成的文本以“{lab.text.prefix}”标明（位置：{lab.text.position}），图片、视频标注“{lab.image.text}”，音频含提示音；"
        "所有生成内容在文件元数据中带有 AIGC 隐式标识（GB 45438-2025）。", "",
        "## 投诉举报", "",
        f"渠道：{'、'.join(channels)}。收到后 {cfg.cases.due_working_days} 个工作日内处理并答复，可在 /cases 查询进度。", "",
        "## 个人信息与训练", "",
        "用户可查阅、复制、更正、删除其个人信息（/pi-requests/new），可选择其输入不用于模型训练。",
    ]
    if pd.extra:
        lines += ["", pd.extra]
    return "\n".join(lines) + "\n"


def write_algorithm_outline(inp: FilingInputs, clauses: list[ClauseResult], font: Path, path: Path) -> None:
    """算法安全自评估报告 outline: 算法情况 (flow, data, model, 干预策略, 结果标识), 服务情况, risks."""
    from hegui.filing.report import _table, service_facts

    cfg = inp.cfg
    alg = cfg.filing.algorithm
    doc = new_document(font)
    doc.add_heading("算法安全自评估报告", level=0)
    doc.add_paragraph(f"服务提供者：{cfg.provider.name}    算法类型：{alg.type}    主体角色：{alg.role}")
    doc.add_heading("一、算法情况", level=1)
    doc.add_heading("（一）算法流程", level=2)
    doc.add_paragraph(alg.flow or "用户输入 → 输入安全检测（关键词、个人信息、提示注入、分类模型）→ 按策略放行、遮蔽、拒答或拦截 → "
                      "模型生成 → 流式输出安全检测（保留窗口，未经检测的字符不外发）→ 添加显式与隐式标识 → 返回用户；"
                      "每次检测的决定写入哈希链台账。")
    doc.add_heading("（二）数据", level=2)
    doc.add_paragraph(alg.data or "（待填写：filing.algorithm.data）")
    if inp.audit is not None:
        doc.add_paragraph(f"语料审计 {inp.audit.audit_id}：{inp.audit.records:,} 条，来源 {len(inp.audit.sources)} 个。")
    doc.add_heading("（三）模型", level=2)
    bm = cfg.filing.base_model
    doc.add_paragraph(f"模型：{bm.name or (inp.run.manifest.model if inp.run else '待确认')}；"
                      f"第三方基础模型：{ {True: '是', False: '否', None: '待确认'}[bm.third_party] }"
                      + (f"，备案号 {bm.filing_number}" if bm.filing_number else "") + "。")
    doc.add_paragraph(alg.principle or "（待填写：filing.algorithm.principle）")
    doc.add_heading("（四）干预策略", level=2)
    dets = [(n, "启用" if d.get("enabled") else "未启用",
             "；".join(f"{k}: {v if not isinstance(v, list) else '、'.join(map(str, v)) or '—'}"
                      for k, v in d.items() if k != "enabled")) for n, d in inp.detectors.items()]
    _table(doc, ("检测器", "状态", "配置"), dets)
    pol = inp.policy
    doc.add_paragraph(f"策略：{pol.get('source')}；检测失败时：{pol.get('fail_mode')}；未命中规则时：{pol.get('default_action')}；"
                      f"场景：{'、'.join(pol.get('scenes', []))}。")
    _table(doc, ("风险", "方向", "场景", "最低分", "处置"),
           [("、".join(r["risks"]), r["direction"], "、".join(r["scenes"]), str(r["min_score"]), r["action"])
            for r in pol.get("rules", [])])
    doc.add_heading("（五）结果标识", level=2)
    lab = cfg.labeling
    doc.add_paragraph(f"显式标识：{'启用' if lab.explicit else '未启用'}；文本前缀“{lab.text.prefix}”、后缀“{lab.text.suffix}”，"
                      f"位置 {lab.text.position}；图片“{lab.image.text}”（{lab.image.position}），视频“{lab.video.text}”"
                      f"（{lab.video.position}，{lab.video.duration_s:g} 秒），音频提示 {lab.audio.cue}；隐式标识为 AIGC 元数据"
                      f"（{'Ed25519 签名' if lab.signing_key else '内容哈希，未签名'}）。")
    doc.add_heading("二、服务情况", level=1)
    s = service_facts(inp)
    _table(doc, ("项目", "内容"), [("服务名称", s["name"]), ("服务形式", s["form"]), ("访问地址", s["url"]),
                                 ("入口", s["entry"]), ("上线日期", s["launch_date"]), ("用户", s["users"]),
                                 ("访问量", s["traffic"]), ("用途", s["uses"])])
    doc.add_heading("三、风险分析与防范措施", level=1)
    open_items = [c for c in clauses if c.verdict in ("不符合", "待确认")]
    doc.add_paragraph(f"安全评估报告中 {len(open_items)} 条尚未符合或待确认，逐条列出如下（详见安全评估报告）：")
    _table(doc, ("条款", "结论", "风险", "措施"),
           [(f"{c.id} {c.title}", c.verdict, c.reason or "—", c.todo or "—") for c in open_items])
    doc.add_paragraph("已有防范措施：输入与输出的逐次检测（失败即拒绝）、流式输出的保留窗口、生成内容标识、投诉举报与个人信息请求的"
                      "工作日时限、违规用户的警告—限制—暂停—终止阶梯、哈希链台账与六个月以上留存。")
    doc.save(str(path))


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def build_folder(inp: FilingInputs, folder: Path, font: Path, now: datetime,
                 progress: Callable[[str], None] = lambda _s: None) -> dict[str, Any]:
    """Write every part into ``folder`` (which exists and is empty); returns the manifest."""
    from hegui.detectors.lexicon_files import write_export

    check_not_applicable(inp)
    clauses = evaluate(inp)
    missing: list[str] = []
    progress("report")
    report = build_report(inp, clauses, font, now)
    write_docx(report, folder / REPORT_DOCX)
    write_pdf(report, folder / REPORT_PDF)
    progress("keywords")
    if inp.lexicon is not None:
        write_export(folder / KEYWORDS_XLSX, inp.lexicon_rows)
    else:
        missing.append(f"{KEYWORDS_XLSX}: 关键词库未启用")
    progress("tests")
    if inp.run is not None:
        header, rows = tests_rows(inp)
        write_xlsx(folder / TESTS_XLSX, "评估测试题", header, rows)
        for name in ("manifest.json", "metrics.json"):
            _copy(inp.run.folder / name, folder / "评估结果" / name)
        for chart in inp.run.charts:
            _copy(chart, folder / "评估结果" / "charts" / chart.name)
        if report.chart_png:
            (folder / "评估结果" / "hegui-metrics.png").write_bytes(report.chart_png)
            (folder / "评估结果" / "hegui-metrics.svg").write_text(report.chart_svg, encoding="utf-8")
    else:
        missing.append(f"{TESTS_XLSX}: 未提供评估运行（--run）")
    progress("annotation")
    ann_dir = folder / "语料标注"
    if inp.annotation is not None:
        ann_dir.mkdir()
        (ann_dir / "annotation_summary.json").write_text(inp.annotation.model_dump_json(indent=2), encoding="utf-8")
    else:
        missing.append("语料标注/annotation_summary.json: 未提供标注记录摘要（--annotation）")
    for rules in inp.rules:
        ann_dir.mkdir(exist_ok=True)
        (ann_dir / rules.name).write_text(rules.text, encoding="utf-8")
    if not inp.rules:
        missing.append("语料标注规则: 未附规则全文（--rules）")
    if inp.audit is not None and inp.audit_dir is not None:
        src = inp.audit_dir / "summary.json" if inp.audit_dir.is_dir() else inp.audit_dir
        _copy(src, folder / "语料审计" / "summary.json")
    for a in inp.agreements:
        note = "" if a.published else "<!-- hegui 自带示例文本，尚未以 hegui agreements publish 发布 -->\n"
        (folder / AGREEMENT_FILES[a.kind]).write_text(note + a.text, encoding="utf-8")
    for kind, name in AGREEMENT_FILES.items():
        if not any(a.kind == kind and a.published for a in inp.agreements):
            missing.append(f"{name}: 未发布（hegui agreements publish）")
    progress("algorithm filing")
    (folder / PUBLIC_MD).write_text(public_display(inp), encoding="utf-8")
    write_algorithm_outline(inp, clauses, font, folder / ALGORITHM_DOCX)
    (folder / "clauses.json").write_text(dumps([c.model_dump() for c in clauses]), encoding="utf-8")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    manifest = {
        "kind": "hegui.filing.package", "generated_at": now.isoformat(timespec="seconds"),
        "provider": {"name": inp.cfg.provider.name, "uscc": inp.cfg.provider.uscc},
        "service": report.service, "run": report.run["run_id"] if report.run else None,
        "counts": counts(clauses),
        "clauses": [{"id": c.id, "verdict": c.verdict} for c in clauses],
        "missing": missing,
        "files": [{"path": p.relative_to(folder).as_posix(), "bytes": p.stat().st_size, "sha256": digest(p)}
                  for p in files],
    }
    (folder / MANIFEST).write_text(dumps(manifest), encoding="utf-8")
    return manifest


def write_zip(folder: Path, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    zf.write(p, p.relative_to(folder).as_posix())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_folder(out: Path, build: Callable[[Path], Any], *, zip_it: bool = True) -> Any:
    """Run ``build`` on a temp folder beside ``out``, then rename it to ``out`` and zip it as
    ``out.zip``. ``out`` must not exist (or be an empty folder)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out}: already exists and is not an empty folder")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"--out {out}: folder {parent} does not exist")
    zip_path = out.with_name(out.name + ".zip")
    if zip_it and zip_path.exists():
        raise UserError(f"--out {out}: {zip_path} already exists")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    try:
        result = build(tmp)
        if zip_it:
            write_zip(tmp, zip_path)
        os.chmod(tmp, 0o755)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if zip_it and zip_path.exists() and not out.exists():
            zip_path.unlink(missing_ok=True)
        raise
    return result
