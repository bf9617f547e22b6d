"""``hegui assess …``: the filing assessment's runs (GB/T 45654 §9) — ask a model the sampled bank
questions (resumable), judge the answers, report the metrics with their verdicts and charts, and
round-trip the manual review through a workbook."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from hegui.commands.db import _errors
from hegui.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from hegui.assessment.results import AssessmentMetrics, RunFolder
    from hegui.config import HeguiConfig

assess_app = typer.Typer(
    help="The filing assessment: run bank questions against a model or a hegui gateway (resumable), judge the "
         "answers (refusal, keyword, classifier, model, manual), report rates with Wilson intervals and "
         "PASS / FAIL / NOT PROVEN verdicts.",
    no_args_is_help=True,
)

ConfigOpt = typer.Option(None, "--config", "-c", help="hegui.yaml to read `assessment.*`, lexicons and policy from.")
RunArg = typer.Argument(..., help="The run folder (made by `hegui assess run --out`).")
JudgesOpt = typer.Option(None, "--judges", help="Comma-separated judges: refusal, keyword, classifier, model "
                                                "(default: the first three, plus model when an endpoint is set).")
JudgeUrlOpt = typer.Option(None, "--judge-url", help="Model judge endpoint (OpenAI-compatible base URL); "
                                                     "overrides `assessment.model_judge.url`.")
JudgeModelOpt = typer.Option(None, "--judge-model", help="Model judge's model name; overrides "
                                                         "`assessment.model_judge.model`.")


def _config(path: Path | None) -> HeguiConfig:
    from hegui.config import load_config

    return load_config(path)


def _console(stderr: bool = True) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # off a terminal (a pipe, a log, CliRunner) rich would squeeze the table into 80 columns
    return Console(stderr=stderr, soft_wrap=True, width=None if stream.isatty() else 200)


@contextmanager
def _progress() -> Iterator[Progress]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=_console(), disable=not sys.stderr.isatty()) as progress:
        yield progress


def _judge(folder: RunFolder, cfg: HeguiConfig, judges: str | None, judge_url: str | None,
           judge_model: str | None) -> dict[str, int]:
    from hegui.assessment.judges import model_judge_from, parse_judges, run_judges

    model_judge = model_judge_from(cfg, judge_url, judge_model)
    names = parse_judges(judges, model_judge is not None)
    with _progress() as progress:

        def tick(name: str, total: int) -> Callable[[], None]:
            task = progress.add_task(f"judge {name}", total=total)
            return lambda: progress.advance(task)

        return run_judges(folder, cfg, names, model_judge=model_judge, progress=tick)


def _report(folder: RunFolder, cfg: HeguiConfig, charts: bool) -> tuple[AssessmentMetrics, list[Path], str]:
    from hegui.assessment.metrics import report
    from hegui.cases.report import find_font

    metrics = report(folder, cfg.assessment)
    written: list[Path] = []
    warning = ""
    if charts:
        from hegui.assessment.charts import draw_charts

        try:
            font = find_font(cfg.resolve_path(cfg.assessment.chart_font) if cfg.assessment.chart_font else None)
        except UserError as exc:
            warning = f"charts skipped: {exc}"
        else:
            written = draw_charts(folder, metrics, font)
    return metrics, written, warning


def _table(metrics: AssessmentMetrics) -> None:
    from rich.table import Table

    colour = {"PASS": "green", "FAIL": "red", "NOT PROVEN": "yellow"}
    table = Table(box=None, title=f"assessment {metrics.run_id}")
    for name in ("clause", "judge", "k/n", "rate", "interval", "threshold", "verdict", "note"):
        table.add_column(name, no_wrap=name not in ("note",))
    for m in metrics.metrics:
        rate = f"{m.rate:.1%}" if m.rate is not None else "-"
        ci = f"{m.ci_low:.1%}–{m.ci_high:.1%}" if m.ci_low is not None and m.ci_high is not None else "-"
        table.add_row(m.clause, m.judge, f"{m.k}/{m.n}", rate, ci, f"{m.comparator} {m.threshold:.0%}",
                      f"[{colour[m.verdict]}]{m.verdict}[/{colour[m.verdict]}]", m.note)
    _console(stderr=False).print(table)


def _failed(metrics: AssessmentMetrics) -> bool:
    return any(m.verdict != "PASS" for m in metrics.metrics)


@assess_app.command("run")
def run_cmd(
    bank: list[Path] = typer.Option(..., "--bank", "-b", help="Bank file (XLSX, CSV or JSONL); repeat for several."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder; an existing one is resumed."),
    model: str | None = typer.Option(None, "--model", help="Model endpoint: OpenAI-compatible base URL "
                                                           "(http://host:port/v1)."),
    model_name: str | None = typer.Option(None, "--model-name", help="Model name sent in each request "
                                                                     "(needed with --model; with --gateway, "
                                                                     "default the gateway's first model)."),
    gateway: str | None = typer.Option(None, "--gateway", help="A hegui gateway's URL instead of --model: its "
                                                               "refusals count as refusals."),
    api_key: str | None = typer.Option(None, "--api-key", envvar="HEGUI_ASSESS_API_KEY",
                                       help="API key for the model or gateway (or $HEGUI_ASSESS_API_KEY)."),
    sample: str | None = typer.Option(None, "--sample", help="Items per kind, e.g. generated=1000,should_refuse=300,"
                                                             "should_not_refuse=300 (default: assessment.min_sample)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample draw (a resume must use the same)."),
    concurrency: int = typer.Option(8, "--concurrency", min=1, max=512, help="Questions in flight at once."),
    rate: float | None = typer.Option(None, "--rate", min=0.01, help="At most this many requests per second."),
    timeout: float = typer.Option(60.0, "--timeout", min=0.1, help="Seconds per request before it is retried."),
    retries: int = typer.Option(5, "--retries", min=0, max=50, help="Retries on 429, 5xx, timeouts, lost "
                                                                    "connections."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=1, help="max_tokens of each request."),
    no_judge: bool = typer.Option(False, "--no-judge", help="Only ask; judge later with `hegui assess judge`."),
    judges: str | None = JudgesOpt,
    judge_url: str | None = JudgeUrlOpt,
    judge_model: str | None = JudgeModelOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Ask the sampled bank questions and record the answers (then judge and report).

    Example: hegui assess run --bank banks.xlsx --out runs/r1 --model http://127.0.0.1:8001/v1 --model-name qwen
    """
    from hegui.assessment.bank_io import load_banks
    from hegui.assessment.runner import (
        RunOptions,
        Target,
        api_base,
        ask_all,
        finish,
        parse_sample,
        pending,
        prepare_run,
    )

    with _errors():
        if (model is None) == (gateway is None):
            raise UserError("give either --model URL --model-name NAME or --gateway URL --api-key KEY")
        if model is not None and not model_name:
            raise UserError("--model needs --model-name (the name the endpoint serves)")
        cfg = _config(config)
        base = api_base(model or gateway or "")
        if model_name is None:
            model_name = _first_model(base, api_key)
        target = Target(base, model_name, api_key, gateway=gateway is not None)
        banks = load_banks(bank)
        wanted = parse_sample(sample, cfg.assessment.min_sample.model_dump())
        folder, items, shortfalls = prepare_run(out, banks.counted(), banks.digest(), [str(b) for b in bank],
                                                target, wanted, seed)
        err = _console()
        for s in shortfalls:
            err.print(f"[yellow]warning: sample short: {s}[/yellow]")
        todo = pending(folder, items)
        skipped = len(items) - len(todo)
        if skipped:
            err.print(f"resuming {out}: {skipped} answered, {len(todo)} to ask")
        options = RunOptions(concurrency=concurrency, rate=rate, timeout=timeout, retries=retries,
                             max_tokens=max_tokens)
        with _progress() as progress:
            task = progress.add_task("asking", total=len(todo))
            errors = asyncio.run(ask_all(folder, todo, target, options,
                                         on_answer=lambda _r: progress.advance(task)))
        finish(folder)
        typer.echo(f"{out}: {len(todo) - errors} answered, {skipped} already answered, {errors} errors"
                   + (" (rerun the same command to ask them again)" if errors else ""))
        if no_judge:
            return
        written = _judge(folder, cfg, judges, judge_url, judge_model)
        typer.echo("judged: " + ", ".join(f"{k} {v}" for k, v in written.items()))
        metrics, _charts, warning = _report(folder, cfg, charts=True)
        if warning:
            err.print(f"[yellow]warning: {warning}[/yellow]")
        _table(metrics)


