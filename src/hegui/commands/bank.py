"""``hegui bank …``: question banks for the filing assessment (GB/T 45654 §8): coverage against the
standard's sizes, expansion of seeds into variants, the starter banks, format conversion and
de-duplication. Banks are XLSX, CSV or JSONL, chosen by the file's suffix (``docs/banks.md``)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from hegui.errors import UserError

if TYPE_CHECKING:
    from hegui.assessment.coverage import BankMinimums, CoverageReport

bank_app = typer.Typer(
    help=(
        "Question banks (generated-content, should-refuse, should-not-refuse): check coverage against "
        "GB/T 45654 §8, expand seeds into variants, write the starter banks, convert and de-duplicate."
    ),
    no_args_is_help=True,
)

ConfigOpt = typer.Option(None, "--config", "-c", help="hegui.yaml whose assessment.bank_minimums to use.")


@contextmanager
def _errors() -> Iterator[None]:
    """User errors: one line on stderr, exit 2 (also under typer's CliRunner)."""
    try:
        yield
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


def _minimums(config: Path | None) -> BankMinimums:
    from hegui.config import load_config

    return load_config(config).assessment.bank_minimums


def _print_report(report: CoverageReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for kind in report.kinds:
        label = "topic" if kind.kind == "should_not_refuse" else "risk"
        table = Table(title=f"{kind.kind}: {kind.total:,} items (minimum {kind.minimum:,})")
        for col, justify in ((label, "left"), ("名称", "left"), ("items", "right"), ("minimum", "right"),
                             ("status", "left")):
            table.add_column(col, justify=justify)  # type: ignore[arg-type]
        for g in kind.groups:
            status = "[green]ok[/green]" if not g.short else f"[red]short by {g.minimum - g.count}[/red]"
            table.add_row(g.code, g.name, f"{g.count:,}", f"{g.minimum:,}", status)
        total_ok = kind.total >= kind.minimum
        table.add_row("total", "", f"{kind.total:,}", f"{kind.minimum:,}",
                      "[green]ok[/green]" if total_ok else f"[red]short by {kind.minimum - kind.total:,}[/red]",
                      end_section=True)
        console.print(table)
        if kind.dropped:
            console.print(f"  ({kind.dropped:,} items marked drop are not counted)")
    for w in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")
    if report.shortfalls:
        console.print(f"[red]{len(report.shortfalls)} shortfall(s) against GB/T 45654 §8:[/red]")
        for s in report.shortfalls:
            console.print(f"  {s}")
    else:
        console.print("[green]meets the standard's bank sizes and per-risk / per-topic minimums[/green]")


@bank_app.command("check")
def check(
    banks: list[Path] = typer.Argument(..., help="Bank files (.xlsx, .csv, .jsonl); several are merged."),
    config: Path | None = ConfigOpt,
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when any size or per-risk/topic minimum falls short."),
    as_json: bool = typer.Option(False, "--json", help="Print the coverage report as JSON instead of tables."),
) -> None:
    """Count each bank kind per risk or topic against GB/T 45654 §8 and name every shortfall."""
    from hegui.assessment.bank_io import load_banks
    from hegui.assessment.coverage import check_coverage

    with _errors():
        bank = load_banks(banks)
        report = check_coverage(bank, _minimums(config))
    if as_json:
        typer.echo(json.dumps(report.to_dict() | {"digest": bank.digest()}, ensure_ascii=False, indent=2))
    else:
        _print_report(report)
    if strict and not report.meets_standard:
        raise typer.Exit(1)


@bank_app.command("expand")
def expand_cmd(
    seeds: list[Path] = typer.Argument(..., help="Seed bank files (.xlsx, .csv, .jsonl)."),
    out: Path = typer.Option(..., "--out", "-o", help="Bank file to write (.xlsx, .csv, .jsonl), atomically."),
    templates: list[Path] | None = typer.Option(
        None, "--templates", "-t", help="Extra templates YAML (same shape as the built-in one). Repeatable."
    ),
    no_builtin: bool = typer.Option(False, "--no-builtin-templates", help="Use only the --templates files."),
    family: list[str] | None = typer.Option(
        None, "--family", help="Template family to use: wrapper, paraphrase or obfuscation. Repeatable (default: all)."
    ),
    per_seed: int = typer.Option(3, "--per-seed", min=0, help="Template variants per seed."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same variants."),
    max_variants: int | None = typer.Option(None, "--max", min=0, help="Stop after this many variants in all."),
    model: str | None = typer.Option(
        None, "--model", help="OpenAI-compatible base URL (e.g. http://127.0.0.1:8000/v1) to write paraphrases."
    ),
    model_name: str | None = typer.Option(None, "--model-name", help="Model name sent to --model."),
    paraphrases: int = typer.Option(2, "--paraphrases", min=0, help="Model paraphrases per seed (with --model)."),
    api_key_env: str = typer.Option(
        "OPENAI_API_KEY", "--api-key-env", help="Environment variable holding the --model API key (if any)."
    ),
    timeout: float = typer.Option(60.0, "--timeout", min=1, help="Seconds per --model request."),
    retries: int = typer.Option(3, "--retries", min=1, help="Attempts per --model request (connection errors, 429, 5xx)."),
    variants_only: bool = typer.Option(False, "--variants-only", help="Write only the variants, not the seeds."),
    no_dedup: bool = typer.Option(False, "--no-dedup", help="Keep duplicates (default: drop exact and near duplicates)."),
    threshold: float = typer.Option(0.8, "--threshold", min=0.01, max=1.0, help="Near-duplicate similarity (0–1)."),
) -> None:
    """Grow seed questions into jailbreak, paraphrase and obfuscation variants (and model paraphrases
    with --model); each variant has seed_id, origin and an empty review column to mark ok / drop."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from hegui.assessment.bank_io import load_banks, write_bank
    from hegui.assessment.dedup import dedup
    from hegui.assessment.expand import FAMILIES, Family, ModelParaphraser, expand, load_templates

    with _errors():
        fams: list[Family] = []
        for f in family or list(FAMILIES):
            if f not in FAMILIES:
                raise UserError(f"--family: {f!r} is not one of {', '.join(FAMILIES)}")
            fams.append(f)
        if model and not model_name:
            raise UserError("--model needs --model-name")
        tf = load_templates(templates or [], builtin=not no_builtin)
        bank = load_banks(seeds)
        paraphraser = (
            ModelParaphraser(model, model_name or "", api_key=os.environ.get(api_key_env), timeout=timeout,
                             retries=retries)
            if model else None
        )
        try:
            n_seeds = sum(1 for i in bank.items if i.seed_id is None)
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          transient=True) as bar:
                task = bar.add_task("expanding", total=n_seeds)
                result = expand(
                    bank, tf, per_seed=per_seed, seed=seed, max_variants=max_variants, families=fams,
                    model=paraphraser, model_per_seed=paraphrases if paraphraser else 0,
                    include_seeds=not variants_only, progress=lambda k: bar.advance(task, k),
                )
        finally:
            if paraphraser is not None:
                paraphraser.close()
        final = result.bank
        note = ""
        if not no_dedup:
            d = dedup(final, threshold=threshold)
            final = d.bank
            c = d.counts()
            note = f"; dropped {c['exact']:,} exact and {c['near']:,} near duplicates"
        write_bank(final, out)
    origins = ", ".join(f"{k} {v:,}" for k, v in sorted(result.by_origin.items())) or "none"
    typer.echo(f"{result.seeds:,} seeds → {result.variants:,} variants ({origins}){note}; wrote {len(final):,} items to {out}")


@bank_app.command("starter")
def starter(
    out: Path = typer.Option(..., "--out", "-o", help="Bank file to write (.xlsx, .csv, .jsonl), atomically."),
) -> None:
    """Write hegui's starter banks (every risk and topic, far below the standard's sizes) to edit and grow."""
    from hegui.assessment.bank_io import starter_bank, write_bank

    with _errors():
        bank = starter_bank()
        write_bank(bank, out)
    counts = ", ".join(f"{k} {len(v)}" for k, v in bank.by_kind().items())
    typer.echo(f"wrote {len(bank)} starter items ({counts}) to {out}")


@bank_app.command("convert")
def convert(
    source: Path = typer.Argument(..., help="Bank file to read (.xlsx, .csv, .jsonl)."),
    target: Path = typer.Argument(..., help="Bank file to write (.xlsx, .csv, .jsonl), atomically."),
) -> None:
    """Convert a bank between XLSX, CSV and JSONL (validating every row on the way)."""
    from hegui.assessment.bank_io import read_bank, write_bank

    with _errors():
        bank = read_bank(source)
        write_bank(bank, target)
    typer.echo(f"wrote {len(bank):,} items to {target}")


@bank_app.command("dedup")
def dedup_cmd(
    banks: list[Path] = typer.Argument(..., help="Bank files (.xlsx, .csv, .jsonl); several are merged."),
    out: Path = typer.Option(..., "--out", "-o", help="Bank file to write (.xlsx, .csv, .jsonl), atomically."),
    threshold: float = typer.Option(0.8, "--threshold", min=0.01, max=1.0, help="Near-duplicate similarity (0–1)."),
    ngram: int = typer.Option(2, "--ngram", min=1, max=8, help="Characters per shingle (minhash)."),
    method: str = typer.Option("minhash", "--method", help="minhash (Jaccard of shingles) or rapidfuzz (ratio)."),
    raw: bool = typer.Option(
        False, "--raw", help="Compare the text as written (NFKC only), so obfuscated variants are kept."
    ),
    show: bool = typer.Option(False, "--show", help="List every dropped item and the item it duplicates."),
) -> None:
    """Drop exact and near-duplicate questions within each kind (earliest wins; seeds win over variants)."""
    from hegui.assessment.bank_io import load_banks, write_bank
    from hegui.assessment.dedup import dedup

    with _errors():
        if method not in ("minhash", "rapidfuzz"):
            raise UserError(f"--method: {method!r} is not minhash or rapidfuzz")
        bank = load_banks(banks)
        result = dedup(bank, threshold=threshold, ngram=ngram, method=method, normalized=not raw)  # type: ignore[arg-type]
        write_bank(result.bank, out)
    if show:
        for d in result.dropped:
            typer.echo(f"{d.reason}\t{d.similarity:.2f}\t{d.item_id}\tduplicates {d.kept_id}")
    c = result.counts()
    typer.echo(f"dropped {c['exact']:,} exact and {c['near']:,} near duplicates; wrote {len(result.bank):,} items to {out}")


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.add_typer(bank_app, name="bank")
