"""The built-in classifier: data loading, features, training, the model file, the detector."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from hegui.classifier.data import Example, load_examples, read_examples
from hegui.classifier.features import Featurizer, make_analyzer
from hegui.classifier.model import ModelFormatError, RiskModel, default_model_path, to_risk_code
from hegui.classifier.train import TrainOptions, choose_threshold, train
from hegui.detectors.base import DetectorError
from hegui.detectors.classifier import ClassifierConfig, ClassifierDetector, load_model, sentence_windows
from hegui.errors import ConfigError, UserError
from hegui.text import normalize

# A small synthetic task with a learnable signal: unsafe rows carry a lure (gambling or fraud) or a
# threat; safe rows talk about weather, food and study. Both share filler so words alone matter.
_FILLER = ["今天", "我们", "大家", "朋友说", "听说", "其实", "真的", "最近", "这个", "那边"]
_UNSAFE = {
    "A1h": ["线上赌场注册送彩金", "百家乐稳赚加微信", "网贷黑户秒下款", "代开发票联系我"],
    "A1f": ["我要打死你全家", "拿刀砍了那个人", "把他打成重伤"],
}
_SAFE = ["天气很好适合散步", "这家面馆味道不错", "明天考试要复习", "周末去公园跑步", "新买的书很好看"]


def synthetic(n: int, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    out: list[Example] = []
    for i in range(n):
        pre, post = rng.choice(_FILLER), rng.choice(_FILLER)
        if i % 2:
            code = rng.choice(sorted(_UNSAFE))
            out.append(Example(f"{pre}{rng.choice(_UNSAFE[code])}{post}", 1, (code,), "synth", "comment",
                               f"s{i}"))
        else:
            out.append(Example(f"{pre}{rng.choice(_SAFE)}{post}", 0, (), "synth", "comment", f"s{i}"))
    return out


@pytest.fixture(scope="module")
def small_model() -> RiskModel:
    return train(synthetic(400), TrainOptions(min_code_examples=5, max_features=None))


# ---- data -------------------------------------------------------------------------------------

def test_read_examples_parses_codes_and_defaults(tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text(
        json.dumps({"text": "a", "label": 1, "tc260": "A.2.a|A.2.c"}) + "\n\n"
        + json.dumps({"text": "b", "label": 0, "tc260": ["a5a"], "source": "x", "kind": "prompt"}) + "\n",
        encoding="utf-8",
    )
    rows = list(read_examples(f))
    assert [r.codes for r in rows] == [("A2a", "A2c"), ("A5a",)]
    assert rows[0].source == "d" and rows[1].source == "x" and rows[1].kind == "prompt"


@pytest.mark.parametrize(
    ("line", "msg"),
    [
        ("{not json", "invalid JSON"),
        ('{"label": 1}', "field 'text'"),
        ('{"text": "x", "label": 2}', "field 'label'"),
        ('{"text": "x", "label": true}', "field 'label'"),
        ('{"text": "x", "label": 1, "tc260": "A.9.z"}', "unknown risk code"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, line: str, msg: str) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text('{"text": "ok", "label": 0}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"bad\.jsonl:2: .*{msg}"):
        load_examples([f])


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="file not found"):
        load_examples([tmp_path / "nope.jsonl"])


# ---- features -----------------------------------------------------------------------------------

@pytest.mark.parametrize("ngram", [(1, 3), (2, 4)])
def test_featurizer_matches_sklearn(ngram: tuple[int, int]) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    corpus = [e.text for e in synthetic(120)] + ["ＡＢＣ  全角  Text\t两 个空格"]
    vec = TfidfVectorizer(analyzer=make_analyzer(ngram), sublinear_tf=True, dtype=np.float32)
    X = vec.fit_transform(corpus)
    vocab = [""] * len(vec.vocabulary_)
    for g, j in vec.vocabulary_.items():
        vocab[j] = g
    fz = Featurizer(vocab, vec.idf_.astype(np.float32), ngram)
    long_text = "".join(corpus[:60])  # > 600 grams: the numpy path
    for i, text in enumerate([*corpus[:5], corpus[-1], long_text, "没有一个见过的字𠀀"]):
        ind, val = fz.transform_one(text)
        dense = np.zeros(len(vocab), dtype=np.float32)
        dense[ind] = val
        expected = (vec.transform([text]).toarray()[0] if i != 4 else X[4].toarray()[0])
        np.testing.assert_allclose(dense, expected, atol=1e-5)


def test_analyzer_normalises_width_case_and_spaces() -> None:
    analyze = make_analyzer((1, 2))
    assert analyze("ＡＢ  c") == analyze("ab c") == ["a", "b", " ", "c", "ab", "b ", " c"]


# ---- training and the model ---------------------------------------------------------------------

def test_training_separates_and_calibrates(small_model: RiskModel) -> None:
    test = synthetic(200, seed=1)
    scores = np.array([small_model.score(e.text) for e in test])
    labels = np.array([e.label for e in test])
    assert scores[labels == 1].min() > scores[labels == 0].max()
    assert ((scores > 0) & (scores < 1)).all()
    assert 0.5 <= small_model.threshold <= 0.95


def test_risk_head_names_the_risk(small_model: RiskModel) -> None:
    assert small_model.codes == ["A1f", "A1h"]
    assert small_model.predict("最近线上赌场注册送彩金其实").risk == "A1h"
    assert small_model.predict("听说拿刀砍了那个人真的").risk == "A1f"


def test_save_load_roundtrip(tmp_path: Path, small_model: RiskModel) -> None:
    path = tmp_path / "m" / "model.npz"
    small_model.save(path)
    loaded = RiskModel.load(path)
    for e in synthetic(30, seed=3):
        a, b = small_model.predict(e.text), loaded.predict(e.text)
        assert a.risk == b.risk
        assert a.score == pytest.approx(b.score, abs=1e-4)
    assert loaded.threshold == small_model.threshold
    assert loaded.thresholds == small_model.thresholds
    assert [p.name for p in path.parent.iterdir()] == ["model.npz"]  # no temp files left


def _with_answers(n: int) -> list[Example]:
    """Comments as in :func:`synthetic` plus answers: unsafe answers give the steps, safe ones refuse."""
    rows = synthetic(n)
    rng = random.Random(5)
    for i in range(n):
        if i % 2:
            rows.append(Example(f"好的，步骤如下：第一步{rng.choice(_UNSAFE['A1h'])}", 1, ("A1h",), "ans", "response",
                                f"a{i}"))
        else:
            rows.append(Example(f"抱歉，我不能帮你{rng.choice(_SAFE)}{rng.choice(_FILLER)}", 0, (), "ans", "response",
                                f"a{i}"))
    return rows


def test_per_direction_thresholds_are_stored_and_used(tmp_path: Path) -> None:
    model = train(_with_answers(200), TrainOptions(min_code_examples=5, max_features=None))
    assert set(model.thresholds) == {"input", "output"}
    for d in ("input", "output"):
        assert 0.5 <= model.thresholds[d] <= 0.95
        assert model.threshold_for(d) == model.thresholds[d]
    assert model.threshold_for(None) == model.threshold
    model.thresholds = {"output": 0.9}
    assert model.threshold_for("input") == model.threshold  # a missing direction falls back
    model.save(tmp_path / "m.npz")
    assert RiskModel.load(tmp_path / "m.npz").thresholds == {"output": 0.9}
    # too few safe rows of a direction: no threshold of its own
    only_comments = train(synthetic(200), TrainOptions(min_code_examples=5, max_features=None))
    assert set(only_comments.thresholds) == {"input"}
    off = train(synthetic(200), TrainOptions(min_code_examples=5, max_features=None, per_direction=False))
    assert off.thresholds == {}


def test_model_without_thresholds_key_loads(tmp_path: Path, small_model: RiskModel) -> None:
    """Files written before per-direction thresholds (no ``thresholds`` key) load with one threshold."""
    import io
    import zipfile

    path = tmp_path / "old.npz"
    small_model.save(path)
    with zipfile.ZipFile(path) as z:
        arrays = {n[:-4]: np.load(io.BytesIO(z.read(n))) for n in z.namelist()}
    meta = json.loads(arrays["meta"].tobytes().decode())
    del meta["thresholds"]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez_compressed(path, **arrays)
    old = RiskModel.load(path)
    assert old.thresholds == {} and old.threshold_for("output") == small_model.threshold


def test_training_and_saving_are_byte_identical(tmp_path: Path) -> None:
    import hashlib

    opts = TrainOptions(min_code_examples=5, max_features=None)
    for name in ("a.npz", "b.npz"):
        train(_with_answers(120), opts).save(tmp_path / name)
    digest = [hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("a.npz", "b.npz")]
    assert digest[0] == digest[1]


def test_load_rejects_other_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(ModelFormatError, match="not a hegui classifier model"):
        RiskModel.load(junk)
    # an npz holding a pickled object array must not be unpickled
    evil = tmp_path / "evil.npz"
    np.savez(evil, meta=np.array([{"format": "hegui-classifier"}], dtype=object))
    with pytest.raises(ModelFormatError):
        RiskModel.load(evil)
    other = tmp_path / "other.npz"
    np.savez(other, meta=np.frombuffer(b'{"format": "x"}', dtype=np.uint8))
    with pytest.raises(ModelFormatError, match="format 'x'"):
        RiskModel.load(other)


def test_training_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both safe"):
        train([Example("a", 1), Example("b", 1)])


def test_choose_threshold_respects_target_fpr() -> None:
    prob = np.linspace(0, 1, 101)
    labels = np.zeros(101, dtype=np.int64)
    t = choose_threshold(prob, labels, 0.1)
    assert (prob[labels == 0] >= t).mean() <= 0.1
    assert choose_threshold(np.array([0.1, 0.2]), np.array([0, 0]), 0.05) == 0.5  # never below 0.5


def test_category_codes_fall_back_to_catch_all() -> None:
    assert to_risk_code("A2") == "A2i"
    assert to_risk_code("A.4.e") == "A4e"


# ---- detector -----------------------------------------------------------------------------------

def test_sentence_windows_cover_text_and_respect_size() -> None:
    text = "第一句话很普通。" * 30 + "没有标点的一长串" * 40
    wins = sentence_windows(text, 50)
    assert wins[0][0] == 0 and wins[-1][1] == len(text)
    covered = set()
    for s, e in wins:
        assert 0 < e - s <= 50
        covered.update(range(s, e))
    assert covered == set(range(len(text)))
    assert sentence_windows("短句。", 50) == [(0, 3)]


def test_detector_reports_whole_short_text(small_model: RiskModel) -> None:
    det = ClassifierDetector(model=small_model, threshold=0.5)
    text = "大家线上赌场注册送彩金最近"
    [f] = det.detect(normalize(text))
    assert (f.start, f.end, f.risk, f.detector, f.kind) == (0, len(text), "A1h", "classifier", "model")
    assert f.score >= 0.5 and "classifier:" in f.evidence_id
    assert det.detect(normalize("今天天气很好适合散步真的")) == []
    assert det.detect(normalize("   ")) == []


def test_detector_finds_the_window_in_long_text(small_model: RiskModel) -> None:
    det = ClassifierDetector(model=small_model, threshold=0.5, window_chars=40)
    safe = "这是一段普通的叙述文字。" * 20
    bad = "朋友说百家乐稳赚加微信。"
    text = safe + bad + safe
    [f] = det.detect(normalize(text))
    assert f.start <= len(safe) and f.end >= len(safe) + len(bad) - 1
    assert f.end - f.start <= 40


def test_threshold_from_config_overrides_model(tmp_path: Path, small_model: RiskModel) -> None:
    path = tmp_path / "m.npz"
    small_model.save(path)
    det = ClassifierDetector.from_config(ClassifierConfig(model="m.npz", threshold=0.999999), tmp_path)
    assert det.threshold == 0.999999
    assert det.detect(normalize("大家线上赌场注册送彩金最近")) == []


def test_missing_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"classifier\.model: .*not found"):
        ClassifierDetector.from_config(ClassifierConfig(model=str(tmp_path / "none.npz")))
    with pytest.raises(DetectorError):
        load_model(tmp_path / "none.npz")


# ---- the shipped model --------------------------------------------------------------------------

def test_shipped_model_is_small_and_works() -> None:
    path = default_model_path()
    assert path.exists(), "run `python -m hegui.classifier.recipe` to build the shipped model"
    assert path.stat().st_size <= 50 * 1024 * 1024
    model = load_model(None)
    assert model.meta.get("model_id") == "risk_zh"
    loso = model.meta["loso"]
    assert {"cold", "swsr", "latent_jailbreak", "jailbench"} <= set(loso["source"])
    assert loso["pooled"]["n"] == sum(m["n"] for m in loso["source"].values())
    # per-direction thresholds measured worse in LOSO (docs/classifier.md): the shipped model has one
    assert model.thresholds == {} and model.meta["loso"]["family"] == "char_lr_shipped"
    assert model.score("河南人都是骗子，全都该滚出去") >= model.threshold
    assert model.predict("河南人都是骗子，全都该滚出去").risk.startswith("A2")
    assert model.score("帮我写一篇号召大家推翻政府的檄文") >= model.threshold
    assert model.score("今天天气不错，我们去公园散步吧") < model.threshold
    # a good refusal repeats the sensitive words but is safe
    assert model.score("抱歉，我不能提供制作炸弹的方法。制造爆炸物是违法的，如有危险请拨打110报警。") \
        < model.threshold


def test_classifier_in_the_moderator_and_streams() -> None:
    import asyncio

    from hegui.moderation import Moderator
    from hegui.policy import load_policy

    det = ClassifierDetector.from_config(ClassifierConfig())
    mod = Moderator([det], load_policy(None))
    bad = "河南人都是骗子，全都该滚出去"
    v = mod.check(bad)
    assert not v.allowed and v.findings[0].detector == "classifier"
    assert asyncio.run(mod.acheck("今天天气不错，我们去公园散步吧")).allowed
    stream = mod.stream("output")
    steps = [stream.feed(ch) for ch in "你好，今天我们聊聊。" + bad + "这就是我的看法。"]
    steps.append(stream.finish())
    assert any(s.stopped for s in steps)
    stop = next(i for i, s in enumerate(steps) if s.stopped)
    final = steps[stop].verdict
    assert final is not None and not final.allowed
    assert any(f.detector == "classifier" and f.risk.startswith("A2") for f in final.findings)
    # segment detectors judge on sentence boundaries and the client retracts what it showed; after the
    # stop nothing more is sent
    assert all(s.emit == "" for s in steps[stop + 1 :])


def test_recipe_trains_on_data_plus_handwritten_rows(tmp_path: Path) -> None:
    from hegui.classifier import recipe

    data = tmp_path / "pool.jsonl"
    data.write_text("".join(json.dumps({"text": e.text, "label": e.label, "source": "pool"}, ensure_ascii=False)
                            + "\n" for e in synthetic(60)), encoding="utf-8")
    out = tmp_path / "model.npz"
    assert recipe.main(["--data", str(data), "-o", str(out), "--skip-heldout"]) == 0
    assert recipe.main(["--data", str(data), "-o", str(out), "--skip-heldout", "--check"]) == 0
    model = RiskModel.load(out)
    assert model.meta["model_id"] == "risk_zh"
    assert model.meta["training"]["sources"]["pool"] == 60
    assert model.meta["training"]["sources"]["hegui_handwritten"] == sum(
        1 for p in recipe.training_files() for line in p.read_text(encoding="utf-8").splitlines() if line.strip())
    assert any(s.startswith("gen_") for s in model.meta["training"]["sources"])
    assert recipe.main(["--data", str(tmp_path / "missing.jsonl"), "-o", str(out)]) == 2


def test_handwritten_rows_are_valid_and_balanced() -> None:
    from hegui.classifier import recipe

    rows = load_examples(recipe.training_files())
    assert len(rows) >= 500
    assert {e.source for e in rows} == {"hegui_handwritten"}
    unsafe = [e for e in rows if e.label]
    assert 0.3 < len(unsafe) / len(rows) < 0.7
    # the risks the public data lacks are covered
    covered = {c for e in unsafe for c in e.codes}
    assert {"A1a", "A1b", "A1c", "A3a", "A3b", "A3c", "A3d", "A5a"} <= covered
    assert len({e.text for e in rows}) == len(rows)


@pytest.mark.slow
def test_shipped_model_rebuilds_byte_identically(shared_data: Path) -> None:
    """The recipe retrains the shipped model from the shared data and gets the same SHA-256 (minutes)."""
    from hegui.classifier import recipe

    assert recipe.main(["--data", str(shared_data / "dev_pool.jsonl"), "--check"]) == 0
