"""``hegui accounts …`` (the enforcement ladder by hand: list, show, warn, restrict, suspend, restore,
terminate), ``hegui appeals …`` (file, list, decide) and ``hegui agreements …`` (publish the service
agreement and privacy policy named in ``accounts.agreements``, list what is published).

Every change is the same transaction as through the admin API (:mod:`hegui.accounts.staff`): the
new state and its hash-chained event, recorded with the ``--actor`` (default ``cli:<login>``).
Running gateways notice within ``accounts.sync_seconds``.
"""

from __future__ import annotations

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
    from hegui.accounts.store import AccountStore
    from hegui.config import HeguiConfig
    from hegui.ledger.store import Ledger

accounts_app = typer.Typer(
    help="Accounts and the enforcement ladder (good → warned → restricted → suspended → terminated): "
         "list, show, and staff actions with a reason, each a hash-chained ledger event.",
    no_args_is_help=True,
)
appeals_app = typer.Typer(help="Appeals against a standing: file one for a person, list, decide (restore or uphold).",
                          no_args_is_help=True)
agreements_app = typer.Typer(help="The service agreement and privacy policy: publish the versions named in "
                                  "accounts.agreements, list what is published.", no_args_is_help=True)

ConfigOpt = typer.Option(None, "--config", "-c", help="hegui.yaml to read `ledger.url` and `accounts.*` from.")
UrlOpt = typer.Option(None, "--url", help="Database URL; overrides the config (sqlite:///… or postgresql+psycopg://…).")
JsonOpt = typer.Option(False, "--json", help="Print JSON.")
ReasonOpt = typer.Option(..., "--reason", "-r", help="Why (required; recorded with the event and shown to the person).")
EvidenceOpt = typer.Option(None, "--evidence", "-e", help="A decision id that justifies the step. Repeatable.")
ActorOpt = typer.Option(None, "--actor", help="Who acts, as recorded in the ledger (default: cli:<your login>).")
AccountArg = typer.Argument(..., help="The account id (acc_…).")


@contextmanager
def _opened(config: Path | None, url: str | None, *, create: bool | None = False
            ) -> Iterator[tuple[HeguiConfig, Ledger, AccountStore]]:
    from hegui.accounts.store import AccountStore

    cfg, ledger = open_with_config(config, url, create=create)
    with ledger:
        yield cfg, ledger, AccountStore(ledger)


def _local(value: str | datetime | None, zone: ZoneInfo) -> str:
    if value is None:
        return "-"
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.astimezone(zone).isoformat(timespec="minutes")


# -- accounts --------------------------------------------------------------------------------------

@accounts_app.command("list")
def accounts_list(
    standing: str | None = typer.Option(None, "--standing", "-s",
                                        help="Only accounts recorded with this standing (good, warned, "
                                             "restricted, suspended, terminated)."),
    config: Path | None = ConfigOpt, url: str | None = UrlOpt, as_json: bool = JsonOpt,
) -> None:
    """List accounts: id, kind, standing in effect (with the end of a suspension), masked phone."""
    from hegui.accounts.config import LADDER

    with _errors():
        if standing is not None and standing not in LADDER:
            raise UserError(f"--standing: {standing!r} is not one of {', '.join(LADDER)}")
        with _opened(config, url) as (cfg, _ledger, store):
            profiles = store.profiles(standing=standing)
            zone = ZoneInfo(cfg.accounts.timezone)
    now = datetime.now(UTC)
    if as_json:
        typer.echo(json.dumps([{**p.to_dict(), "standing_now": p.standing_at(now)} for p in profiles],
                              ensure_ascii=False, indent=2))
        return
    for p in profiles:
        until = f" until {_local(p.standing_until, zone)}" if p.standing == "suspended" else ""
        typer.echo(f"{p.account_id}\t{p.kind}\t{p.standing_at(now)}{until}\t{p.phone_masked or '-'}")


