"""``hegui annotation …``: annotation rules, annotators and their qualification, batches, and the
report the filing package reads (Art. 8; GB/T 45654 §5.3). See ``docs/annotation.md``.

Each change is an event on the ledger's chain with the ``--actor`` (default ``cli:<login>``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from hegui.commands.db import _errors, default_actor, open_with_config
from hegui.errors import UserError
from hegui.labeling.fileio import write_bytes_atomic

if TYPE_CHECKING:
    from hegui.annotation.config import AnnotationConfig
    from hegui.ledger.store import Ledger

annotation_app = typer.Typer(
    help="Annotation records (Art. 8, GB/T 45654 §5.3): versioned functional and safety rules, annotators "
         "and their qualification, batches with role separation, sampling and review, the report.",
    no_args_is_help=True,
)
rules_app = typer.Typer(help="Annotation rules: publish a version (functional or safety), list, starter set.",
                        no_args_is_help=True)
annotators_app = typer.Typer(help="Annotators: add, train, exam, qualify for roles, re-check, revoke, list.",
                             no_args_is_help=True)
batches_app = typer.Typer(help="Annotation batches: import, sample (functional), check, list.", no_args_is_help=True)
annotation_app.add_typer(rules_app, name="rules")
annotation_app.add_typer(annotators_app, name="annotators")
annotation_app.add_typer(batches_app, name="batches")

ConfigOpt = typer.Option(None, "--config", "-c", help="hegui.yaml to read `ledger.url` and `annotation.*` from.")
UrlOpt = typer.Option(None, "--url", help="Database URL; overrides the config (sqlite:///… or postgresql+psycopg://…).")
ActorOpt = typer.Option(None, "--actor", help="Who acts, as recorded in the ledger (default: cli:<your login>).")
HandleArg = typer.Argument(..., help="The annotator's handle (a staff id the provider chooses).")
KindOpt = typer.Option(..., "--kind", help="functional or safety.")
DateOpt = typer.Option(None, "--date", help="The day it took place, YYYY-MM-DD (default: today).")


@contextmanager
def _ledger(config: Path | None, url: str | None) -> Iterator[tuple[AnnotationConfig, Ledger]]:
    cfg, ledger = open_with_config(config, url, create=None)
    with ledger:
        yield cfg.annotation, ledger


def _day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(f"--date {value!r}: a date as YYYY-MM-DD") from None


def _write_atomic(path: Path, text: str) -> None:
    """Write to a temp file beside ``path`` then replace it, so a crash leaves no half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, text.encode("utf-8"))


# ----------------------------------------------------------------------------------------- rules


@rules_app.command("publish")
def rules_publish(
    file: Path = typer.Argument(..., help="The rules: YAML, or Markdown with front matter (see docs/annotation.md)."),
    kind: str = KindOpt,
    version: str = typer.Option(..., "--version", help="The version these rules are published as (e.g. 2026.1)."),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete",
                                          help="Publish safety rules that miss some of the 31 risks "
                                               "(recorded as incomplete)."),
    config: Path | None = ConfigOpt, url: str | None = UrlOpt, actor: str | None = ActorOpt,
) -> None:
    """Publish a version of the functional or safety annotation rules (stored with its SHA-256)."""
    from hegui.annotation.rules import publish_rules

    with _errors():
        with _ledger(config, url) as (_, ledger):
            row = publish_rules(ledger, file, kind=kind, version=version, publisher=actor or default_actor(),
                                allow_incomplete=allow_incomplete)
        note = ""
        if row.kind == "safety":
            note = (", covers all 31 risks" if row.complete
                    else f", INCOMPLETE: misses {', '.join(row.missing_risks)}")
        typer.echo(f"published {row.kind} rules {row.version} sha256 {row.sha256}{note}")


@rules_app.command("list")
def rules_list(
    as_json: bool = typer.Option(False, "--json", help="Print JSON (one object per rule set)."),
    config: Path | None = ConfigOpt, url: str | None = UrlOpt,
) -> None:
    """List the published rule sets, oldest first."""
    from hegui.annotation.rules import list_rules

    with _errors():
        with _ledger(config, url) as (_, ledger):
            rows = list_rules(ledger)
        if as_json:
            typer.echo(json.dumps([r.to_dict() for r in rows], ensure_ascii=False, indent=2))
            return
        if not rows:
            typer.echo("no annotation rules published (see `hegui annotation rules starter`)")
        for r in rows:
            cover = "" if r.kind != "safety" else (" complete" if r.complete else f" missing {len(r.missing_risks)}")
            typer.echo(f"{r.kind:<10}  {r.version:<16}  {r.published_at:%Y-%m-%d %H:%M}  {r.sha256[:12]}"
                       f"{cover}  {r.name}")


