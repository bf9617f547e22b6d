"""``hegui staff …``: the console's staff accounts (create, list, disable, enrol a TOTP second factor).

Each change is an event on the ledger's chain with the ``--actor`` (default ``cli:<login>``), the
same as through the console's staff page. Passwords are read with hidden input (twice) or, for
scripts, from standard input (``--password-stdin``); never from an argument, which other users of the
machine can see in the process list.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from hegui.commands.db import _errors, default_actor, open_with_config
from hegui.errors import UserError

if TYPE_CHECKING:
    from hegui.web.staff import StaffStore

staff_app = typer.Typer(
    help="Staff of the review console (/console): create with a role (viewer, reviewer, admin), list, "
         "disable (ends their sessions), enrol a TOTP second factor.",
    no_args_is_help=True,
)

ConfigOpt = typer.Option(None, "--config", "-c", help="hegui.yaml to read `ledger.url` and `console.*` from.")
UrlOpt = typer.Option(None, "--url", help="Database URL; overrides the config (sqlite:///… or postgresql+psycopg://…).")
ActorOpt = typer.Option(None, "--actor", help="Who acts, as recorded in the ledger (default: cli:<your login>).")
UsernameArg = typer.Argument(..., help="The staff member's login name (2–64 of a-z 0-9 . _ -).")


@contextmanager
def _store(config: Path | None, url: str | None) -> Iterator[StaffStore]:
    from hegui.web.staff import StaffStore

    cfg, ledger = open_with_config(config, url, create=None)
    with ledger:
        yield StaffStore(ledger, cfg.console)


def _interactive() -> bool:
    return sys.stdin.isatty()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        lines = sys.stdin.read().splitlines()
        if not lines or not lines[0]:
            raise UserError("--password-stdin: standard input is empty (give the password on its first line)")
        return lines[0]
    if not _interactive():
        raise UserError("no terminal to ask for the password: pipe it in with --password-stdin")
    first = getpass.getpass("password: ")
    if getpass.getpass("password again: ") != first:
        raise UserError("the two passwords differ")
    return first


@staff_app.command("create")
def staff_create(
    username: str = UsernameArg,
    role: str = typer.Option(..., "--role", "-r", help="viewer (reads), reviewer (works the queue and cases), "
                                                       "or admin (lexicon, policy, staff)."),
    display_name: str = typer.Option("", "--display-name", "-n", help="The name shown in the console."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the password from the first line of standard input "
                                             "instead of asking twice with hidden input."),
    config: Path | None = ConfigOpt,
    url: str | None = UrlOpt,
    actor: str | None = ActorOpt,
) -> None:
    """Create a staff member who logs in at /console/login (password at least 10 characters)."""
    with _errors():
        password = _read_password(password_stdin)
        with _store(config, url) as store:
            staff_id = store.create(username, password, role, display_name=display_name,
                                    actor=actor or default_actor())
        typer.echo(f"created {username} ({role}) {staff_id}")


@staff_app.command("list")
def staff_list(
    as_json: bool = typer.Option(False, "--json", help="Print JSON (one object per staff member)."),
    config: Path | None = ConfigOpt,
    url: str | None = UrlOpt,
) -> None:
    """List staff members: role, second factor, disabled or locked, last login."""
    with _errors():
        with _store(config, url) as store:
            rows = store.list()
        if as_json:
            typer.echo(json.dumps([r.to_dict() for r in rows], ensure_ascii=False, indent=2))
            return
        if not rows:
            typer.echo("no staff members (create one with `hegui staff create NAME --role admin`)")
            return
        width = max(len(r.username) for r in rows)
        for r in rows:
            state = "disabled" if r.disabled else (f"locked until {r.locked_until:%Y-%m-%d %H:%M}"
                                                   if r.locked_until else "active")
            last = f"{r.last_login_at:%Y-%m-%d %H:%M}" if r.last_login_at else "-"
            typer.echo(f"{r.username:<{width}}  {r.role:<8}  totp={'on ' if r.totp else 'off'}  "
                       f"{state:<8}  last login {last}  {r.display_name}".rstrip())


@staff_app.command("disable")
def staff_disable(username: str = UsernameArg, config: Path | None = ConfigOpt, url: str | None = UrlOpt,
                  actor: str | None = ActorOpt) -> None:
    """Disable a staff member: they can no longer log in, and their open sessions end now."""
    with _errors():
        with _store(config, url) as store:
            store.disable(username, actor=actor or default_actor())
        typer.echo(f"disabled {username}")


@staff_app.command("totp")
def staff_totp(username: str = UsernameArg, config: Path | None = ConfigOpt, url: str | None = UrlOpt,
               actor: str | None = ActorOpt) -> None:
    """Give a staff member a new TOTP secret (replacing any old one) and print it once with its
    otpauth:// URI; from their next login on they must give the 6-digit code."""
    with _errors():
        with _store(config, url) as store:
            secret, uri = store.enable_totp(username, actor=actor or default_actor())
        typer.echo(f"secret: {secret}")
        typer.echo(f"uri:    {uri}")
        typer.echo("shown once: add it to the authenticator app now", err=True)


def register(app: typer.Typer) -> None:
    """Add ``hegui staff``."""
    app.add_typer(staff_app, name="staff")