@accounts_app.command("show")
def accounts_show(account_id: str = AccountArg, config: Path | None = ConfigOpt, url: str | None = UrlOpt,
                  as_json: bool = JsonOpt) -> None:
    """Show one account: profile (masked phone), standing, its history of events and its appeals."""
    from hegui.ledger.events import events

    with _errors(), _opened(config, url) as (cfg, ledger, store):
        profile = store.profile(account_id)
        history = events(ledger, account_id=account_id, limit=None)
        appeals = store.appeals(account_id=account_id)
        zone = ZoneInfo(cfg.accounts.timezone)
    now = datetime.now(UTC)
    if as_json:
        typer.echo(json.dumps({"account": {**profile.to_dict(), "standing_now": profile.standing_at(now)},
                               "events": [e.to_dict() for e in history], "appeals": appeals},
                              ensure_ascii=False, indent=2))
        return
    p = profile
    typer.echo(f"account   {p.account_id} ({p.kind}{', verified' if p.verified else ''})")
    typer.echo(f"phone     {p.phone_masked or '-'}")
    until = f" until {_local(p.standing_until, zone)}" if p.standing == "suspended" else ""
    effective = p.standing_at(now)
    shown = effective if effective == p.standing else f"{effective} (suspension ended; recorded {p.standing})"
    typer.echo(f"standing  {shown}{until}" + (f" — {p.standing_reason}" if p.standing_reason else ""))
    if p.age_band or p.minor:
        typer.echo(f"age band  {p.age_band or '-'}{', minor mode' if p.minor else ''}")
    accepted = ", ".join(f"{k} {v}" for k, v in sorted(p.accepted.items())) or "-"
    typer.echo(f"accepted  {accepted}")
    typer.echo(f"history   {len(history)} event(s)")
    for e in history:
        d = e.data
        step = f"  {d.get('from')} → {d.get('to')}" if "to" in d else ""
        why = f"  {d['reason']}" if d.get("reason") else ""
        evidence = f"  evidence: {', '.join(d['evidence'])}" if d.get("evidence") else ""
        typer.echo(f"  {_local(e.created_at, zone)}  {e.kind}  by {e.actor}{step}{why}{evidence}")
    typer.echo(f"appeals   {len(appeals)}")
    for a in appeals:
        decided = f"  decided {_local(a['decided_at'], zone)} by {a['decided_by']}: {a['decision_reason']}" \
            if a["decided_at"] else ""
        typer.echo(f"  {a['id']}  {a['status']}  filed {_local(a['created_at'], zone)}: {a['reason']}{decided}")


def _act(action: str, account_id: str, reason: str, evidence: list[str] | None, actor: str | None,
         config: Path | None, url: str | None, *, until: str | None = None, days: float | None = None) -> None:
    from hegui.accounts import staff

    with _errors(), _opened(config, url) as (cfg, _ledger, store):
        zone = ZoneInfo(cfg.accounts.timezone)
        done = staff.take_action(store, account_id, action, reason=reason, actor=actor or default_actor(),
                                 now=datetime.now(UTC), zone=zone, until=until, days=days,
                                 evidence=evidence or [])
    until_text = f" until {_local(done['standing_until'], zone)}" if done["standing_until"] else ""
    typer.echo(f"{account_id}: {done['standing']}{until_text} (event {done['event_id']})")


@accounts_app.command("warn")
def accounts_warn(account_id: str = AccountArg, reason: str = ReasonOpt, evidence: list[str] | None = EvidenceOpt,
                  actor: str | None = ActorOpt, config: Path | None = ConfigOpt, url: str | None = UrlOpt) -> None:
    """Warn the account: it is served, with a warning notice on every response."""
    _act("warn", account_id, reason, evidence, actor, config, url)


@accounts_app.command("restrict")
def accounts_restrict(account_id: str = AccountArg, reason: str = ReasonOpt,
                      evidence: list[str] | None = EvidenceOpt, actor: str | None = ActorOpt,
                      config: Path | None = ConfigOpt, url: str | None = UrlOpt) -> None:
    """Restrict the account: it is served under the `restricted` rate limits."""
    _act("restrict", account_id, reason, evidence, actor, config, url)