@rules_app.command("starter")
def rules_starter(out: Path = typer.Option(..., "--out", help="Folder to copy the starter rule files into.")) -> None:
    """Copy hegui's starter rules (safety: all 31 risks; functional) to adapt before publishing."""
    from hegui.annotation.rules import STARTER_DIR, STARTER_FILES

    with _errors():
        out.mkdir(parents=True, exist_ok=True)
        for name in STARTER_FILES:
            target = out / name
            if target.exists():
                raise UserError(f"{target} exists; not overwritten")
        for name in STARTER_FILES:
            shutil.copyfile(STARTER_DIR / name, out / name)
            typer.echo(f"wrote {out / name}")
        typer.echo("a starter: adapt it to your service, then `hegui annotation rules publish FILE --kind … --version …`")


# ------------------------------------------------------------------------------------ annotators


@annotators_app.command("add")
def annotators_add(handle: str = HandleArg,
                   name: str = typer.Option("", "--name", help="A label for readers (team or pseudonym); kept "
                                                               "out of the events chain."),
                   config: Path | None = ConfigOpt, url: str | None = UrlOpt, actor: str | None = ActorOpt) -> None:
    """Add an annotator (not yet qualified)."""
    from hegui.annotation.annotators import AnnotatorStore

    with _errors(), _ledger(config, url) as (cfg, ledger):
        AnnotatorStore(ledger, cfg).add(handle, name=name, actor=actor or default_actor())
        typer.echo(f"added {handle}")


@annotators_app.command("train")
def annotators_train(handle: str = HandleArg,
                     course: str = typer.Option(..., "--course", help="The in-house course taken."),
                     on: str | None = DateOpt,
                     config: Path | None = ConfigOpt, url: str | None = UrlOpt, actor: str | None = ActorOpt) -> None:
    """Record a training the annotator took."""
    from hegui.annotation.annotators import AnnotatorStore

    with _errors(), _ledger(config, url) as (cfg, ledger):
        AnnotatorStore(ledger, cfg).train(handle, course=course, on=_day(on), actor=actor or default_actor())
        typer.echo(f"recorded training of {handle}: {course}")


@annotators_app.command("exam")
def annotators_exam(handle: str = HandleArg,
                    score: float = typer.Option(..., "--score", help="The exam score."),
                    passed: bool = typer.Option(..., "--passed/--failed", help="Whether the exam was passed."),
                    on: str | None = DateOpt,
                    config: Path | None = ConfigOpt, url: str | None = UrlOpt, actor: str | None = ActorOpt) -> None:
    """Record an exam (the latest must be passed before qualifying)."""
    from hegui.annotation.annotators import AnnotatorStore

    with _errors(), _ledger(config, url) as (cfg, ledger):
        AnnotatorStore(ledger, cfg).exam(handle, score=score, passed=passed, on=_day(on),
                                         actor=actor or default_actor())
        typer.echo(f"recorded exam of {handle}: {score:g} {'passed' if passed else 'failed'}")


@annotators_app.command("qualify")
def annotators_qualify(handle: str = HandleArg,
                       roles: str = typer.Option(..., "--roles", help="annotate, review, or annotate,review."),
                       config: Path | None = ConfigOpt, url: str | None = UrlOpt,
                       actor: str | None = ActorOpt) -> None:
    """Qualify an annotator for roles (refused unless trained and the latest exam passed)."""
    from hegui.annotation.annotators import AnnotatorStore

    with _errors(), _ledger(config, url) as (cfg, ledger):
        wanted = [r.strip() for r in roles.split(",") if r.strip()]
        store = AnnotatorStore(ledger, cfg)
        store.qualify(handle, roles=wanted, actor=actor or default_actor())
        due = store.get(handle).recheck_due(cfg)
        typer.echo(f"qualified {handle} for {', '.join(wanted)}; re-check due {due}")


@annotators_app.command("revoke")
def annotators_revoke(handle: str = HandleArg,
                      reason: str = typer.Option(..., "--reason", help="Why the qualification is revoked."),
                      config: Path | None = ConfigOpt, url: str | None = UrlOpt,
                      actor: str | None = ActorOpt) -> None:
    """Revoke an annotator's qualification."""
    from hegui.annotation.annotators import AnnotatorStore

    with _errors(), _ledger(config, url) as (cfg, ledger):
        AnnotatorStore(ledger, cfg).revoke(handle, reason=reason, actor=actor or default_actor())
        typer.echo(f"revoked {handle}")


