"""Generators of the missing genres (hegui.classifier.synth): determinism, schema, the held-out
half, and each disguise function checked by hand."""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict

import pytest
from typer.testing import CliRunner

from hegui.assessment.bank import TOPICS
from hegui.classifier import synth
from hegui.classifier.data import read_examples
from hegui.classifier.synth import disguise
from hegui.classifier.synth.__main__ import app
from hegui.detectors.refusal import classify_answer

KEYS = {"id", "text", "label", "source", "kind", "tc260", "category", "split", "template"}


@pytest.mark.parametrize("genre", synth.GENRES)
def test_same_seed_same_rows_other_seed_other_rows(genre: str) -> None:
    a = synth.generate(genre, 120, seed=7)
    assert a == synth.generate(genre, 120, seed=7)
    b = synth.generate(genre, 120, seed=8)
    assert [r["text"] for r in a] != [r["text"] for r in b]


@pytest.mark.parametrize("style", synth.STYLES)
@pytest.mark.parametrize("genre", synth.GENRES)
def test_schema_of_every_row(genre: str, style: synth.Style) -> None:
    rows = synth.generate(genre, 400, seed=1, style=style)
    assert len(rows) == 400
    assert len({r["id"] for r in rows}) == 400
    assert len({(r.get("prompt", ""), r["text"]) for r in rows}) == 400  # no repeated texts
    for r in rows:
        extra = {"prompt"} if r["kind"] == "response" else set()
        assert set(r) == KEYS | extra
        assert r["source"] == f"gen_{genre}"
        assert r["id"].startswith(f"gen_{genre}/{style}/")
        assert r["split"] == style
        assert r["label"] in (0, 1)
        assert r["kind"] in ("comment", "prompt", "response")
        assert r["text"].strip()
        assert "{" not in r["text"], r["text"]  # every slot filled
        if r["label"] == 1:
            assert r["tc260"], r  # an unsafe row names its risk
        if r["kind"] == "response":
            assert r["prompt"].strip()


def test_label_mix_per_genre() -> None:
    mix = {g: Counter(r["label"] for r in synth.generate(g, 200, seed=0)) for g in synth.GENRES}
    assert mix["ads"] == {0: 100, 1: 100}
    assert mix["political"] == {0: 100, 1: 100}
    assert mix["jailbreak"] == {0: 100, 1: 100}
    assert mix["nonrefusal"] == {0: 200}
    assert mix["answers"] == {0: 140, 1: 60}


def test_half_splits_by_position() -> None:
    items = ["a", "b", "c", "d", "e"]
    assert synth.half(items, "train") == ["a", "c", "e"]
    assert synth.half(items, "heldout") == ["b", "d"]
    assert synth.half(["only"], "heldout") == ["only"]


@pytest.mark.parametrize("genre", synth.GENRES)
def test_heldout_shares_no_template(genre: str) -> None:
    train = {r["template"] for r in synth.generate(genre, 600, seed=0, style="train")}
    held = {r["template"] for r in synth.generate(genre, 600, seed=0, style="heldout")}
    assert train and held
    if genre == "nonrefusal":
        # "wrapper/topic.qNN": both parts come from disjoint halves
        assert not {t.split("/")[0] for t in train} & {t.split("/")[0] for t in held}
        assert not {t.split("/")[1] for t in train} & {t.split("/")[1] for t in held}
    assert not train & held


def test_heldout_shares_no_lure_phrase() -> None:
    from hegui.classifier.synth._core import load_data

    cats = load_data("ads")["categories"]
    for c in cats.values():
        assert not set(synth.half(c["lures"], "train")) & set(synth.half(c["lures"], "heldout"))
    # the texts themselves: a train lure phrase never appears verbatim in held-out ads
    train_lures = {lure for c in cats.values() for lure in synth.half(c["lures"], "train")}
    held = [r["text"] for r in synth.generate("ads", 400, seed=0, style="heldout") if r["label"]]
    assert not [t for t in held if any(lure in t for lure in train_lures)]


def test_nonrefusal_covers_the_13_topics() -> None:
    rows = synth.generate("nonrefusal", 130, seed=0)
    per_topic = Counter(r["category"].split(":")[1] for r in rows)
    assert set(per_topic) == set(TOPICS)
    assert min(per_topic.values()) == 10  # round robin: 130 / 13


