"""The ``hegui`` command. Each command group lives in :mod:`hegui.commands`; this module wires them
up and turns user errors into one line on stderr and exit code 2 (never a traceback)."""

from __future__ import annotations

import sys

import typer

from hegui.commands import (
    accounts,
    annotation,
    assess,
    bank,
    cases,
    classifier,
    corpus,
    db,
    filing,
    incidents,
    label,
    lexicon,
    moderation,
    review,
    serve,
    staff,
)
from hegui.errors import UserError

app = typer.Typer(
    name="hegui",
    help="合规 hegui: the compliance layer for generative AI services in China.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root() -> None:
    """合规 hegui: moderation, labels, records and filing for generative AI services in China."""


for module in (moderation, lexicon, serve, db, label, classifier, accounts, cases, incidents, staff, review,
               bank, assess, annotation, filing, corpus):
    module.register(app)


def main() -> None:
    try:
        app(standalone_mode=True)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
