"""What the filing package reads, gathered once: the assessment run folder, the annotation summary,
the corpus audit summary, the keyword library, the question banks, the agreements and the ledger.

Every input is optional here; a clause whose evidence is missing says so (待确认 / 不符合), it is
never assumed. Files that are given but unreadable are user errors naming the file and line.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from hegui.annotation.summary import AnnotationSummary
from hegui.assessment.bank import BankItem
from hegui.assessment.results import (
    ANSWERS,
    CHARTS,
    JUDGEMENTS,
    MANIFEST,
    METRICS,
    SAMPLE,
    AnswerRecord,
    AssessmentMetrics,
    JudgementRecord,
    RunManifest,
)
from hegui.corpus.summary import AuditSummary
from hegui.errors import UserError

if TYPE_CHECKING:
    from hegui.annotation.config import AnnotationConfig
    from hegui.assessment.coverage import CoverageReport
    from hegui.config import HeguiConfig
    from hegui.detectors.lexicon import LexiconStats
    from hegui.ledger.records import VerifyReport
    from hegui.ledger.store import Ledger

M = TypeVar("M", bound=BaseModel)
AGREEMENTS_DIR = Path(__file__).resolve().parents[1] / "data" / "agreements"


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
    return f"{where}: {err.get('msg', 'invalid')}"


def read_model(path: Path, model: type[M]) -> M:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        raise UserError(f"{path}: {_first_error(exc)}") from None


def read_jsonl(path: Path, model: type[M]) -> list[M]:
    out: list[M] = []
    try:
        fh = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(model.model_validate_json(line))
            except ValidationError as exc:
                raise UserError(f"{path}:{n}: {_first_error(exc)}") from None
    return out


@dataclass
class RunData:
    """One assessment run folder, read and validated."""

    folder: Path
    manifest: RunManifest
    sample: list[BankItem]
    answers: list[AnswerRecord]
    judgements: list[JudgementRecord]
    metrics: AssessmentMetrics
    charts: list[Path]

    @classmethod
    def read(cls, folder: Path) -> RunData:
        if not folder.is_dir():
            raise UserError(f"--run {folder}: not a run folder")
        for name in (MANIFEST, ANSWERS, METRICS):
            if not (folder / name).is_file():
                raise UserError(f"--run {folder}: {name} is missing (has the run finished?)")
        sample = read_jsonl(folder / SAMPLE, BankItem) if (folder / SAMPLE).is_file() else []
        judgements = read_jsonl(folder / JUDGEMENTS, JudgementRecord) if (folder / JUDGEMENTS).is_file() else []
        charts_dir = folder / CHARTS
        charts = sorted(p for p in charts_dir.iterdir() if p.suffix in (".png", ".svg")) if charts_dir.is_dir() else []
        return cls(folder, read_model(folder / MANIFEST, RunManifest), sample,
                   read_jsonl(folder / ANSWERS, AnswerRecord), judgements,
                   read_model(folder / METRICS, AssessmentMetrics), charts)

    def judges(self) -> list[str]:
        """Judges that judged this run, in a stable order."""
        order = ("refusal", "keyword", "classifier", "model", "manual")
        seen = {j.judge for j in self.judgements}
        return [j for j in order if j in seen]

    def verdicts_by_item(self) -> dict[str, dict[str, JudgementRecord]]:
        out: dict[str, dict[str, JudgementRecord]] = {}
        for j in self.judgements:
            out.setdefault(j.item_id, {})[j.judge] = j
        return out


@dataclass
class BankInfo:
    """The question banks' coverage (``hegui bank check``'s :func:`check_coverage`) for GB/T 45654 §8."""

    source: str
    report: CoverageReport
    digest: str
    matches_run: bool | None
    """Whether these banks are the ones the run drew from (same digest); None without a run."""


def bank_info(paths: list[Path], run: RunData | None) -> BankInfo | None:
    """Coverage of ``paths`` (``--bank``), else of the banks the run names when they are still there."""
    from hegui.assessment.bank_io import load_banks
    from hegui.assessment.coverage import check_coverage

    if not paths and run is not None and run.manifest.banks:
        named = [Path(b) for b in run.manifest.banks]
        if all(p.is_file() for p in named):
            paths = named
    if not paths:
        return None
    bank = load_banks(paths)
    digest = bank.digest()
    return BankInfo(", ".join(str(p) for p in paths), check_coverage(bank), digest,
                    None if run is None else digest == run.manifest.bank_digest)


@dataclass
class RulesText:
    """A published annotation rules document, with its digest (of the bytes as published)."""

    name: str
    """File name in the package (``语料标注/NAME``)."""
    sha256: str
    text: str
    source: str
    """Where it came from: the file given, or ``ledger``."""


@dataclass
class Agreement:
    kind: str
    version: str
    text: str
    sha256: str
    published: bool
    """From the ledger's published versions (True) or the texts shipped with hegui (False)."""
    effective: str = ""


