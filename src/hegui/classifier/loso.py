"""Leave-one-source-out (LOSO) evaluation of classifier families: ``python -m hegui.classifier.loso``.

For every real source of the two development pools, a model is trained without that source
(everything else real in the family's pools, generated *train*-style rows and hegui's hand-written
rows) and scores it at the thresholds it chose on its own out-of-fold training scores. The pooled
row gathers all those held-out predictions (each real row scored by the one model that never saw
its source) and is the headline figure. One more model per family, trained on its whole pool,
scores what is never trained on: generated *held-out*-style rows (separate figures, never mixed
into the real ones) and hegui's should-not-refuse bank.

Features are counted once over every text and cached under ``--cache``; each fold then keeps only
the n-grams its own training rows have (``min_df`` and ``max_features`` computed on them, IDF
too), which is what :class:`~sklearn.feature_extraction.text.TfidfVectorizer` fitted on the
fold's training rows would give (a test checks it), so nothing of a held-out source leaks in.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from hegui.classifier.data import Example, read_examples
from hegui.classifier.train import (
    calibration_rows,
    choose_threshold,
    direction,
    direction_thresholds,
    metrics_from_counts,
    source_weights,
)

DEV_SOURCES = ("cold", "jade_db", "cvalues", "safetybench")
EXTRA_SOURCES = ("swsr", "rtplx_zh", "latent_jailbreak", "jailbench", "multijail_zh")
REAL_SOURCES = DEV_SOURCES + EXTRA_SOURCES
Role = Literal["dev", "extra", "hand", "gen", "gen_heldout", "bank"]
TRAINABLE: tuple[Role, ...] = ("dev", "extra", "hand", "gen")
Progress = Callable[[str], None]


# ---- the corpus -------------------------------------------------------------------------------

@dataclass
class Corpus:
    examples: list[Example]
    roles: list[Role]

    def __len__(self) -> int:
        return len(self.examples)

    def digest(self) -> str:
        h = hashlib.sha256()
        for e, r in zip(self.examples, self.roles, strict=True):
            h.update(f"{r}\t{e.source}\t{e.label}\t{e.text}\n".encode())
        return h.hexdigest()[:16]


def handwritten_files() -> list[Path]:
    return sorted((Path(__file__).resolve().parent.parent / "data" / "training").glob("*.jsonl"))


def bank_examples() -> list[Example]:
    """hegui's starter should-not-refuse questions, as safe prompts (evaluation only)."""
    p = Path(__file__).resolve().parent.parent / "data" / "banks" / "should_not_refuse.jsonl"
    out = []
    with p.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                o = json.loads(line)
                out.append(Example(text=o["question"], label=0, source="bank_should_not_refuse", kind="prompt",
                                   id=str(o.get("id", ""))))
    return out


GENERATED_DIR = Path(__file__).resolve().parent.parent / "data" / "training" / "generated"


def generated_snapshot(style: str) -> Path:
    """The committed snapshot of the generators' rows in one style (``synth_train.jsonl`` is trained
    on; ``synth_heldout.jsonl`` only ever scored): the shipped model and its LOSO figures do not move
    when a generator changes, until the snapshot is refreshed on purpose (``recipe --regenerate``)."""
    return GENERATED_DIR / f"synth_{style}.jsonl"


def generated_examples(style: str, seed: int = 0, per_genre: int | None = None, *,
                       live: bool = False) -> list[Example]:
    """Generated rows in one style: the committed snapshot, or with ``live`` (or no snapshot) a fresh
    run of ``hegui.classifier.synth`` (1,000 rows a genre in the train style, 300 held-out style)."""
    snap = generated_snapshot(style)
    if not live and snap.exists():
        return list(read_examples(snap))
    try:
        from hegui.classifier import synth
    except ImportError:  # pragma: no cover - the generators ship with hegui
        return []
    n = per_genre if per_genre is not None else (1000 if style == "train" else 300)
    rows = synth.generate_all(per_genre=n, seed=seed, style=style)  # type: ignore[arg-type]
    return [_row_example(r) for r in rows]