@accounts_app.command("suspend")
def accounts_suspend(
    account_id: str = AccountArg, reason: str = ReasonOpt,
    until: str | None = typer.Option(None, "--until",
                                     help="End of the suspension: ISO date or date-time; without an offset "
                                          "in accounts.timezone (2026-12-31, 2026-12-31T18:00+08:00)."),
    days: float | None = typer.Option(None, "--days", help="Length of the suspension in days (instead of --until)."),
    evidence: list[str] | None = EvidenceOpt, actor: str | None = ActorOpt,
    config: Path | None = ConfigOpt, url: str | None = UrlOpt,
) -> None:
    """Suspend the account until a time (--until) or for a number of days (--days): every request is
    refused with 403 saying until when and how to appeal. Afterwards it reads as restricted."""
    _act("suspend", account_id, reason, evidence, actor, config, url, until=until, days=days)


@accounts_app.command("restore")
def accounts_restore(account_id: str = AccountArg, reason: str = ReasonOpt,
                     evidence: list[str] | None = EvidenceOpt, actor: str | None = ActorOpt,
                     config: Path | None = ConfigOpt, url: str | None = UrlOpt) -> None:
    """Restore the account to good standing (recorded as ladder.restored; refusals count afresh)."""
    _act("restore", account_id, reason, evidence, actor, config, url)


@accounts_app.command("terminate")
def accounts_terminate(account_id: str = AccountArg, reason: str = ReasonOpt,
                       evidence: list[str] | None = EvidenceOpt, actor: str | None = ActorOpt,
                       config: Path | None = ConfigOpt, url: str | None = UrlOpt) -> None:
    """Terminate the account: every request is refused; only a restoration undoes it."""
    _act("terminate", account_id, reason, evidence, actor, config, url)


# -- appeals ---------------------------------------------------------------------------------------

def _masked(cfg: HeguiConfig, text: str) -> str:
    """``text`` with personal information masked, as decision excerpts are (fails closed)."""
    from hegui.moderation import Moderator

    try:
        verdict = Moderator.from_config(cfg).check(text, direction="input", scene=cfg.gateway.default_scene)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"cannot check the appeal's text for personal information ({exc.__class__.__name__}); "
                        "nothing was filed") from None
    return verdict.redacted or text


@appeals_app.command("file")
def appeals_file(
    account_id: str = AccountArg,
    reason: str = typer.Option(..., "--reason", "-r", help="What the person says (as they sent it by mail, "
                                                          "phone or the service channel)."),
    config: Path | None = ConfigOpt, url: str | None = UrlOpt,
) -> None:
    """File an appeal on a person's behalf (people file their own through POST /v1/hegui/appeals). As
    there, the reason is stored with personal information masked by the config's moderator."""
    with _errors():
        if not reason.strip():
            raise UserError("--reason: the appeal needs the person's reason")
        with _opened(config, url) as (cfg, _ledger, store):
            store.profile(account_id)
            appeal_id = store.file_appeal(account_id, _masked(cfg, reason.strip()))
    typer.echo(f"appeal {appeal_id} filed for {account_id}")


@appeals_app.command("list")
def appeals_list(
    status: str | None = typer.Option(None, "--status", help="Only appeals with this status: open, restored, upheld."),
    account_id: str | None = typer.Option(None, "--account", help="Only appeals of this account."),
    config: Path | None = ConfigOpt, url: str | None = UrlOpt, as_json: bool = JsonOpt,
) -> None:
    """List appeals, oldest first: id, account, status, when filed, reason."""
    with _errors():
        if status is not None and status not in ("open", "restored", "upheld"):
            raise UserError(f"--status: {status!r} is not one of open, restored, upheld")
        with _opened(config, url) as (cfg, _ledger, store):
            appeals = store.appeals(account_id=account_id, status=status)
            zone = ZoneInfo(cfg.accounts.timezone)
    if as_json:
        typer.echo(json.dumps(appeals, ensure_ascii=False, indent=2))
        return
    for a in appeals:
        typer.echo(f"{a['id']}\t{a['account_id']}\t{a['status']}\t{_local(a['created_at'], zone)}\t"
                   f"{' '.join(a['reason'].split())[:120]}")


