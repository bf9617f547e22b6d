"""``hegui risks`` and ``hegui check``."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from hegui import taxonomy


def risks(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the 31 risks of GB/T 45654 Appendix A and the signals PI and JB."""
    if as_json:
        rows = [
            {"code": r.code, "category": r.category.value, "name_zh": r.name_zh, "name_en": r.name_en,
             "article": r.article}
            for r in taxonomy.RISKS
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table(title="GB/T 45654-2025 Appendix A risks")
    for col in ("code", "category", "名称", "name", "article"):
        table.add_column(col)
    for r in taxonomy.RISKS:
        table.add_row(r.code, r.category.value, r.name_zh, r.name_en, r.article)
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("risks")(risks)
