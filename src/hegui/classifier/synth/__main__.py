"""``python -m hegui.classifier.synth --out FILE --per-genre N --seed S [--style heldout]``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hegui.classifier.synth import GENRES, STYLES, generate_all, write_jsonl

app = typer.Typer(add_completion=False)


@app.command()
def main(
    out: Annotated[Path, typer.Option("--out", help="JSONL file to write (replaced atomically).")],
    per_genre: Annotated[int, typer.Option("--per-genre", min=1, help="Rows per genre.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same file.")] = 0,
    style: Annotated[
        str, typer.Option("--style", help="train, or heldout: the disjoint half of templates and vocabulary.")
    ] = "train",
    genre: Annotated[
        list[str] | None,
        typer.Option("--genre", help=f"Genre to make (repeatable; default all): {', '.join(GENRES)}."),
    ] = None,
) -> None:
    """Write generated rows (sources gen_*) in the dev-pool schema."""
    if style not in STYLES:
        raise typer.BadParameter(f"one of {', '.join(STYLES)}", param_hint="--style")
    for g in genre or ():
        if g not in GENRES:
            raise typer.BadParameter(f"unknown genre {g!r}; one of {', '.join(GENRES)}", param_hint="--genre")
    rows = generate_all(per_genre, seed=seed, style=style, genres=genre or None)
    n = write_jsonl(rows, out)
    typer.echo(f"wrote {n} rows to {out}")


if __name__ == "__main__":
    app()
