"""``hegui train-classifier`` and ``hegui eval-detector``."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from hegui.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

    from hegui.classifier.data import Example


def _parse_ngram(value: str) -> tuple[int, int]:
    try:
        lo_s, _, hi_s = value.partition("-")
        lo, hi = int(lo_s), int(hi_s or lo_s)
    except ValueError:
        raise UserError(f"--ngram: expected a range like 1-3, got {value!r}") from None
    if not 1 <= lo <= hi <= 6:
        raise UserError(f"--ngram: need 1 <= low <= high <= 6, got {value!r}")
    return lo, hi


def _print_metrics(console: Console, title: str, report: dict[str, Any], groups: tuple[str, ...]) -> None:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("group", no_wrap=True)
    for col in ("n", "precision", "recall", "F1", "FPR", "tp", "fp", "fn", "tn"):
        table.add_column(col, justify="right")

    def row(name: str, m: dict[str, Any]) -> None:
        table.add_row(name, str(m["n"]), f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}",
                      f"{m['fpr']:.3f}", str(m["tp"]), str(m["fp"]), str(m["fn"]), str(m["tn"]))

    row("overall", report["overall"])
    for g in groups:
        for key, m in report.get(g, {}).items():
            row(f"{g}={key}", m)
    console.print(table)


def _write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False, indent=2)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _eval_progress(console: Console, examples: list[Example], judge: Any, slowest: int) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from hegui.classifier.evaluate import evaluate

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("evaluating", total=len(examples))
        return evaluate(examples, judge, slowest_n=slowest, on_case=lambda: progress.advance(task))


def _add_missing_model_detectors(moderator: Any, cfg: Any, only: list[str] | None) -> None:
    """Build the classifier/guard detectors if the registry did not (a registry whose factories
    predate them), so evaluation measures what the config asks for."""
    from hegui.detectors import classifier as classifier_mod
    from hegui.detectors import guard as guard_mod

    have = {d.name for d in moderator.detectors}
    for name, build in (("classifier", classifier_mod.build), ("guard", guard_mod.build)):
        if name in have or (only is not None and name not in only):
            continue
        det = build(cfg)
        if det is not None:
            moderator.detectors.append(det)


def train_classifier(
    data: list[Path] = typer.Argument(..., help="Labelled JSONL files (text, label 0/1, optional tc260, source)."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the model (.npz)."),
    holdout_source: list[str] = typer.Option(
        [], "--holdout-source", help="Leave this source out of training and report metrics on it (repeatable)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (cross-validation folds, solvers)."),
    ngram: str = typer.Option("1-3", "--ngram", help="Character n-gram range, e.g. 1-3 or 2-4."),
    family: str = typer.Option("lr", "--family", help="Linear model: lr (logistic regression) or svm."),
    c: float = typer.Option(4.0, "--C", help="Inverse regularisation strength."),
    max_features: int = typer.Option(100_000, "--max-features", help="Keep the most frequent n-grams (0 = all)."),
    source_balance: float = typer.Option(
        0.5, "--source-balance", help="0 = raw mix of sources, 1 = every source weighs the same."),
    target_fpr: float = typer.Option(
        0.05, "--target-fpr", help="The stored threshold keeps out-of-fold false positives under this."),
) -> None:
    """Train hegui's risk classifier (char n-gram TF-IDF + calibrated linear model) from JSONL."""
    from rich.console import Console

    from hegui.classifier.data import load_examples
    from hegui.classifier.evaluate import model_judge
    from hegui.classifier.train import TrainOptions, train

    console = Console(stderr=True)
    if family not in ("lr", "svm"):
        raise UserError(f"--family: expected lr or svm, got {family!r}")
    if output.exists() and output.is_dir():
        raise UserError(f"{output}: is a folder; give a file name for the model")
    if not 0 <= source_balance <= 1:
        raise UserError("--source-balance: must be between 0 and 1")
    if not 0 < target_fpr < 1:
        raise UserError("--target-fpr: must be between 0 and 1")
    examples = load_examples(data)
    sources = sorted({e.source for e in examples})
    missing = [s for s in holdout_source if s not in sources]
    if missing:
        raise UserError(f"--holdout-source: no rows with source {missing[0]!r} (sources: {', '.join(sources)})")
    held = set(holdout_source)
    train_rows = [e for e in examples if e.source not in held]
    test_rows = [e for e in examples if e.source in held]
    if len({e.label for e in train_rows}) < 2:
        raise UserError("the training rows need both safe (label 0) and unsafe (label 1) examples")
    opts = TrainOptions(ngram_range=_parse_ngram(ngram), family=family,  # type: ignore[arg-type]
                        C=c, max_features=max_features or None, seed=seed, source_balance=source_balance,
                        target_fpr=target_fpr,
                        extra_meta={"data": [p.name for p in data], "holdout_sources": sorted(held)})
    t0 = time.perf_counter()
    with console.status("training") as status:
        model = train(train_rows, opts, progress=lambda msg: status.update(msg))
    console.print(f"trained on {len(train_rows):,} examples in {time.perf_counter() - t0:.1f} s; "
                  f"{len(model.featurizer):,} features; threshold {model.threshold:.3f}; "
                  f"risk codes: {', '.join(model.codes) or '(none)'}")
    if test_rows:
        report = _eval_progress(console, test_rows, model_judge(model, model.threshold), 5)
        model.meta["heldout"] = {k: report[k] for k in ("overall", "source", "kind", "risk", "speed")}
        _print_metrics(console, f"held out: {', '.join(sorted(held))}", report, ("source", "kind"))
    model.save(output)
    size = output.stat().st_size / 1e6
    console.print(f"wrote {output} ({size:.1f} MB)")


