"""A fastText-style classifier trained with numpy: n-gram embeddings averaged, then a logistic output.

fastText (Joulin et al. 2016) looks up an embedding per n-gram, averages them and feeds the mean
to a linear softmax; with two classes the softmax is a logistic. Here the n-grams are the columns
of a sparse count matrix (the same char n-gram vocabulary the TF-IDF model uses), the average is
the L1-normalised counts times the embedding table, and training is minibatch Adam on the weighted
log loss, deterministic for a given seed. The model is linear in the counts, so at inference it
collapses to one weight vector (``E @ v``): its speed is the linear model's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class FastTextOptions:
    dim: int = 16
    epochs: int = 5
    batch: int = 256
    lr: float = 0.02
    l2: float = 1e-6
    seed: int = 0


@dataclass
class FastTextModel:
    emb: F32
    """``(n_features, dim)`` n-gram embeddings."""
    out: F32
    """``(dim,)`` output weights."""
    bias: float

    def weights(self) -> F32:
        """The equivalent linear weights over L1-normalised counts."""
        return (self.emb @ self.out).astype(np.float32)

    def decision(self, counts: Any) -> npt.NDArray[np.float64]:
        x = _l1(counts)
        return np.asarray(x @ self.weights(), dtype=np.float64).ravel() + self.bias


def _l1(counts: Any) -> sp.csr_matrix:
    x = sp.csr_matrix(counts, dtype=np.float32)
    s = np.asarray(x.sum(axis=1)).ravel()
    s[s == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / s) @ x, dtype=np.float32)


def train_fasttext(counts: Any, labels: npt.NDArray[np.int64], weights: npt.NDArray[np.float64] | None = None,
                   options: FastTextOptions | None = None) -> FastTextModel:
    opts = options or FastTextOptions()
    rng = np.random.default_rng(opts.seed)
    x = _l1(counts)
    n, v = x.shape
    y = labels.astype(np.float32)
    w = (np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)).astype(np.float32)
    emb = (rng.standard_normal((v, opts.dim)) * (1.0 / opts.dim)).astype(np.float32)
    out = (rng.standard_normal(opts.dim) * 0.1).astype(np.float32)
    bias = np.float32(0.0)
    params = [emb, out]
    m = [np.zeros_like(p) for p in params] + [np.float32(0.0)]
    s = [np.zeros_like(p) for p in params] + [np.float32(0.0)]
    b1, b2, eps = 0.9, 0.999, 1e-8
    step = 0
    for _ in range(opts.epochs):
        order = rng.permutation(n)
        for i in range(0, n, opts.batch):
            idx = order[i : i + opts.batch]
            xb = x[idx]
            h = np.asarray(xb @ emb)  # (B, dim): the averaged embeddings
            z = h @ out + bias
            p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
            wb = w[idx]
            g = ((p - y[idx]) * wb / wb.sum()).astype(np.float32)  # d loss / d z
            g_out = h.T @ g + opts.l2 * out
            g_emb = np.asarray(xb.T @ (g[:, None] * out[None, :]), dtype=np.float32) + opts.l2 * emb
            g_bias = np.float32(g.sum())
            step += 1
            c1, c2 = 1 - b1**step, 1 - b2**step
            for k, (prm, grd) in enumerate(((emb, g_emb), (out, g_out))):
                m[k] = b1 * m[k] + (1 - b1) * grd
                s[k] = b2 * s[k] + (1 - b2) * grd * grd
                prm -= (opts.lr * (m[k] / c1) / (np.sqrt(s[k] / c2) + eps)).astype(np.float32)
            m[2] = b1 * m[2] + (1 - b1) * g_bias
            s[2] = b2 * s[2] + (1 - b2) * g_bias * g_bias
            bias = np.float32(bias - opts.lr * (m[2] / c1) / (np.sqrt(s[2] / c2) + eps))
    return FastTextModel(emb=emb, out=out, bias=float(bias))