def _row_example(r: Any) -> Example:
    from hegui.classifier.data import parse_codes

    return Example(text=r["text"], label=int(r["label"]), codes=parse_codes(r.get("tc260"), str(r.get("id", ""))),
                   source=str(r["source"]), kind=str(r.get("kind", "")), id=str(r.get("id", "")),
                   split=str(r.get("split", "")), prompt=str(r.get("prompt", "")))


def load_corpus(data_dir: Path, *, gen_train: Sequence[Example] = (), gen_heldout: Sequence[Example] = (),
                bank: Sequence[Example] | None = None) -> Corpus:
    ex: list[Example] = []
    roles: list[Role] = []

    def add(rows: Sequence[Example], role: Role) -> None:
        ex.extend(rows)
        roles.extend([role] * len(rows))

    add(list(read_examples(data_dir / "dev_pool.jsonl")), "dev")
    extra = data_dir / "extra_pool.jsonl"
    if extra.exists():
        add(list(read_examples(extra)), "extra")
    for f in handwritten_files():
        add(list(read_examples(f)), "hand")
    add(list(gen_train), "gen")
    add(list(gen_heldout), "gen_heldout")
    add(list(bank_examples() if bank is None else bank), "bank")
    return Corpus(ex, roles)


# ---- cached features ---------------------------------------------------------------------------

def count_matrix(texts: Sequence[str], analyzer_name: str, cache: Path | None,
                 progress: Progress | None = None) -> sp.csr_matrix:
    """Counts of every n-gram of every text (one global vocabulary), cached by content hash."""
    from sklearn.feature_extraction.text import CountVectorizer

    h = hashlib.sha256(analyzer_name.encode())
    for t in texts:
        h.update(t.encode("utf-8") + b"\x00")
    key = h.hexdigest()[:20]
    path = cache / f"{analyzer_name}-{key}.npz" if cache is not None else None
    if path is not None and path.exists():
        return sp.load_npz(path).tocsr()
    if progress:
        progress(f"counting {analyzer_name} n-grams of {len(texts):,} texts (cached afterwards)")
    vec = CountVectorizer(analyzer=analyzer(analyzer_name), dtype=np.float32)
    X = vec.fit_transform(texts).tocsr()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        sp.save_npz(tmp, X)
        os.replace(tmp, path)
    return X


def analyzer(name: str) -> Callable[[str], list[str]]:
    from hegui.classifier.features import make_analyzer

    if name == "char13":
        return make_analyzer((1, 3))
    if name == "word12":
        from hegui.classifier.words import word_analyzer

        return word_analyzer(bigrams=True)
    raise ValueError(f"unknown analyzer {name!r}")


