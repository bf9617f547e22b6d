"""``hegui incidents …``: incidents (Art. 14) by hand: open one about decisions in the ledger, record
what was stopped or removed, the rectification and the report to the authority, close it; export the
rectification samples (JSONL, without the decisions of people who opted out of training) and the
authority report (DOCX, PDF, JSON, chart).

Every change is the same transaction as through the admin API (:mod:`hegui.cases.incidents`): the
new state and its hash-chained event, recorded with the ``--actor`` (default ``cli:<login>``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from hegui.commands.db import _errors, default_actor, open_with_config
from hegui.errors import UserError

if TYPE_CHECKING:
    from hegui.cases.incidents import IncidentView
    from hegui.config import HeguiConfig
    from hegui.ledger.store import Ledger

incidents_app = typer.Typer(
    help="Incidents (Art. 14): open one about decisions, record containment, rectification and the report "
         "to the authority, close; export rectification samples and the authority report (DOCX, PDF, JSON).",
    no_args_is_help=True,
)

ConfigOpt = typer.Option(None, "--config", "-c", help="hegui.yaml to read `ledger.url`, `provider` and `cases.*` from.")
UrlOpt = typer.Option(None, "--url", help="Database URL; overrides the config (sqlite:///… or postgresql+psycopg://…).")
JsonOpt = typer.Option(False, "--json", help="Print JSON.")
ActorOpt = typer.Option(None, "--actor", help="Who acts, as recorded in the ledger (default: cli:<your login>).")
IncidentArg = typer.Argument(..., help="The incident id (in_…).")
DecisionOpt = typer.Option(..., "--decision", "-d", help="A decision id in the ledger. Repeatable.")


def _actor(actor: str | None) -> str:
    return actor or default_actor()


@contextmanager
def _opened(config: Path | None, url: str | None) -> Iterator[tuple[HeguiConfig, Ledger]]:
    cfg, ledger = open_with_config(config, url, create=False)
    with ledger:
        yield cfg, ledger


def _echo(view: IncidentView, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(view.to_dict(), ensure_ascii=False, indent=2))
    else:
        typer.echo(f"{view.id}\t{view.status}\t{len(view.decision_ids)} decisions\t{view.title}")


@incidents_app.command("open")
def incidents_open(
    title: str = typer.Option(..., "--title", "-t", help="What was found, in a line (the report's title)."),
    decisions: list[str] = DecisionOpt,
    summary: str = typer.Option("", "--summary", "-s", help="What happened, for the report."),
    case_id: str | None = typer.Option(None, "--case", help="The complaint or report case it came from (cs_…)."),
    actor: str | None = ActorOpt, config: Path | None = ConfigOpt, url: str | None = UrlOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Open an incident about decisions in the ledger (unknown ids are refused)."""
    from hegui.cases import incidents

    with _errors(), _opened(config, url) as (_cfg, ledger):
        incident_id = incidents.open_incident(ledger, title=title, summary=summary, decision_ids=decisions,
                                              case_id=case_id, actor=_actor(actor))
        _echo(incidents.get_incident(ledger, incident_id), as_json)


@incidents_app.command("list")
def incidents_list(
    status: str | None = typer.Option(None, "--status", help="Only incidents with this status (open, contained, "
                                                             "rectified, reported, closed)."),
    config: Path | None = ConfigOpt, url: str | None = UrlOpt, as_json: bool = JsonOpt,
) -> None:
    """List incidents, newest first: id, status, how many decisions, title."""
    from hegui.cases import incidents

    with _errors(), _opened(config, url) as (_cfg, ledger):
        rows = incidents.list_incidents(ledger, status=status)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in rows], ensure_ascii=False, indent=2))
        return
    for r in rows:
        _echo(r, False)


@incidents_app.command("show")
def incidents_show(incident_id: str = IncidentArg, config: Path | None = ConfigOpt, url: str | None = UrlOpt,
                   as_json: bool = JsonOpt) -> None:
    """Show one incident: what was found, stopped and rectified, the report, and its events."""
    from hegui.cases import incidents
    from hegui.ledger.events import events

    with _errors(), _opened(config, url) as (_cfg, ledger):
        view = incidents.get_incident(ledger, incident_id)
        history = [e for e in events(ledger, kind_prefix="incident.", limit=None)
                   if e.data.get("incident") == incident_id]
    if as_json:
        typer.echo(json.dumps({"incident": view.to_dict(), "events": [e.to_dict() for e in history]},
                              ensure_ascii=False, indent=2))
        return
    typer.echo(f"incident   {view.id} ({view.status})\ntitle      {view.title}")
    typer.echo(f"opened     {view.opened_at.isoformat(timespec='seconds')} by {view.opened_by}"
               + (f", from case {view.case_id}" if view.case_id else ""))
    for label, text in (("summary", view.summary), ("stopped", view.stopped), ("rectified", view.rectification)):
        if text:
            typer.echo(f"{label:<10} {text}")
    if view.details.get("authority"):
        typer.echo(f"reported   to {view.details['authority']} ({view.details['reference']})")
    typer.echo(f"decisions  {', '.join(view.decision_ids)}")
    for e in history:
        typer.echo(f"  {e.created_at.isoformat(timespec='seconds')}\t{e.kind}\t{e.actor}\t{e.event_id}")


