"""Lexicon detector: formats, allow-list, bad files, offsets, holdback, hot reload."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hegui.config import load_config
from hegui.detectors.lexicon import (
    BUILTIN_LIST,
    LexiconConfig,
    LexiconDetector,
    LexiconFileConfig,
    too_long,
)
from hegui.detectors.lexicon_files import ListSpec, export_rows, load_list, write_export
from hegui.errors import ConfigError
from hegui.text import normalize


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def hits(det: LexiconDetector, text: str) -> list[tuple[str, str, str]]:
    """(risk, original substring, evidence id) of each finding."""
    return sorted((f.risk, text[f.start : f.end], f.evidence_id) for f in det.detect(normalize(text)))


def det_for(tmp_path: Path, tsv: str, **cfg: object) -> LexiconDetector:
    write(tmp_path / "words.tsv", tsv)
    config = LexiconConfig(builtin=False, files=[LexiconFileConfig(path="words.tsv")], **cfg)  # type: ignore[arg-type]
    return LexiconDetector.from_config(config, tmp_path)


# --------------------------------------------------------------------------- formats


def test_tsv_with_risk_codes_in_any_spelling(tmp_path: Path) -> None:
    det = det_for(tmp_path, "# comment\n赌博网站\tA1h\n约炮\ta.1.f\n\n劣等民族\ta2a,A1e\n")
    assert hits(det, "这个赌博网站") == [("A1h", "赌博网站", "lexicon:words:0")]
    assert hits(det, "约炮吗") == [("A1f", "约炮", "lexicon:words:1")]
    # several risks: one finding per risk, same span and evidence
    assert hits(det, "劣等民族") == [("A1e", "劣等民族", "lexicon:words:2"), ("A2a", "劣等民族", "lexicon:words:2")]


def test_evidence_id_names_the_entry(tmp_path: Path) -> None:
    det = det_for(tmp_path, "赌博\tA1h\n约炮\tA1f\n")
    [f] = det.detect(normalize("约 炮"))
    found = det.entry(f.evidence_id)
    assert found is not None
    wl, e = found
    assert (wl.name, e.word, e.line, e.risks) == ("words", "约炮", 2, ("A1f",))
    assert det.entry("lexicon:words:9") is None and det.entry("pii:MOBILE") is None
    assert det.entry("lexicon:other:0") is None


def test_finding_fields(tmp_path: Path) -> None:
    det = det_for(tmp_path, "赌博\tA1h\n")
    [f] = det.detect(normalize("我不赌 博"))
    assert (f.risk, f.start, f.end, f.score, f.detector, f.evidence_id, f.kind) == (
        "A1h", 2, 5, 1.0, "lexicon", "lexicon:words:0", "words",
    )


def test_plain_text_list_needs_a_risk(tmp_path: Path) -> None:
    write(tmp_path / "plain.txt", "赌博网站\n六合彩特码\n")
    with pytest.raises(ConfigError, match=r"plain\.txt: a plain word list needs a risk"):
        LexiconDetector.from_config(LexiconConfig(builtin=False, files=[LexiconFileConfig(path="plain.txt")]), tmp_path)
    det = LexiconDetector.from_config(
        LexiconConfig(builtin=False, files=[LexiconFileConfig(path="plain.txt", risk="A1h", name="gamble")]), tmp_path
    )
    assert hits(det, "六合彩特码") == [("A1h", "六合彩特码", "lexicon:gamble:1")]


def test_tsv_line_without_risk_uses_file_risk_or_fails(tmp_path: Path) -> None:
    write(tmp_path / "w.tsv", "赌博网站\tA1h\n冰毒\n")
    with pytest.raises(ConfigError, match=r"w\.tsv:2: no risk for '冰毒'"):
        load_list(ListSpec(path=tmp_path / "w.tsv", name="w"))
    wl = load_list(ListSpec(path=tmp_path / "w.tsv", name="w", risk="A1f"))
    assert [e.risks for e in wl.entries] == [("A1h",), ("A1f",)]


def test_unknown_risk_code_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "bad.tsv", "赌博网站\tA1h\n冰毒\tA9z\n")
    with pytest.raises(ConfigError, match=r"bad\.tsv:2: unknown risk or category 'A9z'"):
        LexiconDetector.from_paths([tmp_path / "bad.tsv"])


def test_risk_by_taxonomy_name(tmp_path: Path) -> None:
    write(tmp_path / "n.tsv", "河南人都是骗子\t地域歧视\n")
    assert load_list(ListSpec(path=tmp_path / "n.tsv", name="n")).entries[0].risks == ("A2d",)


def test_bad_options_column(tmp_path: Path) -> None:
    write(tmp_path / "o.tsv", "赌博\tA1h\tpinyin,soundex\n")
    with pytest.raises(ConfigError, match=r"o\.tsv:1: unknown option 'soundex'"):
        load_list(ListSpec(path=tmp_path / "o.tsv", name="o"))
    write(tmp_path / "o.tsv", "赌博\tA1h\tx\ty\n")
    with pytest.raises(ConfigError, match=r"o\.tsv:1: expected word<TAB>risk"):
        load_list(ListSpec(path=tmp_path / "o.tsv", name="o"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.tsv: no such lexicon file"):
        LexiconDetector.from_paths([tmp_path / "nope.tsv"])
    with pytest.raises(ConfigError, match=r"nope\.xlsx: no such lexicon file"):
        LexiconDetector.from_paths([tmp_path / "nope.xlsx"])


def test_bad_encoding_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "gbk.tsv").write_bytes("赌博\tA1h\n".encode() + "冰毒\tA1h\n".encode("gbk"))
    with pytest.raises(ConfigError, match=r"gbk\.tsv:2: not UTF-8 text") as exc:
        LexiconDetector.from_paths([tmp_path / "gbk.tsv"])
    assert "\n" not in str(exc.value)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "bom.tsv").write_bytes("\ufeff赌博网站\tA1h\n".encode())
    assert hits(LexiconDetector.from_paths([tmp_path / "bom.tsv"]), "赌博网站") == [
        ("A1h", "赌博网站", "lexicon:bom:0")
    ]


def test_tags_format_with_category_map(tmp_path: Path) -> None:
    write(tmp_path / "tags.txt", "冰毒出售 1\n出售手枪 4\n0售k粉qq 1,4\n六合 彩 3\n")
    spec = ListSpec(path=tmp_path / "tags.txt", name="t", format="tags", category_map={"1": "A1h", "3": "A1h", "4": "A1h"})
    wl = load_list(spec)
    assert [(e.word, e.risks) for e in wl.entries] == [
        ("冰毒出售", ("A1h",)),
        ("出售手枪", ("A1h",)),
        ("0售k粉qq", ("A1h",)),
        ("六合 彩", ("A1h",)),
    ]
    write(tmp_path / "tags.txt", "冰毒出售 1\n法轮 0\n")
    with pytest.raises(ConfigError, match=r"tags\.txt:2: unknown risk or category '0'"):
        load_list(spec)


def test_csv_filing_spreadsheet(tmp_path: Path) -> None:
    with (tmp_path / "kw.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["关键词", "一级分类", "二级分类"])
        w.writerow(["赌博网站", "违反社会主义核心价值观", "其他法律、行政法规禁止的内容"])
        w.writerow(["河南人都是骗子", "歧视性内容", "地域歧视"])
        w.writerow(["约炮", "涉黄", "色情"])
        w.writerow(["", "", ""])
    spec = ListSpec(path=tmp_path / "kw.csv", name="kw", category_map={"色情": "A1f"})
    wl = load_list(spec)
    assert [(e.word, e.risks, e.line) for e in wl.entries] == [
        ("赌博网站", ("A1h",), 2),
        ("河南人都是骗子", ("A2d",), 3),
        ("约炮", ("A1f",), 4),
    ]
    with pytest.raises(ConfigError, match=r"kw\.csv:4: category '色情' of '约炮' maps to no risk"):
        load_list(ListSpec(path=tmp_path / "kw.csv", name="kw"))
    assert load_list(ListSpec(path=tmp_path / "kw.csv", name="kw", default_risk="A1h")).entries[2].risks == ("A1h",)


def test_xlsx_round_trip_through_export(tmp_path: Path) -> None:
    det = det_for(tmp_path, "赌博网站\tA1h\n劣等民族\tA1e,A2a\n")
    out = tmp_path / "export.xlsx"
    write_export(out, export_rows(det.lists))
    wl = load_list(ListSpec(path=out, name="x"))
    assert [(e.word, e.risks) for e in wl.entries] == [
        ("赌博网站", ("A1h",)),
        ("劣等民族", ("A1e",)),
        ("劣等民族", ("A2a",)),
    ]
    from openpyxl import load_workbook

    ws = load_workbook(out).worksheets[0]
    assert [c.value for c in ws[1]] == ["关键词", "一级分类", "二级分类"]
    assert [c.value for c in ws[2]] == ["赌博网站", "违反社会主义核心价值观", "其他法律、行政法规禁止的内容"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_control_characters_are_dropped_from_keywords(tmp_path: Path) -> None:
    write(tmp_path / "c.tsv", "赌\x08博网站\tA1h\n")
    wl = load_list(ListSpec(path=tmp_path / "c.tsv", name="c"))
    assert wl.entries[0].word == "赌博网站"
    out = tmp_path / "c.xlsx"
    write_export(out, export_rows([wl]))  # openpyxl refuses control characters
    assert load_list(ListSpec(path=out, name="x")).entries[0].word == "赌博网站"
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600


def test_bad_xlsx(tmp_path: Path) -> None:
    write(tmp_path / "broken.xlsx", "not a zip")
    with pytest.raises(ConfigError, match=r"broken\.xlsx: not a readable XLSX workbook"):
        LexiconDetector.from_paths([tmp_path / "broken.xlsx"])


def test_spreadsheet_without_keyword_column(tmp_path: Path) -> None:
    write(tmp_path / "k.csv", "word2,risk\n赌博,A1h\n")
    with pytest.raises(ConfigError, match=r"k\.csv:1: no 关键词 column"):
        load_list(ListSpec(path=tmp_path / "k.csv", name="k"))


def test_from_paths_path_colon_risk(tmp_path: Path) -> None:
    write(tmp_path / "plain.txt", "赌博网站\n")
    det = LexiconDetector.from_paths([f"{tmp_path / 'plain.txt'}:a1h"])
    assert hits(det, "赌博网站") == [("A1h", "赌博网站", "lexicon:plain:0")]
    with pytest.raises(ConfigError, match="needs a risk"):
        LexiconDetector.from_paths([tmp_path / "plain.txt"])


def test_duplicate_list_names_are_rejected(tmp_path: Path) -> None:
    write(tmp_path / "a.tsv", "赌博\tA1h\n")
    cfg = LexiconConfig(builtin=False, files=[LexiconFileConfig(path="a.tsv"), LexiconFileConfig(path="a.tsv")])
    with pytest.raises(ConfigError, match="two lists are named 'a'"):
        LexiconDetector.from_config(cfg, tmp_path)


def test_config_section_validates_risk_codes_with_line(tmp_path: Path) -> None:
    cfg_file = write(
        tmp_path / "hegui.yaml",
        "lexicon:\n  files:\n    - path: words.txt\n      risk: A7x\n",
    )
    with pytest.raises(ConfigError, match=r"hegui\.yaml:4: lexicon\.files\.0\.risk: .*unknown risk code 'A7x'"):
        load_config(cfg_file, environ={})
    write(tmp_path / "hegui.yaml", "lexicon:\n  bogus: 1\n")
    with pytest.raises(ConfigError, match=r"lexicon\.bogus: unknown key"):
        load_config(tmp_path / "hegui.yaml", environ={})


def test_config_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    write(sub / "w.txt", "赌博网站\n")
    write(sub / "allow.txt", "打击赌博网站\n")
    write(
        sub / "hegui.yaml",
        "lexicon:\n  builtin: false\n  files:\n    - {path: w.txt, risk: A1h, name: g}\n  allow_files: [allow.txt]\n",
    )
    cfg = load_config(sub / "hegui.yaml", environ={})
    det = LexiconDetector.from_config(cfg.lexicon, cfg.base_dir)
    assert hits(det, "赌博网站") == [("A1h", "赌博网站", "lexicon:g:0")]
    assert hits(det, "打击赌博网站") == []


# --------------------------------------------------------------------------- matching


def test_allow_phrase_suppresses_only_hits_inside_it(tmp_path: Path) -> None:
    det = det_for(tmp_path, "赌博\tA1h\n赌博网站\tA1h\n", allow=["打击赌博"])
    assert hits(det, "打击赌博") == []
    assert hits(det, "打 击 賭 博") == []  # allow phrases are normalised too
    # 赌博网站 is not inside 打击赌博, so it stays; the inner 赌博 is suppressed.
    assert hits(det, "打击赌博网站") == [("A1h", "赌博网站", "lexicon:words:1")]
    assert hits(det, "赌博。打击赌博") == [("A1h", "赌博", "lexicon:words:0")]


def test_allow_phrase_equal_to_a_pattern(tmp_path: Path) -> None:
    det = det_for(tmp_path, "赌博\tA1h\n", allow=["赌博"])
    assert hits(det, "赌博") == []


def test_overlapping_and_nested_hits_are_all_reported(tmp_path: Path) -> None:
    det = det_for(tmp_path, "法轮\tA1h\n法轮功\tA1h\n功学\tA1g\n")
    assert hits(det, "法轮功学") == [
        ("A1g", "功学", "lexicon:words:2"),
        ("A1h", "法轮", "lexicon:words:0"),
        ("A1h", "法轮功", "lexicon:words:1"),
    ]


def test_duplicate_pattern_across_entries_reports_each_risk_once(tmp_path: Path) -> None:
    det = det_for(tmp_path, "赌博\tA1h\n賭博\tA1h\n赌 博\tA1f\n")
    assert hits(det, "赌博") == [("A1f", "赌博", "lexicon:words:2"), ("A1h", "赌博", "lexicon:words:0")]


def test_disguised_hits_map_to_the_original_span(tmp_path: Path) -> None:
    det = det_for(tmp_path, "赌博网站\tA1h\nk粉\tA1h\n")
    for text, word in [
        ("来玩賭 博 網 站吧", "賭 博 網 站"),
        ("来玩赌\u200b博*网.站吧", "赌\u200b博*网.站"),
        ("出售Ｋ 粉", "Ｋ 粉"),
        ("㈱赌🎲博网站", "赌🎲博网站"),
    ]:
        assert hits(det, text) == [("A1h", word, hits(det, text)[0][2])]


def test_latin_patterns_respect_word_boundaries(tmp_path: Path) -> None:
    det = det_for(tmp_path, "sex\tA1f\nk粉\tA1h\n")
    assert hits(det, "sussex sexy") == []
    assert hits(det, "free sex!") == [("A1f", "sex", "lexicon:words:0")]
    assert hits(det, "卖sex服务") == [("A1f", "sex", "lexicon:words:0")]
    assert hits(det, "ok粉") == []
    assert hits(det, "卖k粉") == [("A1h", "k粉", "lexicon:words:1")]


def test_pinyin_and_initials_options(tmp_path: Path) -> None:
    det = det_for(tmp_path, "赌博\tA1h\tpinyin\n法轮功\tA1h\tinitials\n冰毒\tA1h\n")
    for text in ("dubo", "du博", "赌bo", "DUBO"):
        assert hits(det, text) == [("A1h", text, "lexicon:words:0")], text
    assert hits(det, "玩du博") == [("A1h", "du博", "lexicon:words:0")]
    assert hits(det, "dubois") == []
    assert hits(det, "flg") == [("A1h", "flg", "lexicon:words:1")]
    assert hits(det, "bingdu") == []  # no option, no pinyin
    # holdback covers the pinyin patterns (dubo, falungong not added, flg)
    assert det.holdback() == 4


def test_pinyin_default_from_config(tmp_path: Path) -> None:
    det = det_for(tmp_path, "冰毒\tA1h\n", pinyin=True)
    assert hits(det, "bingdu") == [("A1h", "bingdu", "lexicon:words:0")]


def test_holdback_is_the_longest_normalised_pattern(tmp_path: Path) -> None:
    det = det_for(tmp_path, "赌博\tA1h\n赌 * 博 网 站\tA1h\n", allow=["严厉打击网络赌博"])
    assert det.holdback() == len("严厉打击网络赌博")
    det2 = det_for(tmp_path, "赌博\tA1h\n赌 * 博 网 站\tA1h\n")
    assert det2.holdback() == 4


def test_holdback_covers_every_hit_in_normalised_chars(tmp_path: Path) -> None:
    """The stream contract: a hit that ends past a cut starts within holdback() chars before it,
    i.e. no hit is longer than holdback() normalised characters (pinyin variants included)."""
    det = det_for(tmp_path, "赌博网站\tA1h\tpinyin\n约炮\tA1f\tpinyin\n", allow=["打击赌博"])
    text = normalize("这里有赌 博 网 站、du博wang站和yuepao的广告，赌博网站")
    hb = det.holdback()
    findings = det.detect(text)
    assert len(findings) == 4
    for f in findings:
        norm_len = sum(1 for s in text.starts if f.start <= s < f.end)
        assert norm_len <= hb
    assert hb == len("duobowangzhan") - 1  # "dubowangzhan", the longest pinyin variant


def test_disabled_section_matches_nothing(tmp_path: Path) -> None:
    det = LexiconDetector.from_config(LexiconConfig(enabled=False, files=[LexiconFileConfig(path="missing.tsv")]), tmp_path)
    assert det.detect(normalize("赌博网站")) == [] and det.lists == ()


def test_empty_lexicon(tmp_path: Path) -> None:
    det = LexiconDetector.from_config(LexiconConfig(builtin=False), tmp_path)
    assert det.detect(normalize("赌博")) == [] and det.holdback() == 0
    det2 = det_for(tmp_path, "赌博\tA1h\n")
    assert det2.detect(normalize("")) == []


def test_builtin_starter_list(tmp_path: Path) -> None:
    det = LexiconDetector.from_config(LexiconConfig(), tmp_path)
    assert [wl.name for wl in det.lists] == ["starter"]
    assert ("A1h", "赌 博网站") in {(r, s) for r, s, _ in hits(det, "我找个赌 博网站")}
    assert hits(det, "严厉打击网络赌博") == []  # starter allow-list
    stats = det.stats()
    assert 300 <= stats.total < 10_000
    assert set(stats.per_risk) >= {f"A1{c}" for c in "abcdefgh"} | {f"A2{c}" for c in "abcdefghi"}
    assert not stats.meets_standard and len(stats.shortfalls()) == 17


def test_starter_list_is_precise_on_benign_text(tmp_path: Path) -> None:
    det = LexiconDetector.from_config(LexiconConfig(), tmp_path)
    benign = [
        "请问赌博罪的量刑标准是什么？",
        "我们要严厉打击网络赌博。",
        "今天天气很好，我们去公园散步吧。",
        "河南是中国的人口大省，河南人勤劳朴实。",
        "女司机和男司机的事故率没有显著差异。",
        "远离冰毒，珍爱生命。",
        "他的祖父是一位老中医，擅长针灸。",
        "乙肝病毒携带者可以正常工作和学习。",
    ]
    for text in benign:
        assert hits(det, text) == [], text


def test_starter_file_is_well_formed() -> None:
    lines = [line for line in BUILTIN_LIST.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    words = [line.split("\t")[0] for line in lines]
    assert len(words) == len(set(words))
    assert not [w for w in words if too_long(w)]


def test_too_long() -> None:
    assert too_long("一二三四五六七八九十一")
    assert not too_long("一二三四五六七八九十")
    assert too_long("one two three four five six")
    assert not too_long("buy cheap pills")


# --------------------------------------------------------------------------- reload


def test_reload_swaps_in_edited_file(tmp_path: Path) -> None:
    det = det_for(tmp_path, "赌博\tA1h\n")
    before = det._compiled
    write(tmp_path / "words.tsv", "冰毒\tA1h\n")
    assert hits(det, "冰毒") == []
    assert det.risks == ("A1h",)
    write(tmp_path / "words.tsv", "冰毒\tA1h\n约炮\tA1f\n")
    det.reload()
    assert det._compiled is not before
    assert det.risks == ("A1f", "A1h")
    assert hits(det, "冰毒") == [("A1h", "冰毒", "lexicon:words:0")]
    assert hits(det, "赌博") == []


def test_detect_during_reloads_sees_old_or_new_lists(tmp_path: Path) -> None:
    import threading

    det = det_for(tmp_path, "赌博\tA1h\n")
    text = "赌博和冰毒"
    seen: set[tuple[tuple[str, str, str], ...]] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                seen.add(tuple(hits(det, text)))
        except BaseException as exc:  # pragma: no cover - the failure is asserted below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(6):
        write(tmp_path / "words.tsv", "冰毒\tA1h\n" if i % 2 == 0 else "赌博\tA1h\n")
        det.reload()
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert seen <= {(("A1h", "赌博", "lexicon:words:0"),), (("A1h", "冰毒", "lexicon:words:0"),)}


def test_failed_reload_keeps_old_lists(tmp_path: Path) -> None:
    det = det_for(tmp_path, "赌博\tA1h\n")
    write(tmp_path / "words.tsv", "冰毒\tBAD\n")
    with pytest.raises(ConfigError, match=r"words\.tsv:1"):
        det.reload()
    assert hits(det, "赌博") == [("A1h", "赌博", "lexicon:words:0")]


def _touch_later(path: Path, text: str) -> None:
    write(path, text)
    st_ = path.stat()
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 2_000_000_000))


def test_poll_reloads_only_on_change(tmp_path: Path) -> None:
    det = det_for(tmp_path, "赌博\tA1h\n")
    assert det.poll() is False
    _touch_later(tmp_path / "words.tsv", "冰毒\tA1h\n")
    assert det.files_changed()
    assert det.poll() is True
    assert hits(det, "冰毒") != []
    _touch_later(tmp_path / "words.tsv", "冰毒\tNOPE\n")
    assert det.poll() is False
    assert det.last_reload_error is not None and "words.tsv:1" in det.last_reload_error
    assert hits(det, "冰毒") != []  # old lists still in force
    assert det.poll() is False  # a broken file is not retried until it changes again
    _touch_later(tmp_path / "words.tsv", "赌博\tA1h\n")
    assert det.poll() is True and det.last_reload_error is None


def test_auto_reload_picks_up_edits_without_restart(tmp_path: Path) -> None:
    det = det_for(tmp_path, "赌博\tA1h\n", auto_reload_seconds=0.05)
    assert hits(det, "冰毒") == []
    _touch_later(tmp_path / "words.tsv", "冰毒\tA1h\n")
    deadline = time.monotonic() + 10
    found: list[tuple[str, str, str]] = []
    while time.monotonic() < deadline and not found:
        time.sleep(0.06)
        found = hits(det, "冰毒")  # detect() notices the change and reloads in the background
        det.wait_reload(5)
        found = found or hits(det, "冰毒")
    assert found == [("A1h", "冰毒", "lexicon:words:0")]


def test_auto_reload_watches_allow_files(tmp_path: Path) -> None:
    write(tmp_path / "words.tsv", "赌博\tA1h\n")
    write(tmp_path / "allow.txt", "# none yet\n")
    cfg = LexiconConfig(
        builtin=False, files=[LexiconFileConfig(path="words.tsv")], allow_files=["allow.txt"]
    )
    det = LexiconDetector.from_config(cfg, tmp_path)
    assert hits(det, "打击赌博") != []
    _touch_later(tmp_path / "allow.txt", "打击赌博\n")
    assert det.poll() is True
    assert hits(det, "打击赌博") == []


# --------------------------------------------------------------------------- property: disguised words

WORDS = ["赌博网站", "冰毒出售", "约炮", "k粉", "六合彩特码"]
SEPARATORS = [" ", "*", ".", "_", "-", "|", "/", "\u200b", "\u200c", "\ufeff", "\u00ad", "·", " * ", "🎲", "\u3000", "~"]
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\ufeff", "\u00ad", "\u2060"]
CONTEXT = st.lists(
    st.sampled_from([*"我你他的了是在有这个吗呢，。！？：“”（）…abcXYZ0129 \n", "😀", "ＡＢ", "臺灣", "\u200b"]),
    max_size=30,
).map("".join)


def _traditional() -> dict[str, str]:
    from opencc_pyo3 import OpenCC

    s2t = OpenCC("s2t")
    return {ch: s2t.convert(ch) for w in WORDS for ch in w}


TRADITIONAL = _traditional()


@st.composite
def disguised(draw: st.DrawFn) -> tuple[str, str]:
    word = draw(st.sampled_from(WORDS))
    out = []
    for i, ch in enumerate(word):
        c = ch
        if draw(st.booleans()):
            c = TRADITIONAL[c]
        if c.isascii() and draw(st.booleans()):
            c = chr(ord(c.upper()) + 0xFEE0) if draw(st.booleans()) else c.upper()  # full-width / upper case
        out.append(c)
        if i < len(word) - 1:
            pair_has_cjk = not (ch.isascii() and word[i + 1].isascii())
            pool = SEPARATORS if pair_has_cjk else INVISIBLE
            out.append("".join(draw(st.lists(st.sampled_from(pool), max_size=3))))
    return word, "".join(out)


@pytest.fixture(scope="module")
def property_detector(tmp_path_factory: pytest.TempPathFactory) -> LexiconDetector:
    d = tmp_path_factory.mktemp("lex")
    write(d / "p.tsv", "".join(f"{w}\tA1h\n" for w in WORDS))
    return LexiconDetector.from_paths([d / "p.tsv"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=CONTEXT, item=disguised(), suffix=CONTEXT)
def test_disguised_word_span_covers_exactly_the_disguise(
    property_detector: LexiconDetector, prefix: str, item: tuple[str, str], suffix: str
) -> None:
    word, disguise = item
    if word[0].isascii():
        prefix += "。"  # a Latin start must not continue a Latin word
    if word[-1].isascii():
        suffix = "。" + suffix
    text = prefix + disguise + suffix
    start, end = len(prefix), len(prefix) + len(disguise)
    spans = {(f.start, f.end) for f in property_detector.detect(normalize(text))}
    assert (start, end) in spans, (text, sorted(spans))


def test_traditional_forms_are_really_different() -> None:
    assert TRADITIONAL["赌"] == "賭" and TRADITIONAL["网"] == "網"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=CONTEXT, item=disguised(), suffix=CONTEXT)
def test_stream_edge_never_releases_the_start_of_a_later_hit(
    property_detector: LexiconDetector, prefix: str, item: tuple[str, str], suffix: str
) -> None:
    """The stream contract: after any prefix, safe_edge(holdback) is at or before the start of every
    hit of the full text that is not complete yet (e.g. `赌` + 50 spaces must not release `赌`)."""
    word, disguise = item
    if word[0].isascii():
        prefix += "。"
    if word[-1].isascii():
        suffix = "。" + suffix
    text = prefix + disguise + suffix
    hb = property_detector.holdback()
    findings = property_detector.detect(normalize(text))
    assert findings
    for cut in range(1, len(text)):
        edge = normalize(text[:cut]).safe_edge(hb)
        assert 0 <= edge <= cut
        for f in findings:
            if f.end > cut:
                assert edge <= f.start, (text[:cut], f)


def test_safe_edge_holds_a_trailing_separator_run(tmp_path: Path) -> None:
    det = det_for(tmp_path, "赌博\tA1h\n")
    assert det.holdback() == 2
    head = "今天天气很好我们去玩赌" + " " * 50
    n = normalize(head)
    assert n.settled_length() == len("今天天气很好我们去玩赌")
    assert n.safe_edge(2) == head.index("赌") - 1  # neither 玩 nor 赌 (a possible hit start) goes out
    assert hits(det, head + "博") == [("A1h", "赌" + " " * 50 + "博", "lexicon:words:0")]
    assert normalize("abc").safe_edge(0) == 3 and normalize("ab ").safe_edge(0) == 2
    assert normalize("赌").safe_edge(5) == 0
