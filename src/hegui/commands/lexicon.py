"""``hegui lexicon …``: keyword library statistics against GB/T 45654, import and export of the
filing spreadsheet (关键词 / 一级分类 / 二级分类), a quick match test, and ``hegui lexicon entries …``:
the staff entries kept in the ledger database, in force on every running gateway within
``lexicon.db_sync_seconds``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from hegui.errors import UserError

if TYPE_CHECKING:
    from hegui.detectors.lexicon import LexiconDetector

lexicon_app = typer.Typer(
    help=(
        "Keyword lexicons: size and per-risk counts against the standard's minimums, import/export of the "
        "filing spreadsheet (关键词/一级分类/二级分类), and a quick match test."
    ),
    no_args_is_help=True,
)

ConfigOpt = typer.Option(None, "--config", "-c", help="hegui.yaml whose lexicon section to use (default: built-in defaults).")
LexiconOpt = typer.Option(
    None,
    "--lexicon",
    "-l",
    help="Extra lexicon file: PATH (tsv/csv/xlsx that carry risks) or PATH:RISK for a plain word list. Repeatable.",
)
NoBuiltinOpt = typer.Option(False, "--no-builtin", help="Leave out the starter list shipped with hegui.")
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of a table.")


@contextmanager
def _errors() -> Iterator[None]:
    """User errors: one line on stderr, exit 2 (also under typer's CliRunner)."""
    try:
        yield
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


def build_detector(config: Path | None, lexicons: list[str] | None, no_builtin: bool = False) -> LexiconDetector:
    """The lexicon detector for CLI commands: the config's lexicon section plus ``--lexicon`` files."""
    from hegui.config import load_config
    from hegui.detectors.lexicon import LexiconDetector, file_config_from_argument

    cfg = load_config(config)
    section = cfg.lexicon
    extra = [file_config_from_argument(a) for a in lexicons or []]
    section = section.model_copy(update={"files": [*section.files, *extra], "builtin": section.builtin and not no_builtin})
    return LexiconDetector.from_config(section, cfg.base_dir)


@lexicon_app.command("stats")
def stats(
    config: Path | None = ConfigOpt,
    lexicon: list[str] | None = LexiconOpt,
    no_builtin: bool = NoBuiltinOpt,
    as_json: bool = JsonOpt,
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when the library falls short of the standard."),
) -> None:
    """Keyword count, per-risk counts against GB/T 45654's minimums (≥ 10,000 total, ≥ 200 per A.1
    risk, ≥ 100 per A.2 risk) and which risks fall short."""
    from hegui import taxonomy
    from hegui.detectors.lexicon import MIN_TOTAL

    with _errors():
        det = build_detector(config, lexicon, no_builtin)
    s = det.stats()
    short = s.shortfalls()
    if as_json:
        typer.echo(json.dumps(s.to_dict(), ensure_ascii=False, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="Keyword library vs GB/T 45654 §8 (keyword library)")
        for col, justify in (("risk", "left"), ("名称", "left"), ("keywords", "right"), ("minimum", "right"), ("status", "left")):
            table.add_column(col, justify=justify)  # type: ignore[arg-type]
        for code in taxonomy.KEYWORD_RISKS:
            n, need = s.per_risk.get(code, 0), s.minimum(code)
            status = "[green]ok[/green]" if n >= need else f"[red]short by {need - n}[/red]"
            table.add_row(code, taxonomy.get(code).name_zh, f"{n:,}", f"{need:,}", status)
        others = {c: n for c, n in s.per_risk.items() if c not in taxonomy.KEYWORD_RISKS}
        for code, n in others.items():
            table.add_row(code, taxonomy.get(code).name_zh, f"{n:,}", "-", "(not a keyword-library risk)")
        total_status = "[green]ok[/green]" if s.total >= MIN_TOTAL else f"[red]short by {MIN_TOTAL - s.total:,}[/red]"
        table.add_row("total", "distinct keywords", f"{s.total:,}", f"{MIN_TOTAL:,}", total_status, end_section=True)
        console = Console()
        console.print(table)
        lists = ", ".join(f"{name} ({n:,})" for name, n in s.lists.items()) or "(none)"
        console.print(f"lists: {lists}; {s.patterns:,} patterns (incl. pinyin variants); {s.allow:,} allow phrases")
        if s.too_long:
            console.print(f"[yellow]{s.too_long:,} keywords are longer than 10 Chinese characters or 5 words[/yellow]")
        if short or s.total < MIN_TOTAL:
            console.print(
                f"[red]falls short of the standard:[/red] {', '.join(c for c, _, _ in short) or 'total size'}"
            )
        else:
            console.print("[green]meets the standard's size and per-risk minimums[/green]")
    if strict and not s.meets_standard:
        raise typer.Exit(1)


@lexicon_app.command("export")
def export(
    output: Path = typer.Argument(..., help="Output file: .xlsx (the filing form's 拦截关键词列表) or .csv."),
    config: Path | None = ConfigOpt,
    lexicon: list[str] | None = LexiconOpt,
    no_builtin: bool = NoBuiltinOpt,
) -> None:
    """Write the keyword library as the filing spreadsheet: 关键词 / 一级分类 / 二级分类, one row per
    keyword and risk (written atomically)."""
    from hegui.detectors.lexicon_files import export_rows, write_export

    with _errors():
        det = build_detector(config, lexicon, no_builtin)
        rows = export_rows(det.lists)
        write_export(output, rows)
    typer.echo(f"wrote {len(rows):,} rows to {output}")


@lexicon_app.command("import")
def import_(
    source: Path = typer.Argument(..., help="Spreadsheet (.xlsx/.csv with 关键词/一级分类/二级分类), tsv or tags file."),
    output: Path = typer.Argument(..., help="TSV to write (word<TAB>risk[<TAB>options]), atomically."),
    mapping: list[str] | None = typer.Option(
        None, "--map", "-m", help="Category or tag → risk code, e.g. --map 色情=A1f. Repeatable."
    ),
    default_risk: str | None = typer.Option(None, "--default-risk", help="Risk for categories not mapped."),
    risk: str | None = typer.Option(None, "--risk", help="Risk of every entry of a plain word list."),
    fmt: str = typer.Option("auto", "--format", help="auto, text, tsv, tags, csv or xlsx."),
) -> None:
    """Convert a keyword file (e.g. a filing spreadsheet or a tags list) to hegui's TSV format."""
    import os
    import tempfile

    from hegui.detectors.lexicon_files import FORMATS, ListSpec, known_code, load_list, make_readable

    with _errors():
        if fmt not in FORMATS:
            raise UserError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
        cmap: dict[str, str] = {}
        for item in mapping or []:
            key, sep, code = item.rpartition("=")
            if not sep or not key or known_code(code) is None:
                raise UserError(f"--map {item!r}: expected CATEGORY=RISK with a risk code such as A1f")
            cmap[key] = str(known_code(code))
        for opt, value in (("--default-risk", default_risk), ("--risk", risk)):
            if value is not None and known_code(value) is None:
                raise UserError(f"{opt}: unknown risk code {value!r}")
        spec = ListSpec(
            path=source,
            name=source.stem,
            format=fmt,  # type: ignore[arg-type]
            risk=known_code(risk) if risk else None,
            category_map=cmap,
            default_risk=known_code(default_risk) if default_risk else None,
        )
        wl = load_list(spec)
        if not output.parent.is_dir():
            raise UserError(f"{output}: folder {output.parent} does not exist")
        if output.is_dir():
            raise UserError(f"{output}: is a directory")
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
        except OSError as exc:
            raise UserError(f"{output}: cannot write ({exc.strerror})") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(f"# imported from {source.name} by `hegui lexicon import`\n")
                for e in wl.entries:
                    opts = ",".join(o for o, on in (("pinyin", e.pinyin), ("initials", e.initials)) if on)
                    word = e.word.replace("\t", " ")
                    fh.write(f"{word}\t{','.join(e.risks)}" + (f"\t{opts}" if opts else "") + "\n")
            make_readable(Path(tmp))
            os.replace(tmp, output)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    typer.echo(f"wrote {len(wl.entries):,} entries to {output}")


@lexicon_app.command("test")
def test(
    text: str = typer.Argument(..., help="Text to match."),
    config: Path | None = ConfigOpt,
    lexicon: list[str] | None = LexiconOpt,
    no_builtin: bool = NoBuiltinOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Show the normalised text and every lexicon hit (after the allow-list), with its span in the input."""
    from hegui.text import normalize

    with _errors():
        det = build_detector(config, lexicon, no_builtin)
    norm = normalize(text)
    findings = det.detect(norm)
    if as_json:
        typer.echo(
            json.dumps(
                {"normalized": norm.text, "findings": [{**f.to_dict(), "match": text[f.start : f.end]} for f in findings]},
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    typer.echo(f"normalised: {norm.text}")
    if not findings:
        typer.echo("no hits")
    for f in findings:
        typer.echo(f"{f.risk}\t[{f.start}:{f.end}]\t{text[f.start:f.end]}\t{f.evidence_id}")


# -- staff entries in the ledger database ----------------------------------------------------------

entries_app = typer.Typer(
    help=(
        "Staff lexicon and allow-list entries kept in the ledger database: every running gateway "
        "puts a change in force within lexicon.db_sync_seconds, beside the lexicon files."
    ),
    no_args_is_help=True,
)
lexicon_app.add_typer(entries_app, name="entries")

DbConfigOpt = typer.Option(None, "--config", "-c", help="hegui.yaml to read `ledger.url` from.")
DbUrlOpt = typer.Option(None, "--url", help="Database URL; overrides the config (sqlite:///… or postgresql+psycopg://…).")
ActorOpt = typer.Option(None, "--actor", help="Who acts, as recorded in the ledger (default: cli:<your login>).")


@entries_app.command("list")
def entries_list(
    config: Path | None = DbConfigOpt,
    url: str | None = DbUrlOpt,
    include_removed: bool = typer.Option(False, "--all", help="Include removed entries (with who removed them, when)."),
    as_json: bool = JsonOpt,
) -> None:
    """The staff entries in force (or all of them with --all), oldest first."""
    from hegui.cases.lexicon_entries import entries, version
    from hegui.commands.db import _errors as _db_errors
    from hegui.commands.db import open_with_config

    with _db_errors():
        _, ledger = open_with_config(config, url, create=False)
        with ledger:
            rows = entries(ledger, include_removed=include_removed)
            current = version(ledger)
    if as_json:
        typer.echo(json.dumps({"version": current, "entries": [e.to_dict() for e in rows]},
                              ensure_ascii=False, indent=2))
        return
    if not rows:
        typer.echo("no staff entries")
    for e in rows:
        state = "" if e.active else f"\tremoved {e.removed_at:%Y-%m-%d %H:%M} by {e.removed_by}"
        typer.echo(f"{e.id}\t{e.list}\t{e.risk or '-'}\t{e.text}\t{e.case_id or '-'}\t"
                   f"{e.created_at:%Y-%m-%d %H:%M} by {e.added_by}{state}")


@entries_app.command("add")
def entries_add(
    text: str = typer.Argument(..., help="The keyword or allow phrase (matched after normalisation, like file entries)."),
    list_name: str = typer.Option("block", "--list", help="block (a keyword, needs --risk) or allow (an allow phrase)."),
    risk: str | None = typer.Option(None, "--risk", "-r", help="Risk code of a block entry, e.g. A1h (see `hegui risks`)."),
    note: str = typer.Option("", "--note", help="Why the entry is added (kept with it, up to 500 characters)."),
    case: str | None = typer.Option(None, "--case", help="The case (cs_…) the entry comes from."),
    actor: str | None = ActorOpt,
    config: Path | None = DbConfigOpt,
    url: str | None = DbUrlOpt,
) -> None:
    """Add a staff entry; prints its id (lx_…). Refused: empty or over-long text, a block entry without a
    valid risk, an unknown case, or the same normalised text already in that list."""
    from hegui.cases.lexicon_entries import LISTS, add_entry
    from hegui.commands.db import _errors as _db_errors
    from hegui.commands.db import default_actor, open_with_config

    with _db_errors():
        if list_name not in LISTS:
            raise UserError(f"--list: {list_name!r} is not one of {', '.join(LISTS)}")
        _, ledger = open_with_config(config, url, create=False)
        with ledger:
            entry_id = add_entry(ledger, list=list_name,  # type: ignore[arg-type]
                                 text=text, risk=risk, note=note, case_id=case, actor=actor or default_actor())
    typer.echo(entry_id)


@entries_app.command("remove")
def entries_remove(
    entry_id: str = typer.Argument(..., help="The entry id (lx_…), as `hegui lexicon entries list` shows it."),
    actor: str | None = ActorOpt,
    config: Path | None = DbConfigOpt,
    url: str | None = DbUrlOpt,
) -> None:
    """Take a staff entry out of force (it stays in the list of --all, marked removed)."""
    from hegui.cases.lexicon_entries import remove_entry
    from hegui.commands.db import _errors as _db_errors
    from hegui.commands.db import default_actor, open_with_config

    with _db_errors():
        _, ledger = open_with_config(config, url, create=False)
        with ledger:
            remove_entry(ledger, entry_id, actor=actor or default_actor())
    typer.echo(f"removed {entry_id}")


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.add_typer(lexicon_app, name="lexicon")