@incidents_app.command("add-decisions")
def incidents_add_decisions(incident_id: str = IncidentArg, decisions: list[str] = DecisionOpt,
                            actor: str | None = ActorOpt, config: Path | None = ConfigOpt,
                            url: str | None = UrlOpt) -> None:
    """Add decisions found later to an incident that is not closed."""
    from hegui.cases import incidents

    with _errors(), _opened(config, url) as (_cfg, ledger):
        new, _event = incidents.add_decisions(ledger, incident_id, decisions, actor=_actor(actor))
    typer.echo(f"{incident_id}: {len(new)} decision(s) added" + ("" if new else " (all were there already)"))


@incidents_app.command("contain")
def incidents_contain(
    incident_id: str = IncidentArg,
    stopped: str = typer.Option(..., "--stopped", help="What was stopped or removed, and how (停止生成、传输、消除)."),
    actor: str | None = ActorOpt, config: Path | None = ConfigOpt, url: str | None = UrlOpt,
) -> None:
    """Record what was stopped or removed; the incident becomes contained."""
    from hegui.cases import incidents

    with _errors(), _opened(config, url) as (_cfg, ledger):
        event = incidents.record_containment(ledger, incident_id, stopped, actor=_actor(actor))
    typer.echo(f"{incident_id}: contained ({event})")


@incidents_app.command("rectify")
def incidents_rectify(
    incident_id: str = IncidentArg,
    text: str = typer.Option(..., "--text", help="What was done to the model, lexicon or policy (模型优化训练等整改)."),
    actor: str | None = ActorOpt, config: Path | None = ConfigOpt, url: str | None = UrlOpt,
) -> None:
    """Record the rectification; the incident becomes rectified."""
    from hegui.cases import incidents

    with _errors(), _opened(config, url) as (_cfg, ledger):
        event = incidents.record_rectification(ledger, incident_id, text, actor=_actor(actor))
    typer.echo(f"{incident_id}: rectified ({event})")


@incidents_app.command("reported")
def incidents_reported(
    incident_id: str = IncidentArg,
    authority: str = typer.Option(..., "--authority", help="Who it was reported to (e.g. 上海市网信办)."),
    reference: str = typer.Option(..., "--reference", help="The report's reference number."),
    actor: str | None = ActorOpt, config: Path | None = ConfigOpt, url: str | None = UrlOpt,
) -> None:
    """Record the report to the authority; the incident becomes reported."""
    from hegui.cases import incidents

    with _errors(), _opened(config, url) as (_cfg, ledger):
        event = incidents.mark_reported(ledger, incident_id, authority, reference, actor=_actor(actor))
    typer.echo(f"{incident_id}: reported to {authority} ({event})")


@incidents_app.command("close")
def incidents_close(incident_id: str = IncidentArg, actor: str | None = ActorOpt, config: Path | None = ConfigOpt,
                    url: str | None = UrlOpt) -> None:
    """Close an incident that was reported."""
    from hegui.cases import incidents

    with _errors(), _opened(config, url) as (_cfg, ledger):
        event = incidents.close(ledger, incident_id, actor=_actor(actor))
    typer.echo(f"{incident_id}: closed ({event})")


@incidents_app.command("samples")
def incidents_samples(
    incident_id: str = IncidentArg,
    out: Path = typer.Option(..., "--out", "-o", help="The JSONL file to write (replaced whole, or not at all)."),
    actor: str | None = ActorOpt, config: Path | None = ConfigOpt, url: str | None = UrlOpt,
) -> None:
    """Export the incident's decisions as JSONL samples for the next optimisation training, without the
    decisions of people who opted out of training or whose content was erased."""
    from hegui.cases import incidents

    with _errors(), _opened(config, url) as (_cfg, ledger):
        written = incidents.export_samples(ledger, incident_id, out, actor=_actor(actor))
        samples = incidents.get_incident(ledger, incident_id).details["samples"]
    typer.echo(f"{out}: {written} sample(s); left out {samples['skipped_opt_out']} opted out of training, "
               f"{samples['skipped_erased']} erased")


@incidents_app.command("report")
def incidents_report(
    incident_id: str = IncidentArg,
    out: Path = typer.Option(..., "--out", "-o", help="Folder to create with the report (must not exist, or be empty)."),
    formats: str = typer.Option("docx,pdf,json", "--format", "-f",
                                help="Comma-separated formats: docx, pdf, json (the chart is always written)."),
    config: Path | None = ConfigOpt, url: str | None = UrlOpt,
) -> None:
    """Write the authority report (DOCX, PDF, JSON, and the chart as PNG and SVG) into a new folder."""
    from rich.console import Console

    from hegui.cases import report

    wanted = [f.strip().lower() for f in formats.split(",") if f.strip()]
    console = Console(stderr=True)
    with _errors():
        unknown = [f for f in wanted if f not in report.FORMATS]
        if unknown or not wanted:
            raise UserError(f"--format: {', '.join(unknown) or '(none)'} is not one of {', '.join(report.FORMATS)}")
        t0 = time.perf_counter()
        with _opened(config, url) as (cfg, ledger), console.status("reading the incident and drawing the chart…") \
                as status:
            font = cfg.resolve_path(cfg.cases.report_font) if cfg.cases.report_font else None
            facts = report.build_report(ledger, incident_id, cfg.provider, font, timezone=cfg.accounts.timezone)
            status.update(f"writing {', '.join(wanted)} to {out}…")
            files = report.write_report(facts, out, wanted)
    typer.echo(f"{out}: {', '.join(p.name for p in files)} ({len(facts.decisions)} decisions, "
               f"{time.perf_counter() - t0:.1f}s)")


def register(app: typer.Typer) -> None:
    app.add_typer(incidents_app, name="incidents")
