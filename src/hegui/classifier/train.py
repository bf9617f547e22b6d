"""Training: char n-gram TF-IDF + a linear model, Platt-calibrated, with a one-vs-rest risk head.

The family was chosen by measurement (see ``docs/classifier.md`` and the model card): on held-out
sources, logistic regression over 1–3-grams matched or beat a linear SVM and 2–4-grams while being
smaller and faster.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from hegui.classifier.data import Example
from hegui.classifier.features import Featurizer, make_analyzer
from hegui.classifier.model import RiskModel

Family = Literal["lr", "svm"]
Progress = Callable[[str], None]


@dataclass
class TrainOptions:
    ngram_range: tuple[int, int] = (1, 3)
    min_df: int = 2
    max_features: int | None = 100_000
    family: Family = "lr"
    C: float = 4.0
    min_code_examples: int = 15
    """Risk codes with fewer unsafe examples get no head of their own (their category's catch-all
    risk is reported instead)."""
    target_fpr: float = 0.05
    """The default threshold is the lowest one whose out-of-fold false-positive rate stays under this
    (the held-out FPR is higher than the in-distribution one, so aim below the 10% goal)."""
    source_balance: float = 0.5
    """Weight each example by ``(mean source size / its source's size) ** source_balance``: 0 keeps
    the raw mix (tens of thousands of COLD comments drown a few hundred hand-written prompts), 1
    gives every source equal total weight."""
    per_direction: bool = True
    """Also choose a threshold per direction (``input``: comments and prompts; ``output``: answers,
    ``kind`` = ``response``) on that direction's out-of-fold scores, when it has enough safe rows."""
    calibrate_without: tuple[str, ...] = ()
    """Source prefixes (e.g. ``gen_``) whose out-of-fold scores are left out of the Platt fit and the
    threshold choice: generated rows are easy for a model trained on their sister templates, so
    counting them would make the out-of-fold FPR look lower than on real text."""
    seed: int = 0
    cv_folds: int = 3
    extra_meta: dict[str, Any] = field(default_factory=dict)


def _log(progress: Progress | None, msg: str) -> None:
    if progress is not None:
        progress(msg)


def _linear(options: TrainOptions) -> Any:
    if options.family == "svm":
        from sklearn.svm import LinearSVC

        return LinearSVC(C=options.C / 8, random_state=options.seed)
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=options.C, max_iter=2000, solver="liblinear", random_state=options.seed)


def train(examples: Sequence[Example], options: TrainOptions | None = None,
          progress: Progress | None = None) -> RiskModel:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    opts = options or TrainOptions()
    if not examples:
        raise ValueError("no training examples")
    labels = np.asarray([e.label for e in examples], dtype=np.int64)
    if len(set(labels.tolist())) < 2:
        raise ValueError("training data needs both safe (0) and unsafe (1) examples")
    texts = [e.text for e in examples]
    weights = source_weights(examples, opts.source_balance)

    _log(progress, f"vectorising {len(texts):,} texts (char {opts.ngram_range[0]}–{opts.ngram_range[1]}-grams)")
    vec = TfidfVectorizer(
        analyzer=make_analyzer(opts.ngram_range),
        min_df=min(opts.min_df, max(1, len(texts) // 2)),
        max_features=opts.max_features,
        sublinear_tf=True,
        dtype=np.float32,
    )
    X = vec.fit_transform(texts)
    vocab = [""] * len(vec.vocabulary_)
    for gram, j in vec.vocabulary_.items():
        vocab[j] = gram

    folds = max(2, min(opts.cv_folds, int(np.bincount(labels).min())))
    _log(progress, f"out-of-fold scores ({folds} folds) for calibration")
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=opts.seed)
    oof = cross_val_predict(_linear(opts), X, labels, cv=cv, method="decision_function",
                            params={"sample_weight": weights})
    cal = calibration_rows(examples, opts.calibrate_without)
    yc, wc = labels[cal], weights[cal]
    platt = LogisticRegression(C=1e4, solver="lbfgs").fit(oof[cal].reshape(-1, 1), yc, sample_weight=wc)
    a, c = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    oof_prob = 1.0 / (1.0 + np.exp(-(a * oof + c)))
    threshold = choose_threshold(oof_prob[cal], yc, opts.target_fpr, wc)
    thresholds = (direction_thresholds(oof_prob[cal], yc, wc, [examples[i].kind for i in cal], opts.target_fpr)
                  if opts.per_direction else {})

    _log(progress, "fitting the unsafe/safe head")
    clf = _linear(opts).fit(X, labels, sample_weight=weights)
    coef = np.asarray(clf.coef_, dtype=np.float32).ravel()
    intercept = float(np.asarray(clf.intercept_).ravel()[0])

    codes, code_coef, code_intercept = _train_risk_head(examples, labels, X, opts, progress)

    meta: dict[str, Any] = {
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(opts).items()
                    if k != "extra_meta"},
        "training": {
            "examples": len(examples),
            "unsafe": int(labels.sum()),
            "safe": int(len(labels) - labels.sum()),
            "sources": dict(Counter(e.source for e in examples)),
            "features": len(vocab),
            "out_of_fold": binary_metrics(oof_prob >= threshold, labels),
        },
        "thresholds": thresholds,
    }
    meta.update(opts.extra_meta)
    return RiskModel(
        featurizer=Featurizer(vocab, np.asarray(vec.idf_, dtype=np.float32), opts.ngram_range),
        coef=coef,
        intercept=intercept,
        calibration=(a, c),
        codes=codes,
        code_coef=code_coef,
        code_intercept=code_intercept,
        threshold=threshold,
        meta=meta,
        thresholds=thresholds,
    )


