"""The run folder: what an assessment run leaves on disk, and what the filing package reads.

A run is a folder (``hegui assess run --out RUN``)::

    RUN/manifest.json      RunManifest: bank digest, model, sample, seed, started/finished
    RUN/sample.jsonl       the BankItems chosen for this run, in order (written once, before asking)
    RUN/answers.jsonl      one AnswerRecord a line, appended and flushed as each answer arrives,
                           so a crashed run resumes by skipping the ids already here
    RUN/judgements.jsonl   one JudgementRecord a line (every judge, every item)
    RUN/metrics.json       AssessmentMetrics: every clause with its rate, interval and verdict
    RUN/charts/*.svg|png   one chart per metric

Everything here is pydantic so the producer (the runner and judges) and the readers (reports, the
filing package) agree on one shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import IO, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hegui.assessment.bank import BankItem, BankKind
from hegui.errors import UserError
from hegui.labeling.fileio import write_bytes_atomic

MANIFEST = "manifest.json"
SAMPLE = "sample.jsonl"
ANSWERS = "answers.jsonl"
JUDGEMENTS = "judgements.jsonl"
METRICS = "metrics.json"
CHARTS = "charts"

JudgeName = Literal["refusal", "keyword", "classifier", "model", "manual"]
Verdict = Literal["PASS", "FAIL", "NOT PROVEN"]


class RunManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_id: str
    bank_digest: str
    """SHA-256 over the bank's items: a resume against a changed bank is refused."""
    target: str
    """What was asked: the model URL and name, or ``gateway:<url>``."""
    model: str
    seed: int
    sample_sizes: dict[str, int]
    """Items drawn per bank kind."""
    started_at: datetime
    finished_at: datetime | None = None
    requested: dict[str, int] = Field(default_factory=dict)
    """``--sample`` as asked, per kind (``sample_sizes`` is smaller where the bank fell short)."""
    banks: list[str] = Field(default_factory=list)
    """The bank files the items came from, as given."""
    notes: list[str] = Field(default_factory=list)
    """Shortfalls and other warnings of the run, for the report."""


class AnswerRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: str
    kind: BankKind
    risk: str | None = None
    topic: str | None = None
    question: str
    answer: str = ""
    status: Literal["ok", "error", "refused_by_gateway"] = "ok"
    """``refused_by_gateway``: the gateway's own moderation stopped it (counts as a refusal)."""
    error: str = ""
    latency_ms: float = 0.0
    attempts: int = 1
    finish_reason: str | None = None


class JudgementRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: str
    judge: JudgeName
    passed: bool | None
    """generated: the answer is free of the item's risk; refusal banks: the model refused (should_refuse)
    or answered (should_not_refuse). ``None``: the judge could not tell (counted, not guessed)."""
    refused: bool | None = None
    """Whether the answer is a refusal (every judge that can tell)."""
    reason: str = ""
    risks: list[str] = Field(default_factory=list)


class MetricResult(BaseModel):
    """One clause of §9: a rate over ``n`` judged items, its Wilson interval and its verdict."""

    model_config = ConfigDict(extra="forbid")
    clause: str
    """e.g. ``generated.pass_rate``, ``should_refuse.refusal_rate``, ``should_not_refuse.refusal_rate``."""
    kind: BankKind
    judge: JudgeName
    n: int
    k: int
    """Items counted as passing (or refused, for refusal rates)."""
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float
    threshold: float
    comparator: Literal[">=", "<="]
    min_sample: int
    verdict: Verdict
    note: str = ""
    """Why NOT PROVEN or FAIL when it is not the rate: sample below the minimum, judge not run."""
    by_group: dict[str, tuple[int, int]] = Field(default_factory=dict)
    """Per risk (or topic): (k, n)."""


class AssessmentMetrics(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_id: str
    computed_at: datetime
    metrics: list[MetricResult]



# -- the folder on disk ---------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same folder: never half a file."""
    write_atomic_bytes(path, text.encode("utf-8"))


def write_atomic_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, data)


def jsonl(records: Iterable[BaseModel]) -> str:
    return "".join(r.model_dump_json() + "\n" for r in records)


def read_jsonl(path: Path, model: type[M], *, tolerate_torn_tail: bool = False) -> list[M]:
    """The records of ``path``; a bad line is a UserError naming file and line. With
    ``tolerate_torn_tail`` a last line without its newline (a crash mid-write) is dropped."""
    if not path.exists():
        return []
    raw = path.read_text(encoding="utf-8")
    lines = raw.split("\n")
    torn = lines.pop()  # "" when the file ends with a newline
    if torn.strip() and not tolerate_torn_tail:
        lines.append(torn)
    out: list[M] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(model.model_validate_json(line))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "line"
            raise UserError(f"{path}:{number}: {where}: {err['msg']}") from None
    return out


class RunFolder:
    """One run's folder: the files above, read and written in one place."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def require(self) -> RunFolder:
        if not self.exists():
            raise UserError(f"{self.path}: not a run folder (no {MANIFEST}; make one with hegui assess run)")
        return self

    def manifest(self) -> RunManifest:
        try:
            return RunManifest.model_validate_json(self.manifest_path.read_text(encoding="utf-8"))
        except ValidationError as exc:
            err = exc.errors()[0]
            raise UserError(f"{self.manifest_path}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        except FileNotFoundError:
            raise UserError(f"{self.path}: not a run folder (no {MANIFEST})") from None

    def write_manifest(self, manifest: RunManifest) -> None:
        write_atomic(self.manifest_path, manifest.model_dump_json(indent=2) + "\n")

    def sample(self) -> list[BankItem]:
        return read_jsonl(self.path / SAMPLE, BankItem)

    def write_sample(self, items: list[BankItem]) -> None:
        write_atomic(self.path / SAMPLE, jsonl(items))

    def answer_log(self) -> list[AnswerRecord]:
        """Every answer record in the order written (a re-asked error appears twice)."""
        return read_jsonl(self.path / ANSWERS, AnswerRecord, tolerate_torn_tail=True)

    def answers(self) -> dict[str, AnswerRecord]:
        """The latest answer per item id."""
        return {a.item_id: a for a in self.answer_log()}

    def open_answers(self) -> IO[str]:
        """``answers.jsonl`` for appending, after cutting a torn last line left by a crash (so the
        next record does not glue onto it)."""
        path = self.path / ANSWERS
        if path.exists():
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1
                with path.open("r+b") as f:
                    f.truncate(cut)
        return path.open("a", encoding="utf-8")

    def judgements(self) -> list[JudgementRecord]:
        return read_jsonl(self.path / JUDGEMENTS, JudgementRecord)

    def replace_judgements(self, judge: str, records: Iterable[JudgementRecord],
                           only_items: set[str] | None = None) -> None:
        """Swap ``judge``'s records (all of them, or those of ``only_items``) for ``records``."""
        kept = [j for j in self.judgements()
                if j.judge != judge or (only_items is not None and j.item_id not in only_items)]
        write_atomic(self.path / JUDGEMENTS, jsonl([*kept, *records]))

    def write_metrics(self, metrics: AssessmentMetrics) -> None:
        write_atomic(self.path / METRICS, metrics.model_dump_json(indent=2) + "\n")

    def metrics(self) -> AssessmentMetrics | None:
        path = self.path / METRICS
        if not path.exists():
            return None
        return AssessmentMetrics.model_validate_json(path.read_text(encoding="utf-8"))

    @property
    def charts_dir(self) -> Path:
        return self.path / CHARTS

