"""The reproducible recipe of the shipped model: ``python -m hegui.classifier.recipe``.

1. Held-out runs: for each split below, train on everything else and measure on the held-out rows
   (whole sources, never random rows): COLD's own test split; JADE + CValues (harmful and
   legitimate prompts, held out together so both classes are present); SafetyBench.
2. Train on all of ``dev_pool.jsonl`` plus hegui's hand-written examples
   (``hegui/data/training/*.jsonl``) and write ``hegui/data/models/risk_zh.npz`` with the held-out
   figures in its metadata.

The data is read from ``$HEGUI_SHARED_DATA`` or ``../shared/data`` next to the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hegui.classifier.data import Example, load_examples
from hegui.classifier.evaluate import Evaluation, Outcome
from hegui.classifier.model import RiskModel, default_model_path
from hegui.classifier.train import TrainOptions, binary_metrics, train

OPTIONS = TrainOptions(ngram_range=(1, 3), family="lr", C=4.0, max_features=100_000, source_balance=0.5,
                       target_fpr=0.05, seed=0)
SWEEP = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)

Split = tuple[str, Callable[[Example], bool]]
HELDOUT: list[Split] = [
    ("cold-test", lambda e: e.source == "cold" and e.split == "test"),
    ("jade+cvalues", lambda e: e.source in ("jade_db", "cvalues")),
    ("safetybench", lambda e: e.source == "safetybench"),
]


def training_files() -> list[Path]:
    return sorted((Path(__file__).resolve().parent.parent / "data" / "training").glob("*.jsonl"))


def shared_data_dir() -> Path:
    env = os.environ.get("HEGUI_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def heldout_run(name: str, is_test: Callable[[Example], bool], examples: list[Example],
                save_dir: Path | None) -> dict[str, Any]:
    train_rows = [e for e in examples if not is_test(e)]
    test_rows = [e for e in examples if is_test(e)]
    t0 = time.perf_counter()
    model = train(train_rows, OPTIONS)
    fit_s = time.perf_counter() - t0
    if save_dir is not None:
        model.save(save_dir / f"heldout-{name}.npz")
    ev = Evaluation()
    scores = []
    for e in test_rows:
        t = time.perf_counter()
        p = model.predict(e.text)
        ev.add(e, Outcome(flagged=p.score >= model.threshold, risks=(p.risk,), seconds=time.perf_counter() - t))
        scores.append(p.score)
    rep = ev.report()
    s = np.asarray(scores)
    y = np.asarray([e.label for e in test_rows])
    sweep = {f"{t:.2f}": binary_metrics(s >= t, y) for t in SWEEP}
    return {"train_rows": len(train_rows), "test_rows": len(test_rows), "fit_seconds": round(fit_s, 1),
            "threshold": model.threshold, "overall": rep["overall"], "source": rep["source"],
            "kind": rep["kind"], "risk": rep["risk"], "speed": rep["speed"], "sweep": sweep}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hegui.classifier.recipe", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="dev_pool.jsonl (default: shared data dir)")
    ap.add_argument("-o", "--output", type=Path, default=default_model_path())
    ap.add_argument("--skip-heldout", action="store_true", help="only train the shipped model")
    ap.add_argument("--heldout-models", type=Path, default=None, help="also save the held-out models here")
    ap.add_argument("--report", type=Path, default=None, help="write the held-out figures as JSON")
    args = ap.parse_args(argv)
    data = args.data or shared_data_dir() / "dev_pool.jsonl"
    if not data.exists():
        print(f"error: {data}: not found (set HEGUI_SHARED_DATA)", file=sys.stderr)
        return 2
    files = [data, *training_files()]
    examples = load_examples(files)
    print(f"{len(examples):,} examples from {', '.join(p.name for p in files)}", flush=True)
    heldout: dict[str, Any] = {}
    if not args.skip_heldout:
        if args.heldout_models is not None:
            args.heldout_models.mkdir(parents=True, exist_ok=True)
        for name, is_test in HELDOUT:
            r = heldout_run(name, is_test, examples, args.heldout_models)
            heldout[name] = r
            o = r["overall"]
            print(f"held out {name}: n={o['n']} P={o['precision']:.3f} R={o['recall']:.3f} F1={o['f1']:.3f} "
                  f"FPR={o['fpr']:.3f} @ {r['threshold']:.3f}; {r['speed']['ms_per_1k_chars']:.3f} ms/1k chars",
                  flush=True)
        if args.report is not None:
            args.report.write_text(json.dumps(heldout, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    opts = TrainOptions(**{**OPTIONS.__dict__, "extra_meta": {
        "model_id": "risk_zh",
        "data": [p.name for p in files],
        "recipe": "python -m hegui.classifier.recipe",
        "heldout": {k: {kk: v[kk] for kk in ("threshold", "overall", "source", "sweep")} for k, v in heldout.items()},
    }})
    model: RiskModel = train(examples, opts, progress=lambda m: print(m, flush=True))
    model.save(args.output)
    print(f"wrote {args.output} ({args.output.stat().st_size / 1e6:.1f} MB), threshold {model.threshold:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