def _train_risk_head(examples: Sequence[Example], labels: npt.NDArray[np.int64], X: Any,
                     opts: TrainOptions, progress: Progress | None
                     ) -> tuple[list[str], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    from sklearn.linear_model import LogisticRegression

    n_features = X.shape[1]
    rows = [i for i, e in enumerate(examples) if labels[i] == 1 and e.codes]
    counts = Counter(code for i in rows for code in examples[i].codes)
    codes = sorted(c for c, n in counts.items() if n >= opts.min_code_examples)
    empty = (np.zeros((0, n_features), dtype=np.float32), np.zeros(0, dtype=np.float32))
    if len(codes) < 2:
        return ([], *empty) if not codes else (codes, np.zeros((1, n_features), np.float32),
                                               np.zeros(1, np.float32))
    _log(progress, f"fitting the risk head over {len(codes)} risk codes")
    Xu = X[rows]
    coef = np.zeros((len(codes), n_features), dtype=np.float32)
    icpt = np.zeros(len(codes), dtype=np.float32)
    for k, code in enumerate(codes):
        y = np.asarray([1 if code in examples[i].codes else 0 for i in rows])
        # Rare codes would otherwise never win the argmax against the big COLD topics.
        m = LogisticRegression(C=opts.C, max_iter=2000, solver="liblinear", class_weight="balanced",
                               random_state=opts.seed)  # liblinear shuffles: unseeded, no two builds agree
        m.fit(Xu, y)
        coef[k] = m.coef_.ravel()
        icpt[k] = float(m.intercept_[0])
    return codes, coef, icpt


def calibration_rows(examples: Sequence[Example], without: Sequence[str]) -> npt.NDArray[np.intp]:
    """Indices of the rows whose out-of-fold scores fit the calibration and thresholds (all rows when
    leaving the prefixes out would leave one class only)."""
    keep = np.asarray([not any(e.source.startswith(p) for p in without) for e in examples], dtype=bool)
    labels = np.asarray([e.label for e in examples])
    if not without or len(set(labels[keep].tolist())) < 2:
        return np.arange(len(examples))
    return np.flatnonzero(keep)


def source_weights(examples: Sequence[Example], balance: float) -> npt.NDArray[np.float64]:
    counts = Counter(e.source for e in examples)
    mean = len(examples) / len(counts)
    per_source = {s: (mean / n) ** balance for s, n in counts.items()}
    w = np.asarray([per_source[e.source] for e in examples], dtype=np.float64)
    return w * (len(w) / w.sum())


def choose_threshold(prob: npt.NDArray[np.floating[Any]], labels: npt.NDArray[np.int64],
                     target_fpr: float, weights: npt.NDArray[np.float64] | None = None) -> float:
    """Lowest threshold (most recall) whose (weighted) false-positive rate is ≤ ``target_fpr``.

    Never below 0.5, where a calibrated score says "more likely unsafe than not"; never above 0.95.
    """
    mask = labels == 0
    if not mask.any():
        return 0.5
    order = np.argsort(prob[mask])[::-1]
    safe = prob[mask][order]
    w = (weights[mask] if weights is not None else np.ones(int(mask.sum())))[order]
    frac = np.cumsum(w) / w.sum()
    # the top-scored safe examples we may let through: those within the FPR budget
    k = int(np.searchsorted(frac, target_fpr, side="right"))
    cut = float(safe[k]) if k < len(safe) else 0.0
    # the first 4-decimal value strictly above the k-th safe score, so that score is not flagged
    above = math.floor(cut * 1e4 + 1e-9) / 1e4 + 1e-4
    return round(min(0.95, max(0.5, above)), 4)


MIN_SAFE_FOR_THRESHOLD = 50
"""A direction's own threshold needs at least this many safe training rows to mean something."""


def direction(kind: str) -> str:
    """``output`` for model answers (``kind`` = ``response``), ``input`` for comments and prompts."""
    return "output" if kind == "response" else "input"


def direction_thresholds(prob: npt.NDArray[np.floating[Any]], labels: npt.NDArray[np.int64],
                         weights: npt.NDArray[np.float64], kinds: Sequence[str], target_fpr: float,
                         min_safe: int = MIN_SAFE_FOR_THRESHOLD) -> dict[str, float]:
    dirs = np.asarray([direction(k) for k in kinds])
    out: dict[str, float] = {}
    for d in ("input", "output"):
        m = dirs == d
        if int((labels[m] == 0).sum()) >= min_safe:
            out[d] = choose_threshold(prob[m], labels[m], target_fpr, weights[m])
    return out


def binary_metrics(pred: npt.NDArray[np.bool_], labels: npt.NDArray[np.int64]) -> dict[str, float | int]:
    y = labels.astype(bool)
    p = np.asarray(pred, dtype=bool)
    tp = int((p & y).sum())
    fp = int((p & ~y).sum())
    fn = int((~p & y).sum())
    tn = int((~p & ~y).sum())
    return metrics_from_counts(tp, fp, fn, tn)


def metrics_from_counts(tp: int, fp: int, fn: int, tn: int) -> dict[str, float | int]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    fpr = fp / (fp + tn) if fp + tn else 0.0
    return {"n": tp + fp + fn + tn, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "fpr": round(fpr, 4)}
