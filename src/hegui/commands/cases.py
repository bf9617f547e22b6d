"""``hegui cases …``: complaints, reports and personal-information requests by hand — list, show,
open, assign, note, reply, close, reopen, overdue (for cron and alerting), actions and fulfilment.

Every change is the same transaction as through the admin API (:mod:`hegui.cases.store`,
:mod:`hegui.cases.actions`): the new state and its hash-chained event, recorded with the
``--actor`` (default ``cli:<login>``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import typer

from hegui.commands.db import _errors, default_actor, open_with_config
from hegui.errors import UserError

if TYPE_CHECKING:
    from hegui.cases.store import CaseStore, CaseView
    from hegui.config import HeguiConfig
    from hegui.ledger.store import Ledger

cases_app = typer.Typer(
    help="Cases (complaints, reports, personal-information requests): list, show, open, assign, note, reply, "
         "close, reopen, overdue, actions and fulfilment, each step a hash-chained ledger event.",
    no_args_is_help=True,
)

ConfigOpt = typer.Option(None, "--config", "-c", help="hegui.yaml to read `ledger.url` and `cases.*` from.")
UrlOpt = typer.Option(None, "--url", help="Database URL; overrides the config (sqlite:///… or postgresql+psycopg://…).")
JsonOpt = typer.Option(False, "--json", help="Print JSON.")
ActorOpt = typer.Option(None, "--actor", help="Who acts, as recorded in the ledger (default: cli:<your login>).")
CaseArg = typer.Argument(..., help="The case id (cs_…).")

KINDS = ("complaint", "report", "pi_request")


@contextmanager
def _opened(config: Path | None, url: str | None) -> Iterator[tuple[HeguiConfig, Ledger, CaseStore]]:
    from hegui.cases.store import CaseStore

    cfg, ledger = open_with_config(config, url, create=False)
    with ledger:
        yield cfg, ledger, CaseStore(ledger, cfg.cases, cfg.accounts.timezone)


def _choice(option: str, value: str | None, values: tuple[str, ...]) -> None:
    if value is not None and value not in values:
        raise UserError(f"{option}: {value!r} is not one of {', '.join(values)}")


def _listed(case: CaseView, today: Any) -> dict[str, Any]:
    out = case.to_dict(today=today)
    for details in ("notes", "attachments"):  # not read for a list: left out, not shown empty
        out.pop(details, None)
    return out


def _table(found: list[CaseView], today: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None)
    table.add_column("id", no_wrap=True, min_width=19)  # ids are copied from here: never cut
    for name in ("kind", "status", "assignee"):
        table.add_column(name)
    table.add_column("due", no_wrap=True, min_width=10)
    table.add_column("opened", no_wrap=True, min_width=10)
    for c in found:
        due = f"[red]{c.due_on.isoformat()} overdue[/red]" if c.overdue(today) else c.due_on.isoformat()
        what = c.kind + (f"/{c.category or c.pi_action}" if (c.category or c.pi_action) else "")
        table.add_row(c.id, what, c.status, c.assignee or "-", due, c.opened_at.date().isoformat())
    Console(soft_wrap=True).print(table)


@cases_app.command("list")
def cases_list(
    status: str | None = typer.Option(None, "--status", "-s", help="Only cases with this status (open, "
                                                                     "in_progress, replied, closed)."),
    kind: str | None = typer.Option(None, "--kind", "-k", help="Only cases of this kind (complaint, report, "
                                                                 "pi_request)."),
    assignee: str | None = typer.Option(None, "--assignee", "-a", help="Only cases assigned to this person."),
    overdue: bool = typer.Option(False, "--overdue", help="Only open cases past their due date."),
    limit: int = typer.Option(200, "--limit", min=1, max=10_000, help="At most this many cases, oldest due first."),
    config: Path | None = ConfigOpt, url: str | None = UrlOpt, as_json: bool = JsonOpt,
) -> None:
    """List cases, oldest due first: id, kind, status, assignee, due date (overdue ones in red)."""
    from hegui.cases.states import STATUSES

    with _errors():
        _choice("--status", status, STATUSES)
        _choice("--kind", kind, KINDS)
        with _opened(config, url) as (_cfg, _ledger, store):
            today = store.today()
            found = store.list(status=status, kind=kind, assignee=assignee, overdue_on=today if overdue else None,
                               limit=limit)
    if as_json:
        typer.echo(json.dumps([_listed(c, today) for c in found], ensure_ascii=False, indent=2))
        return
    _table(found, today)


@cases_app.command("show")
def cases_show(case_id: str = CaseArg, config: Path | None = ConfigOpt, url: str | None = UrlOpt,
               as_json: bool = JsonOpt) -> None:
    """Show one case: what was asked, its status, due date, reply, internal notes, attachments and history."""
    with _errors(), _opened(config, url) as (cfg, _ledger, store):
        case = store.get(case_id)
        history = store.history(case_id, limit=None)
        today = store.today()
        zone = ZoneInfo(cfg.accounts.timezone)
    if as_json:
        typer.echo(json.dumps({**case.to_dict(today=today), "events": [e.to_dict() for e in history]},
                              ensure_ascii=False, indent=2))
        return
    what = case.category or case.pi_action or "-"
    typer.echo(f"case      {case.id} ({case.kind}: {what}, from {case.source})")
    late = typer.style(" overdue", fg="red") if case.overdue(today) else ""
    typer.echo(f"status    {case.status}, due {case.due_on.isoformat()}{late}, assignee {case.assignee or '-'}")
    typer.echo(f"account   {case.account_id or '-'}")
    typer.echo(f"reference {case.reference or '-'}")
    typer.echo(f"contact   {case.contact or '-'}")
    typer.echo(f"asked     {case.description}")
    typer.echo(f"reply     {case.reply or '-'}")
    typer.echo(f"notes     {len(case.notes)}")
    for n in case.notes:
        typer.echo(f"  {_local(n['created_at'], zone)}  {n['author']}: {n['text']}")
    typer.echo(f"files     {len(case.attachments)}")
    for a in case.attachments:
        typer.echo(f"  {a['id']}  {a['media_type']}  {a['size']} bytes  {a['original_name'] or '-'}")
    typer.echo(f"history   {len(history)} event(s)")
    for e in history:
        d = e.data
        step = f"  {d.get('from')} → {d.get('to')}" if "to" in d else ""
        typer.echo(f"  {_local(e.created_at, zone)}  {e.kind}  by {e.actor}{step}")


def _local(value: str | datetime, zone: ZoneInfo) -> str:
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.astimezone(zone).isoformat(timespec="minutes")


@cases_app.command("open")
def cases_open(
    kind: str = typer.Option(..., "--kind", "-k", help="complaint, report or pi_request."),
    description: str = typer.Option(..., "--description", "-d", help="What the person says."),
    category: str | None = typer.Option(None, "--category", help="Complaints and reports: illegal, privacy, "
                                                                   "reputation, ip or service."),
    pi_action: str | None = typer.Option(None, "--pi-action", help="PI requests: access, copy, correct, "
                                                                     "supplement, delete or withdraw_consent."),
    reference: str = typer.Option("", "--reference", help="A link to the content, or a decision id."),
    contact: str | None = typer.Option(None, "--contact", help="How to reach the person."),
    account_id: str | None = typer.Option(None, "--account", help="The account the case is about or from "
                                                                    "(required for a PI request)."),
    actor: str | None = ActorOpt, config: Path | None = ConfigOpt, url: str | None = UrlOpt,
) -> None:
    """Open a case (a complaint by phone or letter, say); prints its id and the code to give the person."""
    with _errors():
        _choice("--kind", kind, KINDS)
        with _opened(config, url) as (_cfg, ledger, store):
            if account_id is not None and ledger.get_account(account_id) is None:
                raise UserError(f"--account: no account {account_id}")
            case_id, code = store.open_case(kind, description=description, category=category, pi_action=pi_action,
                                            reference=reference, contact=contact, account_id=account_id,
                                            source="cli", actor=actor or default_actor())
            due = store.get(case_id, with_details=False).due_on
    typer.echo(f"{case_id}: opened, due {due.isoformat()}; the person's code: {code}")


def _step(case_id: str, config: Path | None, url: str | None, what: str, fn: Any) -> None:
    with _errors(), _opened(config, url) as (_cfg, _ledger, store):
        fn(store)
        case = store.get(case_id, with_details=False)
    typer.echo(f"{case_id}: {what} (status {case.status})")


@cases_app.command("assign")
def cases_assign(case_id: str = CaseArg, assignee: str = typer.Argument(..., help="Who handles the case."),
                 actor: str | None = ActorOpt, config: Path | None = ConfigOpt, url: str | None = UrlOpt) -> None:
    """Assign the case to someone (an open case becomes in_progress)."""
    _step(case_id, config, url, f"assigned to {assignee}",
          lambda s: s.assign(case_id, assignee, actor=actor or default_actor()))


@cases_app.command("note")
def cases_note(case_id: str = CaseArg, text: str = typer.Argument(..., help="The note (never shown to the person)."),
               actor: str | None = ActorOpt, config: Path | None = ConfigOpt, url: str | None = UrlOpt) -> None:
    """Add an internal note to the case."""
    _step(case_id, config, url, "note added", lambda s: s.note(case_id, text, actor=actor or default_actor()))


@cases_app.command("reply")
def cases_reply(
    case_id: str = CaseArg,
    text: str | None = typer.Argument(None, help="The reply the person sees on the status page."),
    file: Path | None = typer.Option(None, "--file", "-f", help="Read the reply from this UTF-8 file instead."),
    actor: str | None = ActorOpt, config: Path | None = ConfigOpt, url: str | None = UrlOpt,
) -> None:
    """Write the reply the person sees (the case becomes replied)."""
    with _errors():
        if (text is None) == (file is None):
            raise UserError("give the reply as TEXT or with --file, not both")
        if file is not None:
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UserError(f"--file: cannot read {file}: {exc.__class__.__name__}") from None
    body = text or ""
    _step(case_id, config, url, "replied", lambda s: s.reply(case_id, body, actor=actor or default_actor()))


@cases_app.command("close")
def cases_close(case_id: str = CaseArg,
                reason: str = typer.Option("", "--reason", "-r", help="Why; required without a reply "
                                                                      "(it becomes the reply)."),
                actor: str | None = ActorOpt, config: Path | None = ConfigOpt, url: str | None = UrlOpt) -> None:
    """Close the case."""
    _step(case_id, config, url, "closed", lambda s: s.close(case_id, actor=actor or default_actor(), reason=reason))


@cases_app.command("reopen")
def cases_reopen(case_id: str = CaseArg,
                 reason: str = typer.Option(..., "--reason", "-r", help="Why the case is reopened (required)."),
                 actor: str | None = ActorOpt, config: Path | None = ConfigOpt, url: str | None = UrlOpt) -> None:
    """Reopen a replied or closed case (it becomes in_progress)."""
    _step(case_id, config, url, "reopened",
          lambda s: s.reopen(case_id, actor=actor or default_actor(), reason=reason))


@cases_app.command("overdue")
def cases_overdue(config: Path | None = ConfigOpt, url: str | None = UrlOpt, as_json: bool = JsonOpt) -> None:
    """Print the open cases past their due date; exit 1 when there is any (for cron and alerting), 0 when none."""
    with _errors(), _opened(config, url) as (_cfg, _ledger, store):
        today = store.today()
        found = store.list(overdue_on=today, limit=10_000)
    if as_json:
        typer.echo(json.dumps([_listed(c, today) for c in found], ensure_ascii=False, indent=2))
    elif found:
        _table(found, today)
    else:
        typer.echo("no overdue cases")
    if found:
        raise typer.Exit(1)


@cases_app.command("action")
def cases_action(
    case_id: str = CaseArg,
    action: str = typer.Argument(..., help="enforce, lexicon, allow, takedown or incident."),
    step: str | None = typer.Option(None, "--step", help="enforce: warn, restrict, suspend or terminate."),
    account_id: str | None = typer.Option(None, "--account", help="enforce: the account (default: the case's)."),
    days: float | None = typer.Option(None, "--days", help="enforce --step suspend: length in days."),
    reason: str | None = typer.Option(None, "--reason", "-r", help="enforce, takedown: why."),
    text: str | None = typer.Option(None, "--text", help="lexicon, allow: the phrase."),
    risk: str | None = typer.Option(None, "--risk", help="lexicon: the risk code (e.g. A.1.3)."),
    note: str = typer.Option("", "--note", help="lexicon, allow: why the entry was added."),
    target: str | None = typer.Option(None, "--target", help="takedown: the content (URL or content id)."),
    title: str | None = typer.Option(None, "--title", help="incident: its title."),
    summary: str = typer.Option("", "--summary", help="incident: what happened."),
    actor: str | None = ActorOpt, config: Path | None = ConfigOpt, url: str | None = UrlOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Act on the case (recorded on it): enforce on the account, add a lexicon or allow-list entry, request a
    takedown from the provider's system (exit 1 when the webhook failed), open an incident."""
    from hegui.accounts.store import AccountStore
    from hegui.cases import actions

    who = actor or default_actor()

    def need(option: str, value: Any) -> Any:
        if value is None:
            raise UserError(f"{option} is required for the {action} action")
        return value

    with _errors():
        _choice("ACTION", action, actions.ACTIONS)
        with _opened(config, url) as (cfg, ledger, store):
            done: dict[str, Any]
            if action == "enforce":
                done = actions.enforce(store, AccountStore(ledger), case_id, step=need("--step", step),
                                       reason=need("--reason", reason), actor=who, now=datetime.now(UTC),
                                       zone=ZoneInfo(cfg.accounts.timezone), account_id=account_id, days=days)
                said = f"{done['account_id']} is {done['standing']}"
            elif action in ("lexicon", "allow"):
                done = actions.add_list_entry(store, case_id, list_name="block" if action == "lexicon" else "allow",
                                              text=need("--text", text),
                                              risk=need("--risk", risk) if action == "lexicon" else None,
                                              note=note, actor=who)
                said = f"entry {done['entry_id']} added"
            elif action == "takedown":
                done = asyncio.run(actions.takedown(store, cfg.cases.takedown, case_id, target=need("--target", target),
                                                    reason=need("--reason", reason), actor=who))
                said = {"sent": f"takedown sent ({done['http_status']})",
                        "not_configured": "takedown recorded, not sent: cases.takedown.webhook_url is not set",
                        }.get(done["status"], f"takedown failed: {done['error']}")
            else:
                done = actions.incident(store, case_id, title=need("--title", title), summary=summary, actor=who)
                said = f"incident {done['incident_id']} opened"
    if as_json:
        typer.echo(json.dumps(done, ensure_ascii=False, indent=2))
    else:
        typer.echo(f"{case_id}: {said} (event {done['case_event']})")
    if done.get("status") == "failed":
        raise typer.Exit(1)