@dataclass
class FoldTfidf:
    """The TF-IDF columns and weights a fold's training rows choose."""

    cols: npt.NDArray[np.intp]
    idf: npt.NDArray[np.float32]

    @classmethod
    def fit(cls, X: sp.csr_matrix, rows: npt.NDArray[np.intp], min_df: int = 2,
            max_features: int | None = 100_000) -> FoldTfidf:
        sub = X[rows]
        n = sub.shape[0]
        df = np.bincount(sub.indices, minlength=X.shape[1])
        tf = np.asarray(sub.sum(axis=0)).ravel()
        keep = np.flatnonzero(df >= min(min_df, max(1, n // 2)))
        if max_features is not None and len(keep) > max_features:
            # most frequent first; ties by column (= n-gram order, as the vocabulary is sorted)
            keep = keep[np.lexsort((keep, -tf[keep]))[:max_features]]
            keep.sort()
        idf = (np.log((1.0 + n) / (1.0 + df[keep])) + 1.0).astype(np.float32)
        return cls(cols=keep, idf=idf)

    def transform(self, X: sp.csr_matrix, rows: npt.NDArray[np.intp]) -> sp.csr_matrix:
        from sklearn.preprocessing import normalize

        sub = X[rows][:, self.cols].tocsr()
        sub.data = 1.0 + np.log(sub.data)
        sub = sp.csr_matrix(sub @ sp.diags(self.idf), dtype=np.float32)
        return normalize(sub)


# ---- families ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class FamilySpec:
    name: str
    learner: Literal["lr", "fasttext", "cnn"] = "lr"
    features: tuple[str, ...] = ("char13",)
    pools: tuple[Role, ...] = ("dev", "extra", "hand", "gen")
    C: float = 4.0
    max_features: int = 100_000
    source_balance: float = 0.5
    target_fpr: float = 0.05
    per_direction: bool = True
    calibrate_without: tuple[str, ...] = ()
    seed: int = 0
    note: str = ""


FAMILIES: dict[str, FamilySpec] = {f.name: f for f in [
    FamilySpec("char_lr_dev", pools=("dev", "hand"), per_direction=False,
               note="the previous shipped recipe: char 1–3 TF-IDF LR on dev_pool + hand-written"),
    FamilySpec("char_lr_real", pools=("dev", "extra", "hand"), note="+ extra_pool"),
    FamilySpec("char_lr", note="+ extra_pool + generated train-style rows"),
    FamilySpec("char_lr_fpr08", target_fpr=0.08, note="char_lr, thresholds at 8% out-of-fold FPR"),
    FamilySpec("char_lr_realcal", calibrate_without=("gen_",),
               note="char_lr, calibration and thresholds on real + hand-written rows only"),
    FamilySpec("char_lr_realcal_fpr04", calibrate_without=("gen_",), target_fpr=0.04,
               note="char_lr_realcal, thresholds at 4% out-of-fold FPR"),
    FamilySpec("char_lr_realcal_b03", calibrate_without=("gen_",), source_balance=0.3,
               note="char_lr_realcal, source balance 0.3"),
    FamilySpec("char_lr_shipped", calibrate_without=("gen_",), source_balance=0.3, per_direction=False,
               note="shipped: char_lr_realcal_b03 with one threshold (per-direction thresholds measured worse)"),
    FamilySpec("word_lr", features=("word12",), note="jieba word 1–2-grams, LR"),
    FamilySpec("charword_lr", features=("char13", "word12"), max_features=150_000,
               note="char 1–3 + jieba word 1–2-grams, LR"),
    FamilySpec("fasttext", learner="fasttext", note="fastText-style: averaged n-gram embeddings (dim 16), logistic"),
    FamilySpec("cnn", learner="cnn", features=(), note="char CNN: emb 32 → conv 3×96 → max-pool → logistic"),
]}


@dataclass
class Fit:
    thresholds: dict[str, float]
    calibration: tuple[float, float]
    test_prob: npt.NDArray[np.float64]
    seconds: float


def fit_and_score(spec: FamilySpec, corpus: Corpus, feats: dict[str, sp.csr_matrix],
                  train_idx: npt.NDArray[np.intp], test_idx: npt.NDArray[np.intp]) -> Fit:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    t0 = time.perf_counter()
    ex = corpus.examples
    tr = [ex[i] for i in train_idx]
    y = np.asarray([e.label for e in tr], dtype=np.int64)
    w = source_weights(tr, spec.source_balance)
    calib_rows: npt.NDArray[np.intp]
    if spec.learner == "cnn":
        from hegui.classifier.cnn import CNNOptions, train_cnn

        # one stratified 85/15 split instead of 3-fold: the CNN is the slow family to train
        rng = np.random.default_rng(spec.seed)
        val = np.zeros(len(tr), dtype=bool)
        for lab in (0, 1):
            ids = np.flatnonzero(y == lab)
            val[rng.choice(ids, size=max(1, len(ids) * 15 // 100), replace=False)] = True
        fit_rows = np.flatnonzero(~val)
        m = train_cnn([tr[i].text for i in fit_rows], y[fit_rows], w[fit_rows], CNNOptions(seed=spec.seed))
        calib_rows = np.flatnonzero(val)
        calib_dec = m.decision([tr[i].text for i in calib_rows])
        test_dec = m.decision([ex[i].text for i in test_idx])
    else:
        blocks_tr, blocks_te = [], []
        for name in spec.features:
            tf = FoldTfidf.fit(feats[name], train_idx, max_features=spec.max_features // len(spec.features))
            blocks_tr.append(tf.transform(feats[name], train_idx))
            blocks_te.append(tf.transform(feats[name], test_idx))
        if len(blocks_tr) == 1:
            Xtr, Xte = blocks_tr[0], blocks_te[0]
        else:
            from sklearn.preprocessing import normalize

            Xtr = normalize(sp.hstack(blocks_tr).tocsr())
            Xte = normalize(sp.hstack(blocks_te).tocsr())

        def learn(rows: npt.NDArray[np.intp]) -> Callable[[Any], npt.NDArray[np.float64]]:
            if spec.learner == "fasttext":
                from hegui.classifier.fasttext import FastTextOptions, train_fasttext

                # the TF-IDF rows, L1-normalised inside: an IDF-weighted average of the embeddings
                mf = train_fasttext(Xtr[rows], y[rows], w[rows], FastTextOptions(seed=spec.seed))
                return mf.decision
            lr = LogisticRegression(C=spec.C, max_iter=2000, solver="liblinear", random_state=spec.seed)
            lr.fit(Xtr[rows], y[rows], sample_weight=w[rows])
            return lambda X: np.asarray(lr.decision_function(X), dtype=np.float64)

        oof = np.zeros(len(tr))
        cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=spec.seed)
        for a, b in cv.split(np.zeros(len(y)), y):
            oof[b] = learn(a)(Xtr[b])
        calib_rows = np.arange(len(tr))
        calib_dec = oof
        test_dec = learn(np.arange(len(tr)))(Xte)
    real_cal = calibration_rows([tr[i] for i in calib_rows], spec.calibrate_without)
    calib_rows, calib_dec = calib_rows[real_cal], calib_dec[real_cal]
    yc, wc = y[calib_rows], w[calib_rows]
    platt = LogisticRegression(C=1e4, solver="lbfgs").fit(calib_dec.reshape(-1, 1), yc, sample_weight=wc)
    a, c = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    prob_c = 1.0 / (1.0 + np.exp(-(a * calib_dec + c)))
    thresholds = {"default": choose_threshold(prob_c, yc, spec.target_fpr, wc)}
    if spec.per_direction:
        thresholds.update(direction_thresholds(prob_c, yc, wc, [tr[i].kind for i in calib_rows], spec.target_fpr))
    test_prob = 1.0 / (1.0 + np.exp(-(a * test_dec + c)))
    return Fit(thresholds=thresholds, calibration=(a, c), test_prob=test_prob, seconds=time.perf_counter() - t0)


# ---- metrics -----------------------------------------------------------------------------------

def auc(prob: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]) -> float | None:
    """Area under the ROC curve (Mann–Whitney, ties counted half); ``None`` with one class only."""
    pos, neg = int(labels.sum()), int(len(labels) - labels.sum())
    if pos == 0 or neg == 0:
        return None
    from scipy.stats import rankdata

    r = rankdata(prob)
    return round(float((r[labels == 1].sum() - pos * (pos + 1) / 2) / (pos * neg)), 4)


def group_metrics(prob: npt.NDArray[np.float64], flagged: npt.NDArray[np.bool_],
                  labels: npt.NDArray[np.int64]) -> dict[str, Any]:
    y = labels.astype(bool)
    m: dict[str, Any] = metrics_from_counts(int((flagged & y).sum()), int((flagged & ~y).sum()),
                                            int((~flagged & y).sum()), int((~flagged & ~y).sum()))
    m["unsafe"] = int(y.sum())
    m["auc"] = auc(prob, labels)
    return m


def best_f1_at_fpr(prob: npt.NDArray[np.float64], labels: npt.NDArray[np.int64], max_fpr: float) -> dict[str, Any]:
    """The best F1 over thresholds whose FPR on these rows is ≤ ``max_fpr`` (an oracle threshold,
    for comparing families apart from how each picks its threshold)."""
    order = np.argsort(-prob, kind="stable")
    y = labels[order].astype(bool)
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    P, N = int(y.sum()), int((~y).sum())
    ok = fp / max(N, 1) <= max_fpr
    # only cut between distinct scores
    distinct = np.r_[prob[order][1:] != prob[order][:-1], True]
    ok &= distinct
    if not ok.any() or P == 0:
        return {"f1": 0.0, "threshold": None}
    f1 = 2 * tp / (tp + fp + P)
    k = int(np.argmax(np.where(ok, f1, -1)))
    return {"f1": round(float(f1[k]), 4), "precision": round(float(tp[k] / (tp[k] + fp[k])), 4),
            "recall": round(float(tp[k] / P), 4), "fpr": round(float(fp[k] / max(N, 1)), 4),
            "threshold": round(float(prob[order][k]), 4)}


# ---- the run -----------------------------------------------------------------------------------

@dataclass
class FamilyResult:
    spec: FamilySpec
    prob: dict[int, float] = field(default_factory=dict)
    flag_default: dict[int, bool] = field(default_factory=dict)
    flag_dir: dict[int, bool] = field(default_factory=dict)
    scored_by: dict[int, str] = field(default_factory=dict)
    folds: dict[str, dict[str, Any]] = field(default_factory=dict)
    train_ids: dict[str, set[str]] = field(default_factory=dict)


def plan_folds(spec: FamilySpec, corpus: Corpus,
               sources: Sequence[str] = REAL_SOURCES) -> list[tuple[str, npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
    """(fold name, train rows, test rows): one fold per real source, plus ``all`` (the family's whole
    pool) that scores the evaluation-only rows and every real source the family does not train on."""
    src = np.asarray([e.source for e in corpus.examples])
    roles = np.asarray(corpus.roles)
    pool = np.isin(roles, spec.pools)
    real = np.isin(roles, ("dev", "extra"))
    folds = []
    unseen: list[npt.NDArray[np.intp]] = []
    for s in sources:
        test = np.flatnonzero(real & (src == s))
        if len(test) == 0:
            continue
        if not (pool & (src == s)).any():
            unseen.append(test)  # never in this family's pool: the all-pool model scores it
            continue
        folds.append((s, np.flatnonzero(pool & (src != s)), test))
    evals = np.flatnonzero(np.isin(roles, ("gen_heldout", "bank")))
    folds.append(("all", np.flatnonzero(pool), np.concatenate([*unseen, evals]).astype(np.intp)))
    return folds


def run_family(spec: FamilySpec, corpus: Corpus, feats: dict[str, sp.csr_matrix],
               progress: Progress | None = None, sources: Sequence[str] = REAL_SOURCES) -> FamilyResult:
    res = FamilyResult(spec)
    for name, train_idx, test_idx in plan_folds(spec, corpus, sources):
        overlap = set(train_idx.tolist()) & set(test_idx.tolist())
        assert not overlap, f"fold {name}: held-out rows in training"
        fit = fit_and_score(spec, corpus, feats, train_idx, test_idx)
        res.train_ids[name] = {corpus.examples[i].id for i in train_idx}
        res.folds[name] = {"train_rows": len(train_idx), "test_rows": len(test_idx),
                           "thresholds": fit.thresholds, "calibration": [round(x, 6) for x in fit.calibration],
                           "seconds": round(fit.seconds, 1)}
        for j, i in enumerate(test_idx.tolist()):
            p = float(fit.test_prob[j])
            d = direction(corpus.examples[i].kind)
            res.prob[i] = p
            res.flag_default[i] = p >= fit.thresholds["default"]
            res.flag_dir[i] = p >= fit.thresholds.get(d, fit.thresholds["default"])
            res.scored_by[i] = name
        if progress:
            th = ", ".join(f"{k} {v:.3f}" for k, v in fit.thresholds.items())
            progress(f"  {spec.name}: without {name}: {len(train_idx):,} train, {len(test_idx):,} scored, "
                     f"thresholds {th}, {fit.seconds:.0f} s")
    return res


def summarize(res: FamilyResult, corpus: Corpus, max_fpr: float = 0.10) -> dict[str, Any]:
    ex = corpus.examples
    roles = corpus.roles

    def metrics(rows: list[int], mode: str) -> dict[str, Any]:
        flags = res.flag_dir if mode == "direction" else res.flag_default
        p = np.asarray([res.prob[i] for i in rows])
        f = np.asarray([flags[i] for i in rows], dtype=bool)
        y = np.asarray([ex[i].label for i in rows], dtype=np.int64)
        return group_metrics(p, f, y)

    real = [i for i in sorted(res.prob) if roles[i] in ("dev", "extra")]
    out: dict[str, Any] = {"family": asdict(res.spec), "folds": res.folds}
    for mode in ("direction", "default"):
        block: dict[str, Any] = {}
        by_source: dict[str, list[int]] = defaultdict(list)
        by_kind: dict[str, list[int]] = defaultdict(list)
        by_sk: dict[str, list[int]] = defaultdict(list)
        for i in real:
            by_source[ex[i].source].append(i)
            by_kind[ex[i].kind].append(i)
            by_sk[f"{ex[i].source}/{ex[i].kind}"].append(i)
        block["pooled"] = metrics(real, mode)
        block["kind"] = {k: metrics(v, mode) for k, v in sorted(by_kind.items())}
        block["source"] = {s: metrics(by_source[s], mode) for s in REAL_SOURCES if s in by_source}
        gen = defaultdict(list)
        for i in sorted(res.prob):
            if roles[i] == "gen_heldout":
                gen[ex[i].source].append(i)
        block["generated_heldout"] = {s: metrics(v, mode) for s, v in sorted(gen.items())}
        if gen:
            block["generated_heldout_pooled"] = metrics([i for v in gen.values() for i in v], mode)
        out[mode] = block
    p = np.asarray([res.prob[i] for i in real])
    y = np.asarray([ex[i].label for i in real], dtype=np.int64)
    out["pooled_best_f1_at_fpr"] = {"max_fpr": max_fpr, **best_f1_at_fpr(p, y, max_fpr)}
    out["over_refusal"] = over_refusal(res, corpus)
    return out


def over_refusal(res: FamilyResult, corpus: Corpus) -> dict[str, Any]:
    """Share of should-not-refuse questions flagged (at the input threshold)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i in sorted(res.prob):
        e, r = corpus.examples[i], corpus.roles[i]
        if e.label:
            continue
        if e.source == "cvalues" and r == "dev":
            groups["cvalues (held out)"].append(i)
        elif r == "gen_heldout" and "nonrefusal" in e.source:
            groups[f"{e.source} (held-out style)"].append(i)
        elif r == "bank":
            groups["hegui should_not_refuse bank"].append(i)
    out = {}
    for g, rows in groups.items():
        k = sum(res.flag_dir[i] for i in rows)
        out[g] = {"n": len(rows), "flagged": int(k), "rate": round(k / len(rows), 4)}
    return out


# ---- markdown ----------------------------------------------------------------------------------

def _f(x: Any) -> str:
    return "—" if x is None else f"{x:.3f}"


def macro(block: dict[str, Any]) -> dict[str, float | None]:
    """Unweighted means over sources, so COLD's 37,315 rows do not stand for every genre: F1 over
    sources with both classes, recall over all-unsafe sources, FPR over sources with safe rows."""
    src = block["source"].values()
    two = [m["f1"] for m in src if 0 < m["unsafe"] < m["n"]]
    uns = [m["recall"] for m in src if m["unsafe"] == m["n"]]
    fpr = [m["fpr"] for m in src if m["unsafe"] < m["n"]]

    def mean(xs: list[float]) -> float | None:
        return round(sum(xs) / len(xs), 4) if xs else None

    return {"f1_two_class": mean(two), "recall_all_unsafe": mean(uns), "fpr": mean(fpr)}


def markdown(summaries: Sequence[dict[str, Any]], mode: str = "direction") -> str:
    lines: list[str] = []
    lines.append("| family | pooled P | R | F1 | FPR | AUC | comment F1 / FPR | prompt F1 / FPR | response F1 / FPR "
                 "| best F1 at FPR ≤ 10% | macro F1 / recall / FPR | over-refusal (CValues / bank) "
                 "| generated held-out F1 / FPR |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in summaries:
        b = s[mode]
        pm = b["pooled"]
        kinds = [f"{_f(b['kind'][k]['f1'])} / {_f(b['kind'][k]['fpr'])}" if k in b["kind"] else "—"
                 for k in ("comment", "prompt", "response")]
        orf = s["over_refusal"]
        cv = orf.get("cvalues (held out)", {}).get("rate")
        bank = orf.get("hegui should_not_refuse bank", {}).get("rate")
        gp = b.get("generated_heldout_pooled")
        gtxt = f"{_f(gp['f1'])} / {_f(gp['fpr'])}" if gp else "—"
        best = s["pooled_best_f1_at_fpr"]
        mc = macro(b)
        lines.append(f"| {s['family']['name']} | {_f(pm['precision'])} | {_f(pm['recall'])} | **{_f(pm['f1'])}** | "
                     f"{_f(pm['fpr'])} | {_f(pm['auc'])} | {kinds[0]} | {kinds[1]} | {kinds[2]} | "
                     f"{_f(best['f1'])} | {_f(mc['f1_two_class'])} / {_f(mc['recall_all_unsafe'])} / "
                     f"{_f(mc['fpr'])} | {_f(cv)} / {_f(bank)} | {gtxt} |")
    return "\n".join(lines) + "\n"


def markdown_sources(s: dict[str, Any], mode: str = "direction") -> str:
    b = s[mode]
    lines = [f"**{s['family']['name']}** ({s['family']['note']})", "",
             "| held out | kind | n | unsafe | precision | recall | F1 | FPR | AUC |", "|---|---|---|---|---|---|---|---|---|"]

    def row(name: str, kind: str, m: dict[str, Any]) -> str:
        single = m["unsafe"] in (0, m["n"])
        prec = "—" if m["unsafe"] == 0 else _f(m["precision"])
        rec = "—" if m["unsafe"] == 0 else _f(m["recall"])
        f1 = "—" if single else _f(m["f1"])
        fpr = "—" if m["unsafe"] == m["n"] else _f(m["fpr"])
        return f"| {name} | {kind} | {m['n']:,} | {m['unsafe']:,} | {prec} | {rec} | {f1} | {fpr} | {_f(m['auc'])} |"

    kinds = {"cold": "comment", "safetybench": "comment", "swsr": "comment", "rtplx_zh": "comment",
             "jade_db": "prompt", "cvalues": "prompt", "jailbench": "prompt", "multijail_zh": "prompt",
             "latent_jailbreak": "response"}
    for src, m in b["source"].items():
        lines.append(row(src, kinds.get(src, ""), m))
    for k, m in b["kind"].items():
        lines.append(row(f"*pooled {k}*", k, m))
    lines.append(row("**pooled (all real)**", "all", b["pooled"]))
    for src, m in b.get("generated_heldout", {}).items():
        lines.append(row(f"{src} (generated, held-out style)", "", m))
    return "\n".join(lines) + "\n"


# ---- CLI ---------------------------------------------------------------------------------------

def shared_data_dir() -> Path:
    env = os.environ.get("HEGUI_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def build_features(spec_list: Sequence[FamilySpec], corpus: Corpus, cache: Path | None,
                   progress: Progress | None) -> dict[str, sp.csr_matrix]:
    texts = [e.text for e in corpus.examples]
    need = sorted({f for s in spec_list for f in s.features})
    return {name: count_matrix(texts, name, cache, progress) for name in need}


def write_results(doc: dict[str, Any], out: Path) -> None:
    """The JSON results and, next to them, the markdown tables (both via temp file + rename)."""
    summaries = doc["families"]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    md = ["## Pooled (thresholds per direction)", "", markdown(summaries), "",
          "## Pooled (one threshold)", "", markdown(summaries, "default"), ""]
    for s in summaries:
        md += [markdown_sources(s), ""]
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(md), encoding="utf-8")
    os.replace(tmp, out.with_suffix(".md"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hegui.classifier.loso", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="folder with dev_pool.jsonl and extra_pool.jsonl")
    ap.add_argument("--families", default="char_lr_dev,char_lr_real,char_lr",
                    help=f"comma-separated, of: {', '.join(FAMILIES)}")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/hegui-loso-cache"), help="feature cache folder")
    ap.add_argument("--out", type=Path, default=Path("loso.json"), help="JSON results (a .md table is written next to it)")
    ap.add_argument("--no-generated", action="store_true", help="do not use hegui's generators")
    ap.add_argument("--seed", type=int, default=0, help="seed of the generators (with --live-generated)")
    ap.add_argument("--live-generated", action="store_true",
                    help="run the generators instead of reading the committed snapshot")
    ap.add_argument("--merge", type=Path, nargs="+", default=None,
                    help="combine earlier result files (same corpus) into --out and its table; no training")
    args = ap.parse_args(argv)
    if args.merge:
        docs = [json.loads(p.read_text(encoding="utf-8")) for p in args.merge]
        if len({d["corpus"]["digest"] for d in docs}) > 1:
            print("error: --merge: the result files were run on different corpora", file=sys.stderr)
            return 2
        merged = {"corpus": docs[0]["corpus"], "families": [f for d in docs for f in d["families"]]}
        write_results(merged, args.out)
        print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
        return 0
    data = args.data or shared_data_dir()
    if not (data / "dev_pool.jsonl").exists():
        print(f"error: {data / 'dev_pool.jsonl'}: not found (set HEGUI_SHARED_DATA or --data)", file=sys.stderr)
        return 2
    specs = []
    for name in args.families.split(","):
        if name.strip() not in FAMILIES:
            print(f"error: --families: unknown family {name!r}", file=sys.stderr)
            return 2
        specs.append(FAMILIES[name.strip()])
    gt = [] if args.no_generated else generated_examples("train", args.seed, live=args.live_generated)
    gh = [] if args.no_generated else generated_examples("heldout", args.seed, live=args.live_generated)
    corpus = load_corpus(data, gen_train=gt, gen_heldout=gh)

    def say(m: str) -> None:
        print(m, flush=True)

    c = Counter(corpus.roles)
    say(f"{len(corpus):,} rows: " + ", ".join(f"{k} {v:,}" for k, v in c.items()))
    feats = build_features(specs, corpus, args.cache, say)
    summaries = []
    for spec in specs:
        t0 = time.perf_counter()
        res = run_family(spec, corpus, feats, say)
        s = summarize(res, corpus)
        s["seconds"] = round(time.perf_counter() - t0, 1)
        summaries.append(s)
        pm = s["direction"]["pooled"]
        say(f"{spec.name}: pooled P {pm['precision']:.3f} R {pm['recall']:.3f} F1 {pm['f1']:.3f} "
            f"FPR {pm['fpr']:.3f} AUC {pm['auc']}; {s['seconds']:.0f} s")
    doc = {"corpus": {"rows": len(corpus), "roles": dict(c), "digest": corpus.digest(),
                      "generated_sources": dict(Counter(e.source for e, r in zip(corpus.examples, corpus.roles,
                                                                                   strict=True) if r == "gen"))},
           "families": summaries}
    write_results(doc, args.out)
    mdp = args.out.with_suffix(".md")
    say(f"wrote {args.out} and {mdp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
