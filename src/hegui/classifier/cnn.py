"""A small character CNN in numpy: embedding → 1-D convolution → ReLU → max-pool → logistic.

Trained by hegui's own code (minibatch Adam, hand-written backward pass), deterministic for a seed
(one BLAS thread gives the same sums in the same order). No torch at run time: inference is a
gather, one matrix product per text and a max. Texts are cut to ``max_len`` characters (the detector
scores long texts in windows of about 300).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hegui.classifier.features import preprocess

F32 = npt.NDArray[np.float32]
PAD, OOV = 0, 1


@dataclass(frozen=True)
class CNNOptions:
    dim: int = 32
    filters: int = 96
    width: int = 3
    max_len: int = 160
    vocab: int = 8000
    epochs: int = 3
    batch: int = 128
    lr: float = 2e-3
    seed: int = 0


@dataclass
class CharCNN:
    chars: dict[str, int]
    emb: F32
    conv: F32
    """``(width * dim, filters)``"""
    conv_b: F32
    out: F32
    bias: float
    width: int
    max_len: int

    def ids(self, text: str) -> npt.NDArray[np.int64]:
        s = preprocess(text)[: self.max_len]
        a = np.fromiter((self.chars.get(ch, OOV) for ch in s), dtype=np.int64, count=len(s))
        if len(a) < self.width:
            a = np.concatenate([a, np.zeros(self.width - len(a), dtype=np.int64)])
        return a

    def decision_one(self, text: str) -> float:
        e = self.emb[self.ids(text)]
        cols = _im2col(e[None], self.width)[0]
        h = np.maximum(cols @ self.conv + self.conv_b, 0.0).max(axis=0)
        return float(h @ self.out) + self.bias

    def decision(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        return np.asarray([self.decision_one(t) for t in texts], dtype=np.float64)


def _im2col(e: F32, width: int) -> F32:
    """(B, L, d) → (B, L - width + 1, width * d): each position's window of embeddings."""
    t = e.shape[1] - width + 1
    return np.concatenate([e[:, i : i + t] for i in range(width)], axis=2)


def char_vocab(texts: Sequence[str], size: int) -> dict[str, int]:
    c = Counter(ch for t in texts for ch in preprocess(t))
    common = sorted((ch for ch, n in c.items() if n >= 2), key=lambda ch: (-c[ch], ch))[: size - 2]
    return {ch: i + 2 for i, ch in enumerate(common)}


def train_cnn(texts: Sequence[str], labels: npt.NDArray[np.int64], weights: npt.NDArray[np.float64] | None = None,
              options: CNNOptions | None = None) -> CharCNN:
    o = options or CNNOptions()
    rng = np.random.default_rng(o.seed)
    chars = char_vocab(texts, o.vocab)
    model = CharCNN(
        chars=chars,
        emb=(rng.standard_normal((len(chars) + 2, o.dim)) * 0.1).astype(np.float32),
        conv=(rng.standard_normal((o.width * o.dim, o.filters)) * np.sqrt(2.0 / (o.width * o.dim))).astype(np.float32),
        conv_b=np.zeros(o.filters, dtype=np.float32),
        out=(rng.standard_normal(o.filters) * 0.1).astype(np.float32),
        bias=0.0, width=o.width, max_len=o.max_len,
    )
    model.emb[PAD] = 0.0
    seqs = [model.ids(t) for t in texts]
    lens = np.asarray([len(s) for s in seqs])
    n = len(seqs)
    y = labels.astype(np.float32)
    w = (np.ones(n) if weights is None else np.asarray(weights)).astype(np.float32)
    bias = np.zeros(1, dtype=np.float32)
    params = [model.emb, model.conv, model.conv_b, model.out, bias]
    m1 = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    step = 0
    for _ in range(o.epochs):
        order = rng.permutation(n)
        # batches of similar length (sorted within chunks of 50 batches) keep the padding small
        chunk = o.batch * 50
        batches: list[npt.NDArray[np.intp]] = []
        for c in range(0, n, chunk):
            part = order[c : c + chunk]
            part = part[np.argsort(lens[part], kind="stable")]
            batches.extend(part[i : i + o.batch] for i in range(0, len(part), o.batch))
        for j in rng.permutation(len(batches)):
            idx = batches[j]
            L = int(lens[idx].max())
            ids = np.zeros((len(idx), L), dtype=np.int64)
            for r, k in enumerate(idx):
                ids[r, : lens[k]] = seqs[k]
            e = model.emb[ids]
            cols = _im2col(e, o.width)  # (B, T, wd)
            pre = cols @ model.conv + model.conv_b  # (B, T, F)
            t_valid = (lens[idx] - o.width + 1)[:, None, None] > np.arange(pre.shape[1])[None, :, None]
            act = np.where(t_valid, np.maximum(pre, 0.0), -1.0)  # padding never wins the max
            arg = act.argmax(axis=1)  # (B, F)
            h = np.take_along_axis(act, arg[:, None, :], axis=1)[:, 0, :]
            h = np.maximum(h, 0.0)
            z = h @ model.out + bias[0]
            p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
            wb = w[idx]
            g = ((p - y[idx]) * wb / wb.sum()).astype(np.float32)
            g_out = h.T @ g
            g_bias = np.asarray([g.sum()], dtype=np.float32)
            g_h = g[:, None] * model.out[None, :] * (h > 0)
            g_pre = np.zeros_like(pre)
            np.put_along_axis(g_pre, arg[:, None, :], g_h[:, None, :], axis=1)
            g_conv = cols.reshape(-1, cols.shape[2]).T @ g_pre.reshape(-1, g_pre.shape[2])
            g_convb = g_pre.sum(axis=(0, 1))
            g_cols = g_pre @ model.conv.T  # (B, T, wd)
            g_e = np.zeros_like(e)
            d = o.dim
            t = cols.shape[1]
            for i in range(o.width):
                g_e[:, i : i + t] += g_cols[:, :, i * d : (i + 1) * d]
            g_emb = np.zeros_like(model.emb)
            np.add.at(g_emb, ids.ravel(), g_e.reshape(-1, d))
            g_emb[PAD] = 0.0
            step += 1
            c1, c2 = 1 - 0.9**step, 1 - 0.999**step
            for k, grd in enumerate((g_emb, g_conv, g_convb, g_out, g_bias)):
                m1[k] = 0.9 * m1[k] + 0.1 * grd
                m2[k] = 0.999 * m2[k] + 0.001 * grd * grd
                params[k] -= (o.lr * (m1[k] / c1) / (np.sqrt(m2[k] / c2) + 1e-8)).astype(np.float32)
    model.bias = float(bias[0])
    return model