@annotators_app.command("recheck")
def annotators_recheck(handle: str = HandleArg,
                       passed: bool = typer.Option(..., "--passed/--failed", help="Whether the re-check was passed "
                                                                                 "(a failed one revokes)."),
                       on: str | None = DateOpt,
                       config: Path | None = ConfigOpt, url: str | None = UrlOpt,
                       actor: str | None = ActorOpt) -> None:
    """Record a periodic re-check: passed renews the qualification, failed revokes it."""
    from hegui.annotation.annotators import AnnotatorStore

    with _errors(), _ledger(config, url) as (cfg, ledger):
        store = AnnotatorStore(ledger, cfg)
        store.recheck(handle, passed=passed, on=_day(on), actor=actor or default_actor())
        if passed:
            typer.echo(f"re-check of {handle} passed; next due {store.get(handle).recheck_due(cfg)}")
        else:
            typer.echo(f"re-check of {handle} failed; qualification revoked")


@annotators_app.command("list")
def annotators_list(as_json: bool = typer.Option(False, "--json", help="Print JSON (one object per annotator)."),
                    config: Path | None = ConfigOpt, url: str | None = UrlOpt) -> None:
    """List annotators: roles, status (qualified, recheck_overdue, revoked, unqualified), re-check due."""
    from hegui.annotation.annotators import AnnotatorStore

    with _errors(), _ledger(config, url) as (cfg, ledger):
        states = AnnotatorStore(ledger, cfg).states()
        from hegui.ledger.models import utcnow

        today = utcnow().date()
        if as_json:
            typer.echo(json.dumps([s.to_dict(cfg, today) for s in states], ensure_ascii=False, indent=2))
            return
        if not states:
            typer.echo("no annotators (add one with `hegui annotation annotators add HANDLE`)")
        for s in states:
            d = s.to_dict(cfg, today)
            typer.echo(f"{s.handle:<16}  {d['status']:<15}  {','.join(s.roles) or '-':<16}  "
                       f"re-check {d['recheck_due'] or '-'}  {s.name}".rstrip())


# --------------------------------------------------------------------------------------- batches


def _print_batch(st: object) -> None:
    from hegui.annotation.batches import BatchState

    assert isinstance(st, BatchState)
    line = f"batch {st.batch_id} ({st.kind}, rules {st.rules_version}): {st.items} items, {st.status}"
    if st.kind == "safety" and st.lacking_approval:
        line += f"; {st.lacking_approval} of {st.items} items lack a reviewer's approval"
    if st.kind == "functional":
        if st.status == "open":
            line += f"; draw the check sample with `hegui annotation batches sample {st.batch_id}`"
        if st.outstanding_errors:
            line += f"; {st.outstanding_errors} error(s) to re-annotate"
        if st.sampled and st.checked < st.sampled:
            line += f"; {st.sampled - st.checked} of {st.sampled} sampled items not checked"
    if st.discarded_reason:
        line += f"; {st.discarded_reason}"
    typer.echo(line)


@batches_app.command("import")
def batches_import(
    file: Path = typer.Argument(..., help="The export: CSV, JSON Lines, or a Label Studio JSON export."),
    kind: str = KindOpt,
    rules_version: str = typer.Option(..., "--rules-version", help="The published rules version it was annotated under."),
    fmt: str | None = typer.Option(None, "--format", help="csv, jsonl or label-studio (default: from the file name; "
                                                          ".json is label-studio)."),
    batch: str | None = typer.Option(None, "--batch", help="The batch id (default: the file name without suffix)."),
    config: Path | None = ConfigOpt, url: str | None = UrlOpt, actor: str | None = ActorOpt,
) -> None:
    """Import a batch; refused whole if an annotator reviews their own task or lacks a current qualification."""
    from hegui.annotation.batches import BatchStore

    with _errors(), _ledger(config, url) as (cfg, ledger):
        st = BatchStore(ledger, cfg).import_batch(file, kind=kind, rules_version=rules_version, fmt=fmt,
                                                  batch_id=batch, actor=actor or default_actor())
        _print_batch(st)


@batches_app.command("sample")
def batches_sample(
    batch: str = typer.Argument(..., help="The functional batch id."),
    size: int | None = typer.Option(None, "--size", help="Items to draw (default: annotation.functional_sample_size)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the draw (default: annotation.sample_seed)."),
    out: Path | None = typer.Option(None, "--out", help="Write the sampled item ids to this CSV (item_id, result, "
                                                        "checker), ready for the checker to fill in."),
    config: Path | None = ConfigOpt, url: str | None = UrlOpt, actor: str | None = ActorOpt,
) -> None:
    """Draw the manual-check sample of a functional batch (once; seeded, so it can be re-drawn to compare)."""
    from hegui.annotation.batches import BatchStore

    with _errors(), _ledger(config, url) as (cfg, ledger):
        chosen = BatchStore(ledger, cfg).sample(batch, size=size, seed=seed, actor=actor or default_actor())
        if out is not None:
            _write_atomic(out, "item_id,result,checker\n" + "".join(f"{i},,\n" for i in chosen))
            typer.echo(f"sampled {len(chosen)} items of batch {batch}; wrote {out}")
        else:
            typer.echo(f"sampled {len(chosen)} items of batch {batch}:")
            for i in chosen:
                typer.echo(i)