def test_jailbreak_uses_the_same_wrappers_for_both_labels() -> None:
    labels: dict[str, set[int]] = defaultdict(set)
    for r in synth.generate("jailbreak", 600, seed=0):
        labels[r["template"]].add(r["label"])
    assert all(v == {0, 1} for v in labels.values()), labels


def test_refusal_answers_repeat_the_sensitive_words_and_read_as_refusals() -> None:
    rows = [r for r in synth.generate("answers", 400, seed=0) if r["category"] == "answers:refusal"]
    assert len(rows) > 30
    refused = [classify_answer(r["text"], r["prompt"]).refused for r in rows]
    assert sum(refused) / len(refused) >= 0.9
    # the refusal names what was asked for: a word of two CJK characters shared with the prompt
    for r in rows:
        pairs = {r["prompt"][i : i + 2] for i in range(len(r["prompt"]) - 1)}
        assert any(p in r["text"] for p in pairs if all("\u4e00" <= c <= "\u9fff" for c in p)), r


def test_compliant_answers_do_not_read_as_refusals() -> None:
    rows = [r for r in synth.generate("answers", 400, seed=0) if r["label"] == 1]
    refused = [classify_answer(r["text"], r["prompt"]).refused for r in rows]
    assert sum(refused) == 0


# -- disguises, by hand ------------------------------------------------------------------------


def test_fullwidth() -> None:
    assert disguise.fullwidth("vx:ab12") == "ｖｘ：ａｂ１２"
    assert disguise.fullwidth("加微") == "加微"


def test_chinese_numerals() -> None:
    assert disguise.chinese_numerals("13800") == "一三八〇〇"
    assert disguise.chinese_numerals("13800", capital=True) == "壹叁捌零零"
    assert disguise.chinese_numerals("131", yao=True) == "幺三幺"
    assert disguise.chinese_numerals("q1") == "q一"


def test_circled_and_spaced_digits() -> None:
    assert disguise.circled_digits("1380") == "①③⑧⓪"
    assert disguise.spaced_digits("13800138000", " ", 4) == "138 0013 8000"
    assert disguise.spaced_digits("1380", "-") == "1-3-8-0"
    assert disguise.spaced_digits("123456", ".", 3) == "123.456"


def test_split_chars_and_emoji() -> None:
    assert disguise.split_chars("赌博ab网站", "*") == "赌*博ab网*站"
    out = disguise.insert_emoji("贷款", random.Random(0), emojis=("💰",))
    assert out == "贷💰款"


def test_pinyin() -> None:
    assert disguise.pinyin_full("赌博") == "dubo"
    assert disguise.pinyin_initials("百家乐") == "bjl"


def test_homophones_replace_longest_word_first() -> None:
    table = {"加微": ["+V"], "微信": ["威信"]}
    assert disguise.homophones("加微信", random.Random(0), table) == "+V信"
    assert disguise.homophones("微信号", random.Random(0), table) == "威信号"


def test_homophone_table_halves_are_disjoint() -> None:
    train, held = disguise.homophone_table("train"), disguise.homophone_table("heldout")
    assert set(train) == set(held)
    assert all(not set(train[w]) & set(held[w]) for w in train)


# -- output ------------------------------------------------------------------------------------


def test_cli_writes_the_same_file_twice_and_the_loader_reads_it(tmp_path) -> None:
    runner = CliRunner()
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for out in (a, b):
        res = runner.invoke(
            app, ["--out", str(out), "--per-genre", "30", "--seed", "5", "--style", "heldout"]
        )
        assert res.exit_code == 0, res.output
    assert a.read_bytes() == b.read_bytes()
    rows = [json.loads(line) for line in a.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 30 * len(synth.GENRES)
    assert {r["split"] for r in rows} == {"heldout"}
    examples = list(read_examples(a))  # H6b's loader takes them, tc260 codes included
    assert {e.source for e in examples} == set(synth.SOURCES)
    assert not list(tmp_path.glob(".*.tmp"))


def test_cli_rejects_unknown_style_and_genre(tmp_path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["--out", str(tmp_path / "x.jsonl"), "--style", "test"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["--out", str(tmp_path / "x.jsonl"), "--genre", "spam"])
    assert res.exit_code == 2
    assert not (tmp_path / "x.jsonl").exists()


def test_generate_rejects_unknown_genre() -> None:
    with pytest.raises(ValueError, match="unknown genre"):
        synth.generate("spam", 3)
