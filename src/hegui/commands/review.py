"""``hegui review samples``: the samples the console's review queue produced, for the next training.

Confirming a flagged or refused decision makes a *rectification* sample (content the model should
not produce); clearing one makes a *false-positive* sample (content the detectors should let through).
Both are ``review.*`` events on the ledger's chain; this writes them out as JSONL, leaving out the
decisions of people who opted out of training and decisions erased on request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from hegui.commands.db import _errors, open_with_config

review_app = typer.Typer(help="The review queue's outputs: rectification and false-positive samples.",
                         no_args_is_help=True)


@review_app.command("samples")
def samples(
    kind: str = typer.Option(..., "--kind", help="rectification (confirmed) or false_positive (cleared)."),
    out: Path = typer.Option(..., "--out", "-o", dir_okay=False, help="JSONL file to write (whole or not at all)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="hegui.yaml to read `ledger.url` from."),
    url: str | None = typer.Option(None, "--url", help="Database URL; overrides the config."),
) -> None:
    """Write the review samples of one kind as JSONL (one decision a line: excerpt, risks, reviewer)."""
    from hegui.errors import UserError
    from hegui.web.console.samples import export_samples

    if kind not in ("rectification", "false_positive"):
        raise UserError(f"--kind {kind!r}: rectification or false_positive")
    chosen: Literal["rectification", "false_positive"] = "rectification" if kind == "rectification" else "false_positive"
    with _errors():
        _, ledger = open_with_config(config, url, create=False)
        with ledger:
            n = export_samples(ledger, chosen, out)
    typer.echo(f"{n} {kind} samples written to {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")