@dataclass
class LedgerFacts:
    """What the filing package says about the ledger: counts and the chain's verification."""

    url: str
    decisions: int
    by_direction: dict[str, int]
    by_action: dict[str, int]
    first_at: datetime | None
    last_at: datetime | None
    verify: VerifyReport
    ladder_events: int
    training_opt_outs: int


@dataclass
class FilingInputs:
    cfg: HeguiConfig
    run: RunData | None = None
    annotation: AnnotationSummary | None = None
    annotation_source: str = ""
    audit: AuditSummary | None = None
    audit_dir: Path | None = None
    lexicon: LexiconStats | None = None
    lexicon_rows: list[tuple[str, str, str]] = field(default_factory=list)
    banks: BankInfo | None = None
    rules: list[RulesText] = field(default_factory=list)
    agreements: list[Agreement] = field(default_factory=list)
    ledger: LedgerFacts | None = None
    detectors: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Detector name → what is configured (enabled, lists, model, risks covered)."""
    policy: dict[str, Any] = field(default_factory=dict)
    """The policy in force, summarised (fail mode, default action, rules)."""
    generated_at: datetime | None = None


# -- readers ---------------------------------------------------------------------------------------

def read_annotation(path: Path) -> AnnotationSummary:
    return read_model(path, AnnotationSummary)


def annotation_from_ledger(ledger: Ledger, cfg: AnnotationConfig | None = None) -> AnnotationSummary | None:
    """The summary of the ledger's annotation records (``hegui annotation report``), or None when
    it holds none at all."""
    from hegui.annotation.report import build_summary

    summary = build_summary(ledger, cfg)
    return summary if (summary.rules or summary.batches or summary.annotators.total) else None


def rules_from_ledger(ledger: Ledger, summary: AnnotationSummary) -> list[RulesText]:
    """The published texts of the newest functional and safety rules the summary names."""
    from hegui.annotation.rules import RulesError, rules_text

    newest = {r.kind: r for r in sorted(summary.rules, key=lambda r: r.published_at)}
    out = []
    for kind in ("functional", "safety"):
        info = newest.get(kind)
        if info is None:
            continue
        try:
            text = rules_text(ledger, info.kind, info.version)
        except RulesError:
            continue  # the summary came from a file and names rules this ledger does not hold
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        out.append(RulesText(f"{kind}-{info.version}.md", digest, text, "ledger"))
    return out


def read_audit(folder: Path) -> AuditSummary:
    path = folder / "summary.json" if folder.is_dir() else folder
    if not path.is_file():
        raise UserError(f"--corpus-audit {folder}: no summary.json (run `hegui corpus audit` first)")
    return read_model(path, AuditSummary)


def read_rules(paths: list[Path]) -> list[RulesText]:
    out = []
    for p in paths:
        try:
            data = p.read_bytes()
            text = data.decode("utf-8")
        except FileNotFoundError:
            raise UserError(f"--rules {p}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"--rules {p}: cannot read as UTF-8 text ({exc.__class__.__name__})") from None
        out.append(RulesText(p.name, hashlib.sha256(data).hexdigest(), text, str(p)))
    return out


def agreements(ledger: Ledger | None) -> list[Agreement]:
    """The newest published version of each kind (the ledger's), else the shipped demo texts."""
    found: dict[str, Agreement] = {}
    if ledger is not None:
        from hegui.accounts.store import AccountStore

        for row in AccountStore(ledger).published_agreements():  # oldest effective first: the last wins
            found[row["kind"]] = Agreement(row["kind"], row["version"], row["text"], row["sha256"], True,
                                           row["effective"])
    for kind in ("service", "privacy"):
        if kind in found:
            continue
        path = AGREEMENTS_DIR / f"{kind}-demo.md"
        if path.is_file():
            data = path.read_bytes()
            found[kind] = Agreement(kind, "demo", data.decode("utf-8"), hashlib.sha256(data).hexdigest(), False)
    return [found[k] for k in ("service", "privacy") if k in found]


def ledger_facts(ledger: Ledger) -> LedgerFacts:
    import sqlalchemy as sa

    from hegui.ledger.models import Base
    from hegui.ledger.store import redact_url

    d = Base.metadata.tables["decisions"]
    e = Base.metadata.tables["events"]
    with ledger.engine.connect() as conn:
        where = d.c.kind == "decision"
        by_dir: dict[Any, Any] = dict(conn.execute(sa.select(d.c.direction, sa.func.count()).where(where).group_by(d.c.direction)).all())
        by_act: dict[Any, Any] = dict(conn.execute(sa.select(d.c.action, sa.func.count()).where(where).group_by(d.c.action)).all())
        first, last = conn.execute(sa.select(sa.func.min(d.c.created_at), sa.func.max(d.c.created_at)).where(where)).one()
        ladder = conn.execute(sa.select(sa.func.count()).select_from(e).where(e.c.kind.startswith("ladder."))).scalar_one()
        opt = conn.execute(sa.select(sa.func.count()).select_from(e)
                           .where(e.c.kind == "consent.training_opt_out")).scalar_one()
    return LedgerFacts(redact_url(ledger.url), sum(by_dir.values()), {str(k): int(v) for k, v in by_dir.items()},
                       {str(k): int(v) for k, v in by_act.items()}, first, last, ledger.verify(), int(ladder), int(opt))


def detector_summary(cfg: HeguiConfig) -> dict[str, dict[str, Any]]:
    """What each detector is configured to do, without loading models it does not need."""
    out: dict[str, dict[str, Any]] = {
        "lexicon": {"enabled": cfg.lexicon.enabled, "builtin": cfg.lexicon.builtin,
                    "files": [f.path for f in cfg.lexicon.files]},
        "pii": {"enabled": cfg.pii.enabled},
        "injection": {"enabled": cfg.injection.enabled},
        "classifier": {"enabled": cfg.classifier.enabled, "model": cfg.classifier.model or "builtin"},
        "guard": {"enabled": cfg.guard.enabled, "backend": cfg.guard.backend,
                  "model": cfg.guard.model or ""},
    }
    if cfg.classifier.enabled:
        from hegui.detectors.classifier import build

        det = build(cfg)
        out["classifier"]["risks"] = sorted(det.risks) if det is not None else []
    return out


def policy_summary(cfg: HeguiConfig) -> dict[str, Any]:
    from hegui.policy import load_policy

    path = cfg.resolve_path(cfg.policy) if cfg.policy else None
    pol = load_policy(path)
    return {
        "source": str(path) if path else "hegui starter policy (data/policy/default.yaml)",
        "fail_mode": str(pol.fail_mode), "default_action": str(pol.default_action),
        "scenes": sorted({"default", *pol.scenes}),
        "rules": [{"risks": list(r.risks), "direction": r.direction, "scenes": r.scenes or ["*"],
                   "min_score": r.min_score, "action": str(r.action)} for r in pol.rules],
        "refusal": pol.refusal,
    }


def lexicon_inputs(cfg: HeguiConfig) -> tuple[LexiconStats, list[tuple[str, str, str]]]:
    """The keyword library through the same functions as ``hegui lexicon stats`` / ``export``."""
    from hegui.detectors.lexicon import LexiconDetector
    from hegui.detectors.lexicon_files import export_rows

    det = LexiconDetector.from_config(cfg.lexicon, cfg.base_dir)
    return det.stats(), export_rows(det.lists)


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n"
