"""``hegui risks`` and ``hegui check``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from hegui import taxonomy
from hegui.errors import UserError

if TYPE_CHECKING:
    from hegui.moderation import Moderator, Verdict


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


def build_moderator(config: Path | None, lexicons: list[Path] | None) -> Moderator:
    """The moderator for CLI commands: the config file (or defaults) plus ``--lexicon`` files."""
    from hegui.config import load_config
    from hegui.moderation import Moderator

    cfg = load_config(config)
    if lexicons:
        _add_lexicons(cfg, lexicons)
    return Moderator.from_config(cfg)


def _add_lexicons(cfg: Any, paths: list[Path]) -> None:
    from hegui.detectors.lexicon import file_config_from_argument

    cfg.lexicon.files.extend(file_config_from_argument(str(p)) for p in paths)


def _verdict_json(v: Verdict, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = dict(extra)
    d = v.to_dict()
    out.update(
        action=d["action"],
        allowed=d["allowed"],
        risks=d["risks"],
        findings=[
            {k: f[k] for k in ("risk", "start", "end", "detector", "score", "kind")} for f in d["findings"]
        ],
        text=d["text"],
        failed_detectors=d["failed_detectors"],
        decision_id=d["decision_id"],
        timings_ms=d["timings_ms"],
    )
    if d.get("excused_by"):
        out["excused_by"] = d["excused_by"]
        out["excused"] = [{k: f[k] for k in ("risk", "detector", "score")} for f in d["excused"]]
    return out


CONTEXT_FIELDS = ("prompt", "question", "context")
"""JSONL fields read as the question an answer was given to (the first present wins)."""


def _read_items(path: Path) -> list[tuple[int, str, Any, str | None]]:
    """(line number, text, id, question) for each non-empty line: plain text, or JSONL with a ``text``
    field (and, for answers, the question in ``prompt``, ``question`` or ``context``)."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    items: list[tuple[int, str, Any, str | None]] = []
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{n}: invalid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise UserError(f"{path}:{n}: JSON line has no string field 'text'")
            question = next((obj[k] for k in CONTEXT_FIELDS if isinstance(obj.get(k), str) and obj[k]), None)
            items.append((n, obj["text"], obj.get("id"), question))
        else:
            items.append((n, line, None, None))
    return items


def check(
    text: str | None = typer.Argument(None, help="Text to check (or use -f FILE)."),
    file: Path | None = typer.Option(
        None, "-f", "--file", help="Check every line of FILE: plain text lines or JSONL with a 'text' field."
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="hegui.yaml (defaults are built in)."),
    lexicon: list[Path] | None = typer.Option(
        None, "--lexicon", "-l", help="Extra lexicon file (word<TAB>risk lines, or PATH:RISK for a plain list). Repeatable."
    ),
    scene: str = typer.Option("default", "--scene", "-s", help="Policy scene, e.g. default or minor."),
    direction: str = typer.Option("input", "--direction", "-d", help="input (user prompt) or output (model answer)."),
    context: str | None = typer.Option(
        None, "--context", help="With -d output: the question the answer was given to (a refusal that repeats "
        "its sensitive words is then read as the refusal it is). With -f, JSONL lines give it in 'prompt'."),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
    output: Path | None = typer.Option(None, "--output", "-o", help="With -f: write JSONL here instead of stdout."),
) -> None:
    """Check text against the policy: prints the action and the risks found.

    Exit status: 0 when the text is allowed (allow, flag, mask), 1 when it is refused or blocked,
    2 on a usage or input error.
    """
    if direction not in ("input", "output"):
        raise UserError(f"--direction must be input or output, not {direction!r}")
    if (text is None) == (file is None):
        raise UserError("give either TEXT or -f FILE (see hegui check --help)")
    mod = build_moderator(config, lexicon)
    if file is None:
        assert text is not None
        v = mod.check(text, direction=direction, scene=scene, context=context)  # type: ignore[arg-type]
        if as_json:
            typer.echo(json.dumps(_verdict_json(v), ensure_ascii=False))
        else:
            _print_verdict(v)
        raise typer.Exit(0 if v.allowed else 1)
    _check_file(mod, file, output, direction, scene)


def _print_verdict(v: Verdict) -> None:
    console = Console()
    style = "green" if v.allowed else "bold red"
    console.print(f"[{style}]{v.action.value}[/{style}]  decision {v.decision_id}")
    for f in v.findings:
        risk = taxonomy.BY_CODE.get(f.risk)
        name = risk.name_zh if risk else ""
        console.print(f"  {f.risk} {name}  [{f.start}:{f.end}]  {f.detector} score={f.score:.2f}")
    if v.failed_detectors:
        console.print(f"  [red]failed detectors: {', '.join(v.failed_detectors)}[/red]")
    if v.action.value in ("mask", "refuse", "block"):
        console.print(f"  → {v.text}")


def _check_file(mod: Moderator, file: Path, output: Path | None, direction: str, scene: str) -> None:
    from rich.progress import Progress

    items = _read_items(file)
    refused = 0
    lines: list[str] = []
    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"checking {file.name}", total=len(items))
        for n, text, item_id, question in items:
            v = mod.check(text, direction=direction, scene=scene, context=question)  # type: ignore[arg-type]
            refused += 0 if v.allowed else 1
            extra: dict[str, Any] = {"line": n}
            if item_id is not None:
                extra["id"] = item_id
            lines.append(json.dumps(_verdict_json(v, **extra), ensure_ascii=False))
            progress.advance(task)
    body = "\n".join(lines) + ("\n" if lines else "")
    if output is None:
        sys.stdout.write(body)
    else:
        tmp = output.with_name(output.name + ".tmp")
        tmp.write_text(body, encoding="utf-8")
        tmp.replace(output)
    Console(stderr=True).print(f"{len(items)} checked, {refused} refused or blocked")
    raise typer.Exit(1 if refused else 0)


def register(app: typer.Typer) -> None:
    app.command("risks")(risks)
    app.command("check")(check)