@appeals_app.command("decide")
def appeals_decide(
    appeal_id: str = typer.Argument(..., help="The appeal id (ap_…)."),
    restore: bool | None = typer.Option(None, "--restore/--uphold",
                                        help="--restore puts the account back in good standing; --uphold keeps it."),
    reason: str = typer.Option(..., "--reason", "-r", help="The decision's reason (recorded and told to the person)."),
    actor: str | None = ActorOpt, config: Path | None = ConfigOpt, url: str | None = UrlOpt,
) -> None:
    """Decide an open appeal: restore the account or uphold its standing, with a reason."""
    from hegui.accounts import staff

    with _errors():
        if restore is None:
            raise UserError("give --restore or --uphold")
        with _opened(config, url) as (_cfg, _ledger, store):
            done = staff.decide_appeal(store, appeal_id, restore=restore, reason=reason,
                                       actor=actor or default_actor())
    typer.echo(f"appeal {appeal_id}: {done['status']}; account {done['account_id']} is {done['standing']}")


# -- agreements ------------------------------------------------------------------------------------

LABEL_WORDS = ("标识", "label")
"""A privacy policy must say how generated content is labelled (Labeling Measures Art. 8)."""


def _read_documents(cfg: HeguiConfig) -> list[tuple[Any, Path, str]]:
    docs = []
    for doc in cfg.accounts.agreements:
        path = cfg.resolve_path(doc.path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"{path}: {doc.kind} agreement {doc.version}: file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: {doc.kind} agreement {doc.version}: cannot read it as UTF-8 text "
                            f"({exc.__class__.__name__})") from None
        if not text.strip():
            raise UserError(f"{path}: {doc.kind} agreement {doc.version}: the file is empty")
        if doc.kind == "privacy" and not any(w in text.lower() for w in LABEL_WORDS):
            raise UserError(f"{path}: the privacy policy must say how generated content is labelled "
                            "(mention 标识 or label; Labeling Measures Art. 8)")
        docs.append((doc, path, text))
    return docs


@agreements_app.command("publish")
def agreements_publish(config: Path = typer.Option(..., "--config", "-c", help="hegui.yaml whose "
                                                   "accounts.agreements to publish (files relative to it)."),
                       url: str | None = UrlOpt, actor: str | None = ActorOpt) -> None:
    """Publish every version listed in accounts.agreements that is not published yet (idempotent). A
    privacy policy must mention how generated content is labelled; a changed text under a version
    already published is refused (publish it as a new version)."""
    with _errors():
        from hegui.config import load_config

        cfg = load_config(config)
        if not cfg.accounts.agreements:
            raise UserError(f"{config}: accounts.agreements lists no documents to publish")
        docs = _read_documents(cfg)  # every file checked before anything is published
        with _opened(config, url, create=None) as (_cfg, _ledger, store):
            published = 0
            for doc, path, text in docs:
                try:
                    new = store.publish_agreement(doc.kind, doc.version, doc.effective.isoformat(), text,
                                                  actor=actor or default_actor())
                except UserError as exc:
                    raise UserError(f"{path}: {exc}") from None
                if new:
                    published += 1
                    typer.echo(f"published {doc.kind} {doc.version} (effective {doc.effective}) from {path}")
                else:
                    typer.echo(f"already published: {doc.kind} {doc.version}")
    typer.echo(f"{published} new version(s) published" if published else "nothing new to publish")


@agreements_app.command("list")
def agreements_list(config: Path | None = ConfigOpt, url: str | None = UrlOpt, as_json: bool = JsonOpt) -> None:
    """List the published versions: kind, version, effective date, text digest, when and by whom."""
    with _errors(), _opened(config, url) as (_cfg, _ledger, store):
        rows = [{k: v for k, v in r.items() if k != "text"} for r in store.published_agreements()]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['kind']}\t{r['version']}\teffective {r['effective']}\tsha256 {r['sha256'][:16]}…\t"
                   f"published {r['published_at'][:19]} by {r['published_by']}")


def register(app: typer.Typer) -> None:
    """Add ``hegui accounts``, ``hegui appeals`` and ``hegui agreements``."""
    app.add_typer(accounts_app, name="accounts")
    app.add_typer(appeals_app, name="appeals")
    app.add_typer(agreements_app, name="agreements")
