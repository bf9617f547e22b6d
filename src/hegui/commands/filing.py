"""``hegui filing export`` (the LLM filing package, Art. 17) and ``hegui evidence export`` (the
inspection evidence, Art. 19)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from hegui.commands.db import _errors

if TYPE_CHECKING:
    from hegui.config import HeguiConfig
    from hegui.ledger.store import Ledger

filing_app = typer.Typer(
    help="The filing package (大模型备案): 安全评估报告, keyword list, test results, annotation rules, agreements, "
         "拟公示内容 and the algorithm self-assessment outline, with a manifest of SHA-256 digests.",
    no_args_is_help=True,
)
evidence_app = typer.Typer(
    help="Inspection evidence (Art. 19) over a date range: data sources, annotation rules, safety mechanism, "
         "decision and enforcement counts, the ledger's verification.",
    no_args_is_help=True,
)

ConfigOpt = typer.Option(None, "--config", "-c", help="hegui.yaml (filing.*, provider, policy, detectors, ledger).")
UrlOpt = typer.Option(None, "--url", help="Ledger database URL; overrides `ledger.url` of the config.")
NoLedgerOpt = typer.Option(False, "--no-ledger", help="Do not read a ledger (its clauses become 待确认).")
AuditOpt = typer.Option(None, "--corpus-audit", help="A corpus audit folder (its summary.json), when one exists.")
AnnotationOpt = typer.Option(
    None, "--annotation", help="Annotation summary JSON (`hegui annotation report --json`); default: from the ledger.")


def _ledger(cfg: HeguiConfig, url: str | None, no_ledger: bool) -> Ledger | None:
    from hegui.errors import UserError
    from hegui.ledger.errors import LedgerOpenError
    from hegui.ledger.store import Ledger

    if no_ledger:
        return None
    try:
        if url is not None:
            return Ledger.open(url, create=False, config=cfg.ledger)
        return Ledger.from_config(cfg, create=False)
    except LedgerOpenError as exc:
        raise UserError(f"{exc} (give --url, or --no-ledger where the command has it)") from None


def _font(cfg: HeguiConfig) -> Path:
    from hegui.cases.report import find_font

    return find_font(cfg.resolve_path(cfg.cases.report_font) if cfg.cases.report_font else None)


@filing_app.command("export")
def export(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to create (must not exist); DIR.zip is written beside it."),
    run: Path | None = typer.Option(None, "--run", help="Assessment run folder (`hegui assess run --out RUN`)."),
    annotation: Path | None = AnnotationOpt,
    corpus_audit: Path | None = AuditOpt,
    rules: list[Path] | None = typer.Option(
        None, "--rules", help="A published annotation rules text (语料标注规则) to include; repeatable."),
    bank: list[Path] | None = typer.Option(
        None, "--bank", help="A question bank file, for the §8 bank sizes; repeatable."),
    config: Path | None = ConfigOpt,
    url: str | None = UrlOpt,
    no_ledger: bool = NoLedgerOpt,
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when any clause is 不符合 or 待确认."),
) -> None:
    """Write the filing package folder and its ZIP; print the clause verdict counts."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from hegui.config import load_config
    from hegui.filing.gather import gather
    from hegui.filing.package import atomic_folder, build_folder

    with _errors():
        cfg = load_config(config)
        font = _font(cfg)
        ledger = _ledger(cfg, url, no_ledger)
        try:
            now = datetime.now(UTC)
            inp = gather(cfg, ledger=ledger, run=run, annotation=annotation, corpus_audit=corpus_audit,
                         rules=rules, banks=bank, now=now)
            with Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True) as progress:
                task = progress.add_task("filing package")
                manifest = atomic_folder(out, lambda tmp: build_folder(
                    inp, tmp, font, now, progress=lambda s: progress.update(task, description=f"filing package: {s}")))
        finally:
            if ledger is not None:
                ledger.close()
    n = manifest["counts"]
    typer.echo(f"wrote {out} and {out.name}.zip: {len(manifest['files'])} files; clauses: "
               + ", ".join(f"{k} {v}" for k, v in n.items()))
    for line in manifest["missing"]:
        typer.echo(f"missing: {line}")
    if strict and (n["不符合"] or n["待确认"]):
        raise typer.Exit(1)


@evidence_app.command("export")
def evidence_export(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to create (must not exist); DIR.zip is written beside it."),
    start: str = typer.Option(..., "--from", help="First day, YYYY-MM-DD (provider's time zone, accounts.timezone)."),
    end: str = typer.Option(..., "--to", help="Last day, YYYY-MM-DD, inclusive."),
    corpus_audit: Path | None = AuditOpt,
    sources: Path | None = typer.Option(
        None, "--sources", help="Training-data sources registry (JSON, YAML or CSV)."),
    annotation: Path | None = AnnotationOpt,
    config: Path | None = ConfigOpt,
    url: str | None = UrlOpt,
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when the ledger's chain does not verify."),
) -> None:
    """Write the inspection evidence (evidence.json, evidence.xlsx, evidence.pdf, manifest.json) and its ZIP."""
    from hegui.config import load_config
    from hegui.filing import inputs as fi
    from hegui.filing.evidence import build_evidence, period, read_sources, write_evidence
    from hegui.filing.package import atomic_folder

    with _errors():
        cfg = load_config(config)
        period(start, end, cfg.accounts.timezone)  # bad dates fail before anything is opened
        font = _font(cfg)
        audit = fi.read_audit(corpus_audit) if corpus_audit is not None else None
        registry = read_sources(sources) if sources is not None else None
        ledger = _ledger(cfg, url, False)
        assert ledger is not None
        with ledger:
            summary = (fi.read_annotation(annotation) if annotation is not None
                       else fi.annotation_from_ledger(ledger, cfg.annotation))
            ev = build_evidence(cfg, ledger, start, end, audit=audit, sources=registry, annotation=summary)
        atomic_folder(out, lambda tmp: write_evidence(ev, tmp, font))
    ok = ev["verification"]["ok"]
    typer.echo(f"wrote {out} and {out.name}.zip: {ev['decisions']['total']:,} decisions, "
               f"{ev['enforcement']['total']:,} enforcement events, ledger chain "
               + ("verified" if ok else f"FAILED verification ({len(ev['verification']['problems'])} problems)"))
    if strict and not ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(filing_app, name="filing")
    app.add_typer(evidence_app, name="evidence")
