"""``hegui db …`` (schema migrations) and ``hegui ledger …`` (verify the chain, read decisions,
manage accounts and API keys)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from hegui.errors import UserError

if TYPE_CHECKING:
    from hegui.config import HeguiConfig
    from hegui.ledger.store import Ledger

db_app = typer.Typer(help="The ledger database: schema migrations.", no_args_is_help=True)
ledger_app = typer.Typer(
    help="The ledger (system of record): verify the hash chain, read decisions, accounts and API keys.",
    no_args_is_help=True,
)
key_app = typer.Typer(help="API keys the gateway accepts.", no_args_is_help=True)
account_app = typer.Typer(help="Accounts that API keys belong to.", no_args_is_help=True)
ledger_app.add_typer(key_app, name="key")
ledger_app.add_typer(account_app, name="account")

ConfigOpt = typer.Option(None, "--config", "-c", help="hegui.yaml to read `ledger.url` from.")
UrlOpt = typer.Option(
    None, "--url", help="Database URL; overrides the config (sqlite:///… or postgresql+psycopg://…)."
)
JsonOpt = typer.Option(False, "--json", help="Print JSON.")


@contextmanager
def _errors() -> Iterator[None]:
    """User and database errors: one line on stderr, exit 2 (also under typer's CliRunner)."""
    from sqlalchemy.exc import SQLAlchemyError

    from hegui.ledger.errors import LedgerError

    try:
        yield
    except (UserError, LedgerError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except SQLAlchemyError as exc:
        first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [exc.__class__.__name__])[0]
        typer.echo(f"error: database: {first}", err=True)
        raise typer.Exit(2) from None


def default_actor() -> str:
    """Who a CLI change is recorded as when ``--actor`` is not given: ``cli:<login name>``."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name (some containers)
        return "cli"


def open_with_config(config: Path | None, url: str | None, *, create: bool | None) -> tuple[HeguiConfig, Ledger]:
    """The config (``--config``) and its ledger, or the one at ``--url``; ``create=None`` follows
    ``ledger.auto_migrate``."""
    from hegui.config import load_config
    from hegui.ledger.store import Ledger

    cfg = load_config(config)
    if url is not None:
        return cfg, Ledger.open(url, create=bool(create), config=cfg.ledger)
    return cfg, Ledger.from_config(cfg, create=create)


def _open(config: Path | None, url: str | None, *, create: bool) -> Ledger:
    return open_with_config(config, url, create=create)[1]


@db_app.command("upgrade")
def db_upgrade(config: Path | None = ConfigOpt, url: str | None = UrlOpt) -> None:
    """Create the ledger database or migrate it to the newest schema."""
    from hegui.ledger import schema

    with _errors():
        with _open(config, url, create=True) as ledger:
            rev = schema.current_revision(ledger.engine)
            typer.echo(f"ledger at {ledger.url}: schema revision {rev} (head)")


@db_app.command("current")
def db_current(config: Path | None = ConfigOpt, url: str | None = UrlOpt) -> None:
    """Show the ledger's schema revision and the newest one. Exit 1 when it is behind."""
    from hegui.config import load_config
    from hegui.ledger import schema
    from hegui.ledger.store import Ledger

    with _errors():
        cfg = load_config(config)
        # Open without the at-head check, so a database that is behind can still be reported.
        try:
            ledger = (
                Ledger.open(url, create=False, config=cfg.ledger)
                if url
                else Ledger.from_config(cfg, create=False)
            )
        except UserError as exc:
            if "hegui db upgrade" not in str(exc):
                raise
            typer.echo(f"{exc}")
            raise typer.Exit(1) from None
        with ledger:
            rev = schema.current_revision(ledger.engine)
            typer.echo(f"ledger at {ledger.url}: schema revision {rev} (head {schema.head_revision()})")


@ledger_app.command("verify")
def ledger_verify(config: Path | None = ConfigOpt, url: str | None = UrlOpt, as_json: bool = JsonOpt) -> None:
    """Re-check the hash chain: exit 0 when intact, 1 when a row was edited, deleted or inserted,
    2 when the ledger cannot be read."""
    with _errors(), _open(config, url, create=False) as ledger:
        report = ledger.verify()
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    elif report.ok:
        heads = ", ".join(f"{t} head seq {s} {h}" for t, (s, h) in report.heads.items())
        typer.echo(f"ledger intact: {report.rows_checked} rows checked; {heads}")
    else:
        typer.echo(
            f"ledger TAMPERED: {len(report.problems)} problem(s) in {report.rows_checked} rows checked"
        )
        for p in report.problems:
            typer.echo(f"  {p}")
    raise typer.Exit(0 if report.ok else 1)


@ledger_app.command("head")
def ledger_head(config: Path | None = ConfigOpt, url: str | None = UrlOpt, as_json: bool = JsonOpt) -> None:
    """Print each chain's last seq and hash, to keep outside the database (an anchor that also
    exposes rewriting the whole chain)."""
    with _errors(), _open(config, url, create=False) as ledger:
        heads = ledger.chain_heads()
    if as_json:
        typer.echo(json.dumps({t: {"seq": s, "hash": h} for t, (s, h) in heads.items()}))
    else:
        for t, (s, h) in heads.items():
            typer.echo(f"{t}\t{s}\t{h}")


@ledger_app.command("decisions")
def ledger_decisions(
    config: Path | None = ConfigOpt,
    url: str | None = UrlOpt,
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many of the newest rows."),
    request_id: str | None = typer.Option(None, "--request", help="Only rows of this request id."),
    decision_id: str | None = typer.Option(None, "--decision", help="Only rows of this decision id."),
    for_training: bool = typer.Option(False, "--for-training",
                                      help="Leave out the records of people who opted out of training."),
    as_json: bool = JsonOpt,
) -> None:
    """Show the newest decision records."""
    with _errors(), _open(config, url, create=False) as ledger:
        rows = ledger.decisions(limit=limit, request_id=request_id, decision_id=decision_id,
                                for_training=for_training)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in rows], ensure_ascii=False, indent=2))
        return
    for r in rows:
        risks = ",".join(r.risks) or "-"
        typer.echo(
            f"{r.seq}\t{r.created_at.isoformat(timespec='seconds')}\t{r.kind}\t{r.decision_id}\t"
            f"{r.direction}\t{r.scene}\t{r.action}\t{risks}"
        )


