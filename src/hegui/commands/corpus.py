"""``hegui corpus …``: the training-data audit (Art. 7; TC260-003 §5.1, §9).

``audit`` scans every record of every source (local processes or a Dask cluster), applies the 5%
rule per source and the automated check, exports the manual sample, and writes the summary and the
report; it resumes where an interrupted run stopped. ``sources check`` names the provenance each
source lacks; ``review export|import`` carries the manual sample to the reviewers and back;
``report`` redraws the report from a summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from hegui.config import HeguiConfig

corpus_app = typer.Typer(help="Training-data audit: sources, the 5% rule, samples and the report (Art. 7).",
                         no_args_is_help=True)
sources_app = typer.Typer(help="The source registry (provenance, licences, records).", no_args_is_help=True)
review_app = typer.Typer(help="The manual review sample (4,000 records, ≥ 96%).", no_args_is_help=True)
corpus_app.add_typer(sources_app, name="sources")
corpus_app.add_typer(review_app, name="review")

CONFIG_HELP = "hegui.yaml: its `corpus:` section and the moderation sections the scan uses."


def _config(config: Path | None) -> HeguiConfig:
    from hegui.config import load_config

    return load_config(config)


@corpus_app.command("audit")
def audit(
    sources: Path = typer.Argument(..., help="Source registry (YAML or CSV)."),
    out: Path = typer.Option(..., "--out", "-o", file_okay=False, help="Audit folder (created; resumed if it holds "
                             "an interrupted audit)."),
    engine: str | None = typer.Option(None, "--engine", help="local (processes on this machine) or dask; "
                                      "default `corpus.engine`."),
    address: str | None = typer.Option(None, "--address", help="Dask scheduler, e.g. tcp://head:8786 (with "
                                       "--engine dask); default `corpus.address`, else a local cluster."),
    workers: int | None = typer.Option(None, "--workers", "-w", min=1, help="Worker processes (local engine or "
                                       "local Dask cluster); default `corpus.workers`, else the CPU count."),
    config: Path | None = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    restart: bool = typer.Option(False, "--restart", help="Discard the finished shards in OUT and scan again."),
) -> None:
    """Scan every record, decide each source (5% rule) and the checks; exit 1 on a REJECT or a FAIL."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from hegui.corpus.audit import build_scan_settings, failures, run_audit
    from hegui.corpus.engines import make_engine

    cfg = _config(config)
    corpus = cfg.corpus
    name = engine or corpus.engine
    settings = build_scan_settings(out, corpus, config)
    with make_engine(name, workers or corpus.workers, address or corpus.address, corpus.in_flight_per_worker) as eng, \
            Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                     TextColumn("{task.fields[records]:,} records"), TimeElapsedColumn(),
                     transient=False) as progress:
        task = progress.add_task(f"scanning ({eng.name}, {eng.workers} workers)", total=None, records=0)

        def update(done: int, total: int, records: int) -> None:
            progress.update(task, completed=done, total=total, records=records)

        summary = run_audit(sources, out, eng, settings, corpus=corpus, config_path=config, restart=restart,
                            on_progress=update)
    for v in summary.sources:
        rate = "—" if v.rate is None else f"{v.rate:.2%} [{v.ci_low:.2%}–{v.ci_high:.2%}]"
        typer.echo(f"{v.decision:<10} {v.source}: {v.flagged}/{v.records} flagged {rate}")
    for c in (summary.automated, summary.manual):
        rate = "—" if c.rate is None else f"{c.rate:.2%}"
        typer.echo(f"{c.verdict:<10} {c.name} check: {c.passed}/{c.sampled} passed {rate} (≥ {c.threshold:.0%}, "
                   f"sample ≥ {c.required})")
    typer.echo(f"summary: {out / 'summary.json'}; report: {summary.outputs.get('report_html', '—')}; "
               f"manual sample: {summary.outputs.get('manual_export', '—')}")
    if "report_error" in summary.outputs:
        typer.echo(f"warning: report not written: {summary.outputs['report_error']}; "
                   f"then run `hegui corpus report {out}`", err=True)
    failed = failures(summary)
    if failed:
        for line in failed:
            typer.echo(f"failed: {line}", err=True)
        raise typer.Exit(1)


@sources_app.command("check")
def sources_check(
    sources: Path = typer.Argument(..., help="Source registry (YAML or CSV)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when any source lacks what the standard asks "
                                "for (warnings never fail)."),
) -> None:
    """Name the provenance each source lacks (licence, records, contract, authorisation, PI basis)."""
    from hegui.corpus.sources import check_sources, load_sources

    found = load_sources(sources)
    problems = check_sources(found)
    for p in problems:
        typer.echo(str(p))
    errors = sum(p.severity == "error" for p in problems)
    typer.echo(f"{len(found)} sources: {errors} problems, {len(problems) - errors} warnings")
    if strict and errors:
        raise typer.Exit(1)


@review_app.command("export")
def review_export(
    out: Path = typer.Argument(..., help="Audit folder (from `hegui corpus audit`)."),
    file: Path = typer.Option(..., "--out", "-o", dir_okay=False, help="Spreadsheet to write (.xlsx or .csv)."),
) -> None:
    """Write the manual sample as the reviewers' spreadsheet (审核结论 合格/不合格, 风险类别, 备注)."""
    from hegui.corpus.audit import export_manual

    n = export_manual(out, file)
    typer.echo(f"{n} records written to {file}")


@review_app.command("import")
def review_import(
    out: Path = typer.Argument(..., help="Audit folder (from `hegui corpus audit`)."),
    file: Path = typer.Argument(..., help="The reviewers' spreadsheet (.xlsx or .csv)."),
    config: Path | None = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when the manual check FAILs."),
) -> None:
    """Rate the reviewers' verdicts against 96% and update summary.json and the report."""
    from hegui.corpus.audit import import_manual
    from hegui.corpus.report import write_audit_report

    corpus = _config(config).corpus
    summary = import_manual(out, file, corpus)
    write_audit_report(out, summary, Path(corpus.report_font) if corpus.report_font else None,
                       corpus.source_threshold)
    m = summary.manual
    rate = "—" if m.rate is None else f"{m.rate:.2%} [{m.ci_low:.2%}–{m.ci_high:.2%}]"
    typer.echo(f"{m.verdict} manual check: {m.passed}/{m.sampled} passed {rate} (≥ {m.threshold:.0%}, "
               f"sample ≥ {m.required})")
    if strict and m.verdict == "FAIL":
        raise typer.Exit(1)


@corpus_app.command("report")
def report(
    out: Path = typer.Argument(..., help="Audit folder (from `hegui corpus audit`)."),
    config: Path | None = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
) -> None:
    """Write OUT/report.html and OUT/report.pdf again from OUT/summary.json."""
    from hegui.corpus.audit import load_summary, save_summary
    from hegui.corpus.report import write_audit_report

    corpus = _config(config).corpus
    summary = load_summary(out)
    paths = write_audit_report(out, summary, Path(corpus.report_font) if corpus.report_font else None,
                               corpus.source_threshold)
    summary.outputs.update(paths)
    save_summary(out, summary)
    typer.echo(f"report: {paths['report_html']}, {paths['report_pdf']}")


def register(app: typer.Typer) -> None:
    app.add_typer(corpus_app, name="corpus")