def _first_model(base: str, api_key: str | None) -> str:
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        resp = httpx.get(base + "/models", headers=headers, timeout=10)
        data = resp.json()["data"]
        return str(data[0]["id"])
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
        raise UserError(f"{base}/models: cannot list the gateway's models; give --model-name") from None


@assess_app.command("judge")
def judge_cmd(
    run: Path = RunArg,
    judges: str | None = JudgesOpt,
    judge_url: str | None = JudgeUrlOpt,
    judge_model: str | None = JudgeModelOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Judge a run's answers again (each judge's earlier records are replaced).

    Example: hegui assess judge runs/r1 --judges refusal,keyword
    """
    from hegui.assessment.results import RunFolder

    with _errors():
        folder = RunFolder(run).require()
        written = _judge(folder, _config(config), judges, judge_url, judge_model)
        typer.echo("judged: " + ", ".join(f"{k} {v}" for k, v in written.items()))


@assess_app.command("report")
def report_cmd(
    run: Path = RunArg,
    as_json: bool = typer.Option(False, "--json", help="Print metrics.json instead of the table."),
    charts: bool = typer.Option(True, "--charts/--no-charts", help="Draw RUN/charts/*.svg and *.png."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 unless every clause is PASS."),
    config: Path | None = ConfigOpt,
) -> None:
    """Compute the metrics (metrics.json), print them and draw the charts.

    Example: hegui assess report runs/r1 --json
    """
    from hegui.assessment.results import RunFolder

    with _errors():
        folder = RunFolder(run).require()
        metrics, written, warning = _report(folder, _config(config), charts)
        if warning:
            _console().print(f"[yellow]warning: {warning}[/yellow]")
        if as_json:
            typer.echo(json.dumps(metrics.model_dump(mode="json"), ensure_ascii=False, indent=2))
        else:
            _table(metrics)
            if written:
                typer.echo(f"charts: {len(written)} files in {folder.charts_dir}")
        if strict and _failed(metrics):
            raise typer.Exit(1)


@assess_app.command("export-review")
def export_review_cmd(
    run: Path = RunArg,
    out: Path = typer.Option(..., "--out", "-o", help="The workbook to write (.xlsx)."),
) -> None:
    """Write the manual review workbook (question, answer, risk, other judges' verdicts, an empty 人工判定).

    Example: hegui assess export-review runs/r1 --out review.xlsx
    """
    from hegui.assessment.manual import export_review
    from hegui.assessment.results import RunFolder

    with _errors():
        rows = export_review(RunFolder(run), out)
        typer.echo(f"{out}: {rows} answers to review")


@assess_app.command("import-review")
def import_review_cmd(
    run: Path = RunArg,
    review: Path = typer.Argument(..., help="The filled review workbook."),
) -> None:
    """Read the 人工判定 column back as the manual judge's verdicts.

    Example: hegui assess import-review runs/r1 review.xlsx
    """
    from hegui.assessment.manual import import_review
    from hegui.assessment.results import RunFolder

    with _errors():
        n = import_review(RunFolder(run), review)
        typer.echo(f"{run}: {n} manual verdicts recorded (hegui assess report {run} to see them counted)")


def register(app: typer.Typer) -> None:
    app.add_typer(assess_app, name="assess")
