"""The trained classifier and its file format.

A model is one ``.npz`` file (NumPy's zip of arrays) read with ``allow_pickle=False``, so loading a
model from an untrusted path cannot run code: it holds only numbers, one UTF-8 blob with the
n-gram vocabulary and one JSON blob with the metadata.

Two heads share the features:

* **binary**: a linear score ``z = w·x + b`` turned into a calibrated probability of *unsafe* with
  Platt scaling, ``p = 1 / (1 + exp(-(a·z + c)))``, where ``a, c`` were fitted on out-of-fold
  scores during training;
* **risk**: one-vs-rest linear scores over the risk codes the training data had enough examples
  of; the top one names the risk of an unsafe text.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hegui import taxonomy
from hegui.classifier.features import Featurizer

FORMAT = "hegui-classifier"
FORMAT_VERSION = 1

# When the risk head is unsure (or absent), report the "other …" risk of the category: a risk code is
# what policy matches on, and these are the standard's catch-alls.
CATEGORY_FALLBACK: dict[str, str] = {"A1": "A1h", "A2": "A2i", "A3": "A3e", "A4": "A4g", "A5": "A5a"}
DEFAULT_RISK = "A1h"


class ModelFormatError(ValueError):
    """The file is not a hegui classifier model (or is damaged)."""


@dataclass(frozen=True, slots=True)
class Prediction:
    score: float
    """Calibrated probability that the text is unsafe."""
    risk: str
    """Most likely risk code (meaningful when the text is unsafe)."""
    risk_score: float
    """Probability-like score of that risk among the known codes (softmax over the risk head)."""


@dataclass
class RiskModel:
    featurizer: Featurizer
    coef: npt.NDArray[np.float32]
    intercept: float
    calibration: tuple[float, float]
    codes: list[str]
    code_coef: npt.NDArray[np.float32]
    """Shape ``(len(codes), n_features)``; may be empty when the data had no risk codes."""
    code_intercept: npt.NDArray[np.float32]
    threshold: float = 0.5
    meta: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    """Per direction (``input`` / ``output``), chosen on the out-of-fold scores of that direction's
    training rows; a direction not listed uses :attr:`threshold`. An optional key of the format: older
    files have none (every direction uses the one threshold) and older readers ignore it."""

    def threshold_for(self, direction: str | None) -> float:
        """The stored threshold for ``input`` (prompts and comments: which of the two a user text
        is, is not known at run time) or ``output`` (model answers); :attr:`threshold` otherwise."""
        if direction is None:
            return self.threshold
        return self.thresholds.get(direction, self.threshold)

    # ---- prediction -------------------------------------------------------------------------
    def decision(self, text: str) -> float:
        ind, val = self.featurizer.transform_one(text)
        return float(np.dot(self.coef[ind], val)) + self.intercept

    def calibrate(self, z: float) -> float:
        a, c = self.calibration
        t = a * z + c
        if t >= 0:
            return 1.0 / (1.0 + math.exp(-t))
        e = math.exp(t)
        return e / (1.0 + e)

    def predict(self, text: str) -> Prediction:
        ind, val = self.featurizer.transform_one(text)
        z = float(np.dot(self.coef[ind], val)) + self.intercept
        risk, risk_score = self.top_risk(ind, val)
        return Prediction(score=self.calibrate(z), risk=risk, risk_score=risk_score)

    def score(self, text: str) -> float:
        return self.calibrate(self.decision(text))

    def score_vector(self, ind: npt.NDArray[np.intp], val: npt.NDArray[np.floating[Any]]) -> float:
        return self.calibrate(float(np.dot(self.coef[ind], val)) + self.intercept)

    def top_risk(self, ind: npt.NDArray[np.intp], val: npt.NDArray[np.floating[Any]]) -> tuple[str, float]:
        if not self.codes:
            return DEFAULT_RISK, 0.0
        logits = self.code_coef[:, ind] @ val + self.code_intercept
        k = int(np.argmax(logits))
        ex = np.exp(logits - logits[k])
        return to_risk_code(self.codes[k]), float(ex[k] / ex.sum())

    def codes_as_risks(self) -> list[str]:
        """The risk codes this model can report."""
        return sorted({to_risk_code(c) for c in self.codes} or {DEFAULT_RISK})

    # ---- IO -----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write atomically (temp file + rename): no partial model on failure."""
        p = Path(path)
        meta = dict(self.meta)
        meta.update(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            ngram_range=list(self.featurizer.ngram_range),
            intercept=self.intercept,
            calibration=list(self.calibration),
            codes=self.codes,
            threshold=self.threshold,
            thresholds=self.thresholds,
        )
        vocab_blob = "\n".join(self.featurizer.vocab).encode("utf-8")
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            meta=np.frombuffer(json.dumps(meta, ensure_ascii=False).encode("utf-8"), dtype=np.uint8),
            vocab=np.frombuffer(vocab_blob, dtype=np.uint8),
            idf=self.featurizer.idf.astype(np.float32),
            coef=self.coef.astype(np.float32),
            code_coef=self.code_coef.astype(np.float16),
            code_intercept=self.code_intercept.astype(np.float32),
        )
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(buf.getvalue())
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; a model or report is meant to be shared
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path) -> RiskModel:
        p = Path(path)
        try:
            with np.load(p, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise
        except (OSError, ValueError, EOFError) as exc:
            raise ModelFormatError(f"{p}: not a hegui classifier model ({exc})") from None
        try:
            meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
            if meta.get("format") != FORMAT:
                raise ModelFormatError(f"{p}: not a hegui classifier model (format {meta.get('format')!r})")
            if int(meta.get("format_version", 0)) > FORMAT_VERSION:
                raise ModelFormatError(
                    f"{p}: model format version {meta['format_version']} is newer than this hegui "
                    f"supports ({FORMAT_VERSION})"
                )
            vocab = arrays["vocab"].tobytes().decode("utf-8").split("\n")
            lo, hi = (int(x) for x in meta["ngram_range"])
            featurizer = Featurizer(vocab, arrays["idf"], (lo, hi))
            coef = arrays["coef"].astype(np.float32)
            codes = [str(c) for c in meta.get("codes", [])]
            code_coef = arrays["code_coef"].astype(np.float32)
            code_intercept = arrays["code_intercept"].astype(np.float32)
            if coef.shape != (len(vocab),) or (codes and code_coef.shape != (len(codes), len(vocab))):
                raise ModelFormatError(f"{p}: array shapes do not match the vocabulary")
            a, c = (float(x) for x in meta["calibration"])
            return cls(
                featurizer=featurizer,
                coef=coef,
                intercept=float(meta["intercept"]),
                calibration=(a, c),
                codes=codes,
                code_coef=code_coef,
                code_intercept=code_intercept,
                threshold=float(meta.get("threshold", 0.5)),
                meta=meta,
                thresholds={str(k): float(v) for k, v in (meta.get("thresholds") or {}).items()},
            )
        except ModelFormatError:
            raise
        except (KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise ModelFormatError(f"{p}: damaged hegui classifier model ({exc!r})") from None


def to_risk_code(code: str) -> str:
    """A risk code for a (possibly category-level) training code: ``A2`` → ``A2i``."""
    if taxonomy.is_known(code):
        return taxonomy.normalize_code(code)
    return CATEGORY_FALLBACK.get(code, DEFAULT_RISK)


def default_model_path() -> Path:
    """The model shipped in the package."""
    return Path(__file__).resolve().parent.parent / "data" / "models" / "risk_zh.npz"
