"""The reproducible recipe of the shipped model: ``python -m hegui.classifier.recipe``.

1. The held-out figures come from the leave-one-source-out run of the shipped family
   (``python -m hegui.classifier.loso --families char_lr_shipped,… --out src/hegui/data/models/risk_zh.loso.json``),
   kept next to the model; the recipe copies their deterministic part into the model's metadata.
2. The model is trained on both development pools (``dev_pool.jsonl`` and, next to it,
   ``extra_pool.jsonl``), hegui's hand-written rows (``hegui/data/training/*.jsonl``) and hegui's
   generated train-style rows (``hegui/data/training/generated/synth_train.jsonl``: a committed
   snapshot of ``hegui.classifier.synth``, 1,000 a genre, seed 0, refreshed with ``--regenerate``),
   with the options of :data:`SHIPPED_FAMILY`, and written to ``hegui/data/models/risk_zh.npz``.

The same inputs give the same bytes (fixed seeds, a zip with fixed timestamps, no timings in the
metadata): ``--check`` retrains and compares SHA-256 with the file. The data is read from
``$HEGUI_SHARED_DATA`` or ``../shared/data`` next to the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from hegui.classifier.data import Example, load_examples
from hegui.classifier.loso import FAMILIES, generated_snapshot, shared_data_dir
from hegui.classifier.model import RiskModel, default_model_path
from hegui.classifier.train import TrainOptions, train
from hegui.errors import UserError

SHIPPED_FAMILY = "char_lr_shipped"
_SPEC = FAMILIES[SHIPPED_FAMILY]
OPTIONS = TrainOptions(ngram_range=(1, 3), family="lr", C=_SPEC.C, max_features=_SPEC.max_features,
                       source_balance=_SPEC.source_balance, target_fpr=_SPEC.target_fpr,
                       per_direction=_SPEC.per_direction, calibrate_without=_SPEC.calibrate_without,
                       seed=_SPEC.seed)
GENERATED_PER_GENRE = 1000
GENERATED_SEED = 0


def training_files() -> list[Path]:
    return sorted((Path(__file__).resolve().parent.parent / "data" / "training").glob("*.jsonl"))


def loso_path() -> Path:
    return default_model_path().with_suffix(".loso.json")


def loso_meta(path: Path) -> dict[str, Any]:
    """The deterministic part of a LOSO run of the shipped family (figures, not timings)."""
    if not path.exists():
        return {}
    doc = json.loads(path.read_text(encoding="utf-8"))
    fam = next((f for f in doc["families"] if f["family"]["name"] == SHIPPED_FAMILY), None)
    if fam is None:
        return {}
    d = fam["direction"]
    return {"family": SHIPPED_FAMILY, "corpus_digest": doc["corpus"]["digest"],
            "thresholds": "each fold's own, chosen on its out-of-fold real training scores",
            "pooled": d["pooled"], "kind": d["kind"], "source": d["source"],
            "generated_heldout": d.get("generated_heldout", {}), "over_refusal": fam["over_refusal"],
            "pooled_best_f1_at_fpr": fam["pooled_best_f1_at_fpr"]}


def recipe_examples(dev_pool: Path, *, generated: bool = True) -> tuple[list[Example], list[str]]:
    files = [dev_pool]
    extra = dev_pool.parent / "extra_pool.jsonl"
    if extra.exists():
        files.append(extra)
    files += training_files()
    examples = load_examples(files)
    names = [p.name for p in files]
    if generated:
        snap = generated_snapshot("train")
        if not snap.exists():
            raise UserError(f"{snap}: not found; write it with `python -m hegui.classifier.recipe --regenerate`")
        examples += load_examples([snap])
        names.append(f"training/generated/{snap.name}")
    return examples, names


def regenerate(seed: int = GENERATED_SEED) -> list[Path]:
    """Rewrite the generated snapshots from ``hegui.classifier.synth`` (train and held-out style)."""
    from hegui.classifier import synth

    out = []
    for style, n in (("train", GENERATED_PER_GENRE), ("heldout", GENERATED_PER_GENRE * 3 // 10)):
        p = generated_snapshot(style)
        synth.write_jsonl(synth.generate_all(per_genre=n, seed=seed, style=style), p)  # type: ignore[arg-type]
        out.append(p)
    return out


def build(dev_pool: Path, output: Path, *, loso: Path | None, generated: bool = True,
          progress: bool = True) -> RiskModel:
    examples, names = recipe_examples(dev_pool, generated=generated)
    if progress:
        print(f"{len(examples):,} examples from {', '.join(names)}", flush=True)
    opts = TrainOptions(**{**OPTIONS.__dict__, "extra_meta": {
        "model_id": "risk_zh",
        "data": names,
        "recipe": "python -m hegui.classifier.recipe",
        "loso": loso_meta(loso) if loso is not None else {},
    }})
    model = train(examples, opts, progress=(lambda m: print(m, flush=True)) if progress else None)
    model.save(output)
    return model


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hegui.classifier.recipe", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None,
                    help="dev_pool.jsonl (extra_pool.jsonl is read from the same folder; default: shared data dir)")
    ap.add_argument("-o", "--output", type=Path, default=default_model_path())
    ap.add_argument("--loso", type=Path, default=loso_path(), help="LOSO results of the shipped family (JSON)")
    ap.add_argument("--skip-heldout", action="store_true", help="do not copy LOSO figures into the metadata")
    ap.add_argument("--no-generated", action="store_true", help="train without the generated rows")
    ap.add_argument("--regenerate", action="store_true",
                    help="rewrite training/generated/synth_{train,heldout}.jsonl from the generators, then stop")
    ap.add_argument("--check", action="store_true",
                    help="retrain into a temp file and compare its SHA-256 with --output (exit 1 if they differ)")
    args = ap.parse_args(argv)
    if args.regenerate:
        for p in regenerate():
            print(f"wrote {p}")
        return 0
    data = args.data or shared_data_dir() / "dev_pool.jsonl"
    if not data.exists():
        print(f"error: {data}: not found (set HEGUI_SHARED_DATA)", file=sys.stderr)
        return 2
    loso = None if args.skip_heldout else args.loso
    if args.check:
        if not args.output.exists():
            print(f"error: {args.output}: not found, nothing to compare", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory() as tmp:
            fresh = Path(tmp) / args.output.name
            build(data, fresh, loso=loso, generated=not args.no_generated)
            a, b = sha256(args.output), sha256(fresh)
        print(f"{args.output}: {a}\nrebuilt:  {b}\n{'identical' if a == b else 'DIFFERENT'}")
        return 0 if a == b else 1
    model = build(data, args.output, loso=loso, generated=not args.no_generated)
    print(f"wrote {args.output} ({args.output.stat().st_size / 1e6:.1f} MB), thresholds {model.threshold:.3f} "
          f"{model.thresholds}; sha256 {sha256(args.output)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