def eval_detector(
    data: Path = typer.Argument(..., help="Labelled JSONL (text, label 0/1, optional tc260, source, kind)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="hegui.yaml (default: built-in defaults)."),
    detectors: str | None = typer.Option(
        None, "--detectors", help="Comma-separated detectors to run, e.g. lexicon,pii,classifier "
        "(named ones are enabled even if the config disables them; default: the configured set)."),
    report: Path | None = typer.Option(None, "--report", help="Write the full JSON report here."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Evaluate only the first N rows."),
    direction: str = typer.Option(
        "auto", "--direction", help="input, output, or auto (rows of kind 'response' are outputs)."),
    scene: str = typer.Option("default", "--scene", help="Policy scene to judge in."),
    classifier_model: Path | None = typer.Option(
        None, "--classifier-model", help="Use this classifier model instead of the configured one."),
    source: list[str] = typer.Option([], "--source", help="Only rows of this source (repeatable)."),
    slowest: int = typer.Option(10, "--slowest", min=0, help="How many of the slowest cases to list."),
    flagged_at: str = typer.Option(
        "flag", "--flagged-at", help="Least severe action that counts as flagged: flag, mask, refuse or block."),
) -> None:
    """Measure detectors on labelled data: precision, recall, F1, FPR per source, kind and risk.

    A row counts as flagged when the moderator's verdict is at least --flagged-at (default: anything
    but "allow").
    """
    from rich.console import Console
    from rich.table import Table

    from hegui.classifier.data import read_examples
    from hegui.classifier.evaluate import Outcome
    from hegui.config import load_config
    from hegui.moderation import Moderator

    # tables are wide; piped output (no terminal width to respect) gets room for them
    console = Console() if sys.stdout.isatty() else Console(width=160)
    if direction not in ("auto", "input", "output"):
        raise UserError(f"--direction: expected auto, input or output, got {direction!r}")
    from hegui.policy import Action

    try:
        min_action = Action(flagged_at)
    except ValueError:
        raise UserError(f"--flagged-at: expected flag, mask, refuse or block, got {flagged_at!r}") from None
    if min_action is Action.ALLOW:
        raise UserError("--flagged-at: allow would count every row as flagged")
    cfg = load_config(config)
    only = [d.strip() for d in detectors.split(",") if d.strip()] if detectors else None
    if only is not None:
        for name in only:
            section = getattr(cfg, name, None)
            if section is not None and hasattr(section, "enabled"):
                section.enabled = True
    if classifier_model is not None:
        if not classifier_model.is_file():
            raise UserError(f"--classifier-model: {classifier_model}: file not found")
        cfg.classifier.model = str(classifier_model.resolve())
    examples: list[Example] = []
    for ex in read_examples(data):
        if source and ex.source not in source:
            continue
        examples.append(ex)
        if limit is not None and len(examples) >= limit:
            break
    if not examples:
        raise UserError(f"{data}: no rows to evaluate")

    moderator = Moderator.from_config(cfg, only=only)
    _add_missing_model_detectors(moderator, cfg, only)
    if not moderator.detectors:
        raise UserError("no detector is enabled; name some with --detectors")
    names = [d.name for d in moderator.detectors]

    def judge(ex: Example) -> Outcome:
        d = direction if direction != "auto" else ("output" if ex.kind == "response" else "input")
        t0 = time.perf_counter()
        # an answer is judged with its question, as the gateway judges it (``prompt`` in the data)
        context = ex.prompt or None if d == "output" else None
        verdict = moderator.check(ex.text, direction=d, scene=scene, context=context)  # type: ignore[arg-type]
        seconds = time.perf_counter() - t0
        return Outcome(flagged=verdict.action.severity >= min_action.severity, risks=tuple(f.risk for f in verdict.findings),
                       seconds=seconds, detector_ms=dict(verdict.timings_ms), action=verdict.action.value,
                       failed=tuple(verdict.failed_detectors))

    # first calls pay one-time set-up (dictionaries, caches); keep it out of the per-case times
    moderator.check("预热 warm-up", direction="input", scene=scene)
    result = _eval_progress(console, examples, judge, slowest)
    result["detectors"] = names
    result["flagged_at"] = min_action.value
    result["data"] = str(data)
    _print_metrics(console, f"{data.name}: {', '.join(names)}", result, ("source", "kind", "risk"))
    c = result["confusion"]["matrix"]
    console.print(f"confusion (rows true unsafe/safe; cols flagged/not): [[{c[0][0]}, {c[0][1]}], "
                  f"[{c[1][0]}, {c[1][1]}]]")
    if result["failed"]:
        console.print(f"[red]detector failures (judged fail-closed): {result['failed']}[/red]")
    sp = result["speed"]
    per_det = ", ".join(f"{k} {v:.3f}" for k, v in sp["detector_ms_per_1k_chars"].items())
    console.print(f"speed: {sp['ms_per_1k_chars']:.3f} ms per 1,000 chars ({per_det})")
    if result["slowest"]:
        table = Table(title="slowest cases")
        for col in ("id", "source", "chars", "ms", "label", "flagged"):
            table.add_column(col)
        for case in result["slowest"]:
            table.add_row(case["id"], case["source"], str(case["chars"]), f"{case['ms']:.2f}",
                          str(case["label"]), str(case["flagged"]))
        console.print(table)
    if report is not None:
        _write_json_atomic(report, result)
        console.print(f"wrote {report}")


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.command("train-classifier")(train_classifier)
    app.command("eval-detector")(eval_detector)