@ledger_app.command("prune")
def ledger_prune(
    config: Path | None = ConfigOpt,
    url: str | None = UrlOpt,
    days: int | None = typer.Option(
        None,
        "--days",
        min=1,
        help="Delete records older than this many days (default: ledger.retention_days).",
    ),
    before: datetime | None = typer.Option(
        None,
        "--before",
        formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"],
        help="Delete records created before this UTC date.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be deleted."),
    as_json: bool = JsonOpt,
) -> None:
    """Delete decision records past the retention period, keeping the chain verifiable (the last
    deleted row's hash becomes the chain's anchor). Never younger than ledger.retention_days."""
    if days is not None and before is not None:
        typer.echo("error: give --days or --before, not both", err=True)
        raise typer.Exit(2)
    cutoff = before.replace(tzinfo=UTC) if before is not None else None
    if days is not None:
        cutoff = datetime.now(UTC) - timedelta(days=days)
    with _errors(), _open(config, url, create=False) as ledger:
        result = ledger.prune(cutoff, dry_run=dry_run)
    if as_json:
        typer.echo(json.dumps({**result.to_dict(), "dry_run": dry_run}))
        return
    when = result.before.isoformat(timespec="seconds")
    if not result.rows:
        typer.echo(f"nothing to prune: no records before {when} (chain starts after seq {result.last_seq})")
    elif dry_run:
        typer.echo(
            f"would delete {result.rows} records (seq {result.first_seq}-{result.last_seq}) before {when}"
        )
    else:
        typer.echo(
            f"deleted {result.rows} records (seq {result.first_seq}-{result.last_seq}) before {when}; "
            f"chain anchor seq {result.last_seq} {result.anchor_hash}"
        )


@account_app.command("create")
def account_create(
    name: str = typer.Argument(..., help="Display name of the account."),
    external_id: str | None = typer.Option(
        None, "--external-id", help="Your own user id; hashed when it looks like personal data."
    ),
    config: Path | None = ConfigOpt,
    url: str | None = UrlOpt,
) -> None:
    """Create an account and print its id."""
    with _errors(), _open(config, url, create=True) as ledger:
        typer.echo(ledger.create_account(name, external_id=external_id))


@key_app.command("create")
def key_create(
    account: str = typer.Option(..., "--account", help="Account id the key belongs to."),
    admin: bool = typer.Option(False, "--admin", help="Allow the admin API with this key."),
    name: str = typer.Option("", "--name", help="A label for the key."),
    config: Path | None = ConfigOpt,
    url: str | None = UrlOpt,
) -> None:
    """Create an API key. The key is printed once; only its hash is stored."""
    with _errors(), _open(config, url, create=True) as ledger:
        key_id, plaintext = ledger.create_api_key(account, admin=admin, name=name)
    typer.echo(f"key id: {key_id}")
    typer.echo(f"key:    {plaintext}")
    typer.echo("Store the key now: it cannot be shown again.", err=True)


@key_app.command("revoke")
def key_revoke(
    key_id: str = typer.Argument(..., help="Id of the key (key_…)."),
    config: Path | None = ConfigOpt,
    url: str | None = UrlOpt,
) -> None:
    """Revoke an API key; the gateway refuses it from then on."""
    with _errors(), _open(config, url, create=False) as ledger:
        ledger.revoke_api_key(key_id)
    typer.echo(f"revoked {key_id}")


@key_app.command("list")
def key_list(
    account: str | None = typer.Option(None, "--account", help="Only keys of this account."),
    config: Path | None = ConfigOpt,
    url: str | None = UrlOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List API keys (id, account, display prefix, admin, revoked); never the keys themselves."""
    with _errors(), _open(config, url, create=False) as ledger:
        keys = ledger.api_keys(account)
    if as_json:
        typer.echo(json.dumps([k.__dict__ for k in keys], indent=2))
        return
    for k in keys:
        flags = ",".join(f for f, on in (("admin", k.admin), ("revoked", k.revoked)) if on) or "-"
        typer.echo(f"{k.id}\t{k.account_id}\t{k.prefix}…\t{flags}\t{k.name}")


def register(app: typer.Typer) -> None:
    """Add ``hegui db`` and ``hegui ledger``."""
    app.add_typer(db_app, name="db")
    app.add_typer(ledger_app, name="ledger")