@batches_app.command("check")
def batches_check(
    batch: str = typer.Argument(..., help="The batch id."),
    file: Path = typer.Argument(..., help="CSV or JSONL: functional (item_id, result ok|error|illegal|re-annotated, "
                                          "checker, annotator, labels) or safety (item_id, reviewer, verdict)."),
    fmt: str | None = typer.Option(None, "--format", help="csv or jsonl (default: from the file name)."),
    config: Path | None = ConfigOpt, url: str | None = UrlOpt, actor: str | None = ActorOpt,
) -> None:
    """Record the checker's results (functional) or further reviews (safety); any illegal item discards
    a functional batch."""
    from hegui.annotation.batches import BatchStore

    with _errors(), _ledger(config, url) as (cfg, ledger):
        _print_batch(BatchStore(ledger, cfg).check(batch, file, fmt=fmt, actor=actor or default_actor()))


@batches_app.command("list")
def batches_list(as_json: bool = typer.Option(False, "--json", help="Print JSON (one object per batch)."),
                 config: Path | None = ConfigOpt, url: str | None = UrlOpt) -> None:
    """List batches with their status and counts."""
    from hegui.annotation.batches import BatchStore

    with _errors(), _ledger(config, url) as (cfg, ledger):
        states = BatchStore(ledger, cfg).states()
        if as_json:
            typer.echo(json.dumps([s.to_dict() for s in states], ensure_ascii=False, indent=2))
            return
        if not states:
            typer.echo("no batches (import one with `hegui annotation batches import`)")
        for s in states:
            _print_batch(s)


# ---------------------------------------------------------------------------------------- report


@annotation_app.command("report")
def annotation_report(
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON (what the filing package reads)."),
    out: Path | None = typer.Option(None, "--out", help="Write the JSON summary to this file."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when the records show problems."),
    config: Path | None = ConfigOpt, url: str | None = UrlOpt,
) -> None:
    """Summarise the annotation records: rules, annotators, batches, and what §5.3 asks that they do not show."""
    from hegui.annotation.report import build_summary

    with _errors(), _ledger(config, url) as (cfg, ledger):
        summary = build_summary(ledger, cfg)
    text = summary.model_dump_json(indent=2)
    if out is not None:
        with _errors():
            _write_atomic(out, text + "\n")
    if as_json:
        typer.echo(text)
    else:
        _print_summary(summary)
        if out is not None:
            typer.echo(f"wrote {out}")
    if strict and summary.problems:
        raise typer.Exit(1)


def _print_summary(summary: object) -> None:
    from rich.console import Console
    from rich.table import Table

    from hegui.annotation.summary import AnnotationSummary

    assert isinstance(summary, AnnotationSummary)
    console = Console()
    rules = Table(title="Annotation rules", title_justify="left")
    for col in ("kind", "version", "published", "sha256", "risks"):
        rules.add_column(col)
    for r in summary.rules:
        risks = "" if r.kind != "safety" else f"{len(r.risks_covered)}/31"
        rules.add_row(r.kind, r.version, f"{r.published_at:%Y-%m-%d}", r.sha256[:12], risks)
    console.print(rules)
    a = summary.annotators
    console.print(f"Annotators: {a.total} on record, {a.qualified} qualified, {a.revoked} revoked, "
                  f"{a.recheck_overdue} re-check overdue")
    # one "progress" column instead of six numeric ones, so the table fits an 80-column terminal
    batches = Table(title="Batches", title_justify="left")
    for col in ("batch", "kind", "rules", "items", "progress", "status"):
        batches.add_column(col, no_wrap=col in ("kind", "items", "status"))
    for b in summary.batches:
        if b.kind == "functional":
            progress = f"sampled {b.sampled}, errors {b.errors} (re-annotated {b.re_annotated})"
            if b.illegal_found:
                progress += f", illegal {b.illegal_found}"
        else:
            progress = f"approved {b.approved_items}/{b.items}, reviewed {b.sampled}"
        batches.add_row(b.batch_id, b.kind, b.rules_version, str(b.items), progress, b.status)
    console.print(batches)
    if summary.problems:
        console.print("[bold]Problems[/bold]")
        for p in summary.problems:
            console.print(f"- {p}", markup=False, soft_wrap=True)
    else:
        console.print("No problems found in the records.")


def register(app: typer.Typer) -> None:
    """Add ``hegui annotation``."""
    app.add_typer(annotation_app, name="annotation")
