"""The leave-one-source-out harness and the alternative families (fastText-style, char CNN)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import scipy.sparse as sp

from hegui.classifier.cnn import CNNOptions, train_cnn
from hegui.classifier.data import Example
from hegui.classifier.fasttext import FastTextOptions, train_fasttext
from hegui.classifier.loso import (
    Corpus,
    FamilySpec,
    FoldTfidf,
    auc,
    best_f1_at_fpr,
    count_matrix,
    plan_folds,
    run_family,
    summarize,
)

_UNSAFE = ["线上赌场注册送彩金", "百家乐稳赚加微信", "网贷黑户秒下款", "我要打死你全家", "拿刀砍了那个人"]
_SAFE = ["天气很好适合散步", "这家面馆味道不错", "明天考试要复习", "周末去公园跑步", "新买的书很好看"]
_FILL = ["今天", "我们", "听说", "其实", "最近", "那边"]


def _rows(source: str, n: int, seed: int, kind: str = "comment") -> list[Example]:
    rng = random.Random(f"{source}{seed}")
    out = []
    for i in range(n):
        lab = i % 2
        core = rng.choice(_UNSAFE if lab else _SAFE)
        out.append(Example(f"{rng.choice(_FILL)}{core}{rng.choice(_FILL)}", lab, (), source, kind, f"{source}/{i}"))
    return out


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    ex: list[Example] = []
    roles: list = []
    for src, n in (("cold", 120), ("swsr", 80), ("jade_db", 60)):
        rows = _rows(src, n, 0, "prompt" if src == "jade_db" else "comment")
        ex += rows
        roles += ["dev" if src != "swsr" else "extra"] * len(rows)
    hand = _rows("hegui_handwritten", 40, 1)
    ex += hand
    roles += ["hand"] * len(hand)
    held = _rows("gen_ads", 30, 2)
    ex += held
    roles += ["gen_heldout"] * len(held)
    bank = [Example("法院是怎么审理案件的", 0, (), "bank_should_not_refuse", "prompt", "bank/0")]
    ex += bank
    roles += ["bank"]
    return Corpus(ex, roles)


def test_each_source_is_scored_only_by_the_model_that_never_saw_it(corpus: Corpus) -> None:
    spec = FamilySpec("t", pools=("dev", "extra", "hand"), max_features=5000)
    feats = {"char13": count_matrix([e.text for e in corpus.examples], "char13", None)}
    res = run_family(spec, corpus, feats, sources=("cold", "swsr", "jade_db"))
    for i, fold in res.scored_by.items():
        e = corpus.examples[i]
        assert e.id not in res.train_ids[fold]
        if corpus.roles[i] in ("dev", "extra"):
            assert fold == e.source
        else:
            assert fold == "all"
    # every real row scored once; generated held-out and bank rows never trained on
    assert sum(1 for i in res.scored_by if corpus.roles[i] in ("dev", "extra")) == 260
    never = {e.id for e, r in zip(corpus.examples, corpus.roles, strict=True) if r in ("gen_heldout", "bank")}
    assert all(not (never & ids) for ids in res.train_ids.values())
    s = summarize(res, corpus)
    assert set(s["direction"]["source"]) == {"cold", "swsr", "jade_db"}
    assert s["direction"]["pooled"]["n"] == 260
    assert s["direction"]["generated_heldout"]["gen_ads"]["n"] == 30
    assert s["over_refusal"]["hegui should_not_refuse bank"]["n"] == 1
    # the signal is learnable across sources, so held-out F1 is high
    assert s["direction"]["pooled"]["f1"] > 0.9


def test_a_source_outside_the_family_pool_is_scored_by_the_all_model(corpus: Corpus) -> None:
    spec = FamilySpec("t", pools=("dev", "hand"))
    folds = {name: (tr, te) for name, tr, te in plan_folds(spec, corpus, ("cold", "swsr", "jade_db"))}
    assert set(folds) == {"cold", "jade_db", "all"}
    swsr = {i for i, e in enumerate(corpus.examples) if e.source == "swsr"}
    assert swsr <= set(folds["all"][1].tolist())
    assert not swsr & set(folds["all"][0].tolist())


def test_fold_tfidf_equals_sklearn_fitted_on_the_training_rows(corpus: Corpus) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from hegui.classifier.features import make_analyzer

    texts = [e.text for e in corpus.examples]
    X = count_matrix(texts, "char13", None)
    rows = np.arange(0, 150)
    ft = FoldTfidf.fit(X, rows, min_df=2, max_features=None)
    vec = TfidfVectorizer(analyzer=make_analyzer((1, 3)), min_df=2, sublinear_tf=True, dtype=np.float32)
    ref_train = vec.fit_transform([texts[i] for i in rows])
    test = np.arange(150, 200)
    ref_test = vec.transform([texts[i] for i in test])
    assert len(ft.cols) == len(vec.vocabulary_)
    np.testing.assert_allclose(np.sort(ft.idf), np.sort(vec.idf_.astype(np.float32)), rtol=1e-5)
    # same matrices up to column order: compare row norms of products with a random vector keyed by n-gram
    from sklearn.feature_extraction.text import CountVectorizer

    cv = CountVectorizer(analyzer=make_analyzer((1, 3)), dtype=np.float32).fit(texts)
    inv = {j: g for g, j in cv.vocabulary_.items()}
    rng = np.random.default_rng(0)
    key = {g: rng.standard_normal() for g in vec.vocabulary_}
    mine_v = np.asarray([key[inv[int(c)]] for c in ft.cols])
    ref_v = np.zeros(len(vec.vocabulary_))
    for g, j in vec.vocabulary_.items():
        ref_v[j] = key[g]
    np.testing.assert_allclose(ft.transform(X, test) @ mine_v, ref_test @ ref_v, atol=1e-5)
    np.testing.assert_allclose(ft.transform(X, rows) @ mine_v, ref_train @ ref_v, atol=1e-5)


def test_auc_and_best_f1_by_hand() -> None:
    p = np.asarray([0.9, 0.8, 0.7, 0.6, 0.2])
    y = np.asarray([1, 0, 1, 0, 0])
    # pairs (pos, neg): 0.9 beats all 3; 0.7 beats 0.6 and 0.2 → 5 of 6
    assert auc(p, y) == pytest.approx(5 / 6, abs=1e-4)
    assert auc(p, np.ones(5, dtype=np.int64)) is None
    # FPR ≤ 0: only the top row can be flagged → P 1, R 0.5, F1 2/3
    b = best_f1_at_fpr(p, y, 0.0)
    assert b["f1"] == pytest.approx(2 / 3, abs=1e-4) and b["fpr"] == 0.0
    # FPR ≤ 1/3: flag top three → tp 2, fp 1, F1 = 4/5
    assert best_f1_at_fpr(p, y, 0.34)["f1"] == pytest.approx(0.8, abs=1e-4)


def _task(n: int = 300) -> tuple[list[str], np.ndarray]:
    rows = _rows("x", n, 3)
    return [e.text for e in rows], np.asarray([e.label for e in rows], dtype=np.int64)


def test_fasttext_is_deterministic_and_learns() -> None:
    texts, y = _task()
    X = count_matrix(texts, "char13", None)
    a = train_fasttext(X, y, options=FastTextOptions(seed=1, epochs=8))
    b = train_fasttext(X, y, options=FastTextOptions(seed=1, epochs=8))
    c = train_fasttext(X, y, options=FastTextOptions(seed=2, epochs=8))
    assert np.array_equal(a.emb, b.emb) and np.array_equal(a.out, b.out) and a.bias == b.bias
    assert not np.array_equal(a.emb, c.emb)
    dec = a.decision(X)
    assert auc(dec, y) > 0.95
    # collapsing to one weight vector gives the same scores
    xl = sp.csr_matrix(X / np.asarray(X.sum(axis=1)))
    np.testing.assert_allclose(dec, xl @ a.weights() + a.bias, rtol=1e-4, atol=1e-5)


def test_cnn_is_deterministic_and_learns() -> None:
    texts, y = _task(240)
    o = CNNOptions(dim=8, filters=16, epochs=4, batch=32, lr=5e-3, seed=4)
    a = train_cnn(texts, y, options=o)
    b = train_cnn(texts, y, options=o)
    assert np.array_equal(a.emb, b.emb) and np.array_equal(a.conv, b.conv) and a.bias == b.bias
    assert auc(a.decision(texts), y) > 0.95
    # unseen characters map to the OOV row and short texts still score
    assert np.isfinite(a.decision_one("龘"))