@cases_app.command("fulfil")
def cases_fulfil(
    case_id: str = CaseArg,
    out: Path | None = typer.Option(None, "--out", "-o", help="access/copy: where to write the ZIP "
                                                              "(default hegui-<case>.zip)."),
    reply: str | None = typer.Option(None, "--reply", help="delete: the reply sent after erasing "
                                                           "(default: a standard one)."),
    actor: str | None = ActorOpt, config: Path | None = ConfigOpt, url: str | None = UrlOpt,
) -> None:
    """Fulfil a personal-information request: access/copy write the ZIP of the person's data, delete erases
    it and replies, withdraw_consent leaves the person's records out of training."""
    from hegui.accounts.store import AccountStore
    from hegui.cases import actions

    who = actor or default_actor()
    with _errors(), _opened(config, url) as (cfg, ledger, store):
        case = actions.pi_case(store, case_id)
        if case.pi_action in ("access", "copy"):
            target = out or Path(f"hegui-{case.id}.zip")
            partial = target.with_name(target.name + ".part")
            blob = actions.export_person(store, case, actor=who)
            try:  # written aside, then renamed: a failed write leaves no half ZIP under the name asked for
                partial.write_bytes(blob)
                partial.replace(target)
            except OSError as exc:
                partial.unlink(missing_ok=True)
                raise UserError(f"--out: cannot write {target}: {exc.strerror or exc}") from None
            said = f"{len(blob)} bytes written to {target}"
        elif case.pi_action == "delete":
            actions.erase_person(store, case, actor=who, reply=reply or actions.DEFAULT_ERASE_REPLY,
                                 attachments_dir=cfg.resolve_path(cfg.cases.attachments_dir),
                                 vault=cfg.pii.open_vault(cfg.base_dir))
            said = "erased and replied"
        else:
            actions.withdraw_consent(store, AccountStore(ledger), case, actor=who)
            said = f"training opt-out set on {case.account_id}"
    typer.echo(f"{case_id}: {said}")


def register(app: typer.Typer) -> None:
    app.add_typer(cases_app, name="cases")
