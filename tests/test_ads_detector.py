"""The ads detector: a lure near a contact handle, through the disguises ads use; nothing for a
contact alone, a lure alone, or a warning that quotes a lure and gives a hotline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hegui.classifier import synth
from hegui.detectors.ads import AdsConfig, AdsDetector, find_contacts, fold
from hegui.errors import UserError
from hegui.text import normalize


@pytest.fixture(scope="module")
def det() -> AdsDetector:
    return AdsDetector()


def findings(det: AdsDetector, text: str):
    return det.detect(normalize(text))


@pytest.mark.parametrize(
    ("text", "contact"),
    [
        ("百家乐真人荷官，加我电话13800138000", "13800138000"),
        # a phone number in Chinese numerals, in capital numerals, with 幺 for 1
        ("百家乐真人荷官，电话一三八〇〇一三八〇〇〇", "一三八〇〇一三八〇〇〇"),
        ("百家乐真人荷官，电话壹叁捌零零壹叁捌零零零", "壹叁捌零零壹叁捌零零零"),
        ("百家乐真人荷官，电话幺三八〇〇幺三八〇〇〇", "幺三八〇〇幺三八〇〇〇"),
        # full-width and enclosed digits, digits split by spaces, dashes and emoji
        ("百家乐真人荷官，电话１３８００１３８０００", "１３８００１３８０００"),
        ("百家乐真人荷官，电话①③⑧⓪⓪①③⑧⓪⓪⓪", "①③⑧⓪⓪①③⑧⓪⓪⓪"),
        ("百家乐真人荷官，电话138 0013 8000", "138 0013 8000"),
        ("百家乐真人荷官，电话1-3-8-0-0-1-3-8-0-0-0", "1-3-8-0-0-1-3-8-0-0-0"),
        ("百家乐真人荷官，电话138🔥0013💰8000", "138🔥0013💰8000"),
        # WeChat ids behind disguised prefixes
        ("百家乐真人荷官，加薇：lucky888", "加薇：lucky888"),
        ("百家乐真人荷官，➕V kk_2024", "➕V kk_2024"),
        ("百家乐真人荷官，威信ｌｕｃｋｙ８８８", "威信ｌｕｃｋｙ８８８"),
        ("百家乐真人荷官，扣扣：58881234", "扣扣：58881234"),
        # links: a short URL, a domain with the dot spelled out, Telegram
        ("百家乐真人荷官，登录 t.cn/AbC123", "t.cn/AbC123"),
        ("百家乐真人荷官，网址 bet88 点 cc", "bet88 点 cc"),
        ("百家乐真人荷官，纸飞机 @lucky_boss88", "@lucky_boss88"),
    ],
)
def test_disguised_contacts_are_seen(det: AdsDetector, text: str, contact: str) -> None:
    fs = findings(det, text)
    assert len(fs) == 1, fs
    f = fs[0]
    assert f.risk == "A1h" and f.detector == "ads" and f.kind == "gambling"
    assert f.score >= 0.5
    # the span runs from the lure to the end of the contact, in the original text
    assert text[f.start : f.end].startswith("百家乐")
    assert text[f.start : f.end].endswith(contact[-3:])


@pytest.mark.parametrize(
    "text",
    [
        "裸 聊 视 频，加vx：mm5201314",  # split characters
        "裸💋聊视频，加vx：mm5201314",  # emoji between characters
        "裸、聊、视、频，加vx：mm5201314",  # 、 between characters (kept by normalisation)
        "luoliao视频，加vx：mm5201314",  # pinyin spelling
        "裸聊視頻，加vx：mm5201314",  # traditional characters
    ],
)
def test_disguised_lures_are_seen(det: AdsDetector, text: str) -> None:
    fs = findings(det, text)
    assert [f.risk for f in fs] == ["A1f"], fs


@pytest.mark.parametrize(
    ("text", "risk", "kind"),
    [
        ("出售公民个人信息，精准到户，QQ 3345678912", "A4f", "pi_sale"),
        ("代开各类发票，可查可验，电话13912345678", "A1h", "grey_goods"),
        ("不查征信当天下款，加微信 dai8888", "A1h", "loan"),
        ("手机刷单日结，一单一结，vx: job5566", "A1h", "fraud"),
        ("同城上门服务，包你满意，tel 15012345678", "A1f", "sex"),
    ],
)
def test_categories_map_to_risks(det: AdsDetector, text: str, risk: str, kind: str) -> None:
    fs = findings(det, text)
    assert [(f.risk, f.kind) for f in fs] == [(risk, kind)]


@pytest.mark.parametrize(
    "text",
    [
        # a contact without a lure
        "本店营业时间早九点到晚九点，订座请拨13800138000。",
        "本人在人民公园捡到一个钱包，内有证件，失主请联系13912345678认领。",
        "诚聘行政专员，简历请发送至hr@example.com。",
        "我加了你微信了，通过一下，我的是 cat_lover_2020",
        # a lure without a contact
        "本期体育彩票开奖结果公布，一等奖中出三注。",
        "澳门的赌场业在恢复，博彩税收是当地财政的重要来源。",
        # a weak lure (a benign sense) with a contact but no perk
        "招商银行房屋贷款利率调整，详情咨询95555。",
        "正规盲人按摩，预约电话13812345678",
        # a warning that quotes lures and gives a hotline
        "警方提醒：刷单返利都是诈骗，遇到可疑情况请拨打96110或联系派出所13800138000。",
        # everyday numbers
        "我的快递单号是SF1234567890，帮我查一下",
        "这次考试数学考了138分，英语112",
    ],
)
def test_hard_negatives(det: AdsDetector, text: str) -> None:
    assert findings(det, text) == []


def test_weak_lure_with_a_perk_counts(det: AdsDetector) -> None:
    assert findings(det, "正规盲人按摩，预约电话13812345678") == []
    fs = findings(det, "按摩上门，随叫随到，电话13812345678")
    assert [f.risk for f in fs] == ["A1f"]


def test_distance_bounds_the_pair() -> None:
    text = "百家乐真人荷官" + "，今天天气不错" * 10 + "，电话13800138000"
    gap = len(normalize(text).text) - len(normalize("百家乐真人荷官").text) - 11
    assert AdsDetector(config=AdsConfig(distance=gap - 5)).detect(normalize(text)) == []
    assert len(AdsDetector(config=AdsConfig(distance=gap + 5)).detect(normalize(text))) == 1


def test_disabled_and_min_score() -> None:
    text = "百家乐，电话13800138000"
    assert AdsDetector(config=AdsConfig(enabled=False)).detect(normalize(text)) == []
    # strong lure 0.9 x mobile 0.9 = 0.81, no perk or call to action
    [f] = AdsDetector().detect(normalize(text))
    assert f.score == pytest.approx(0.81)
    assert AdsDetector(config=AdsConfig(min_score=0.85)).detect(normalize(text)) == []


def test_lure_inside_a_handle_is_not_a_pair(det: AdsDetector) -> None:
    # "bjl" is the pinyin of 百家乐; inside an id it is no lure next to that id
    assert findings(det, "我的微信号是 bjl12345") == []


def test_extra_lures_file(tmp_path: Path) -> None:
    f = tmp_path / "lures.tsv"
    f.write_text("# ours\n开心消消乐代练\tfraud\n", encoding="utf-8")
    det = AdsDetector.from_config(AdsConfig(extra_lures="lures.tsv"), base_dir=tmp_path)
    assert [x.kind for x in det.detect(normalize("开心消消乐代练，加vx：game8888"))] == ["fraud"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("word\n", "lures.tsv:1: expected word<TAB>category"),
        ("# c\nword\tspam\n", "lures.tsv:2: unknown category 'spam'"),
        ("word\tsex\tmaybe\n", "lures.tsv:1: third field must be strong or weak"),
    ],
)
def test_bad_extra_lures_file(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "lures.tsv").write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        AdsDetector.from_config(AdsConfig(extra_lures="lures.tsv"), base_dir=tmp_path)


def test_missing_extra_lures_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="lure file not found"):
        AdsDetector.from_config(AdsConfig(extra_lures="nope.tsv"), base_dir=tmp_path)


def test_find_contacts_by_hand() -> None:
    kinds = [c.kind for c in find_contacts(fold("vx:abc123 电话13800138000 hr@x.com t.cn/ab12 @tg_name1"))]
    assert kinds == ["handle", "mobile", "email", "url", "telegram"]
    assert fold("ＡＢ①") == "ab1"


def test_official_domains_are_weak() -> None:
    [c] = find_contacts("www.gov.cn")
    assert c.kind == "url" and c.strength < 0.5


# -- measured on generated rows: lists written apart from the generator's, all of it ours ------


def _rates(det: AdsDetector, rows: list[synth.Row]) -> tuple[float, float]:
    pos = [r for r in rows if r["label"] == 1]
    neg = [r for r in rows if r["label"] == 0]
    recall = sum(bool(det.detect(normalize(r["text"]))) for r in pos) / len(pos)
    fpr = sum(bool(det.detect(normalize(r["text"]))) for r in neg) / len(neg)
    return recall, fpr


@pytest.mark.parametrize("style", synth.STYLES)
def test_generated_ads(det: AdsDetector, style: synth.Style) -> None:
    recall, fpr = _rates(det, synth.generate("ads", 1000, seed=11, style=style))
    assert recall >= 0.85
    assert fpr <= 0.02


def test_fpr_on_real_sources(det: AdsDetector, shared_data: Path) -> None:
    """No real source has ads, so every flag there is a false positive (the pools' unsafe rows are
    offensive comments and harmful prompts, not ads)."""
    flagged: dict[str, int] = {}
    total: dict[str, int] = {}
    for name in ("dev_pool.jsonl", "extra_pool.jsonl"):
        with (shared_data / name).open(encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                total[r["source"]] = total.get(r["source"], 0) + 1
                if det.detect(normalize(r["text"])):
                    flagged[r["source"]] = flagged.get(r["source"], 0) + 1
    for source in ("cold", "swsr", "rtplx_zh", "cvalues", "latent_jailbreak", "jade_db", "jailbench"):
        assert flagged.get(source, 0) / total[source] <= 0.002, (source, flagged.get(source, 0))
