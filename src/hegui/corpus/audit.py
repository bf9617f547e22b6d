"""The audit of a training corpus (Art. 7; TC260-003 §5.1, §9): plan, resume, map, merge, decide.

:func:`run_audit` plans the shards of every source, skips those whose result is already in
``OUT/shards/<shard_id>.json``, maps the scan over the rest on an engine, and merges the results:

- per source: records, flagged, risks, PII; the **5% rule** with a Wilson interval
  (:func:`hegui.stats.judge_rate` ``<= 5%``: PASS → ACCEPT, FAIL → REJECT, else NOT PROVEN);
- the **automated check** over the hash-drawn ≥ 10% sample, against 98%;
- the **manual sample**: the global 4,000 smallest hashes of the shards' candidates, exported for the
  reviewers; its verdict stays PENDING until ``hegui corpus review import`` rates it against 96%.

Resuming: each shard's result is written atomically as soon as it arrives, with the digest of the
scan settings and of the shard (its file's size and mtime), so a crash loses only the shards in
flight. A rerun with other settings, or over a source that changed, refuses with one line (or
``--restart``), since mixing results of two scans would make the rates mean nothing.

The merge is order-free (sums, and a bottom-k by hash), so every engine and every resume gives the
same summary.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from hegui.corpus.config import CorpusConfig
from hegui.corpus.engines import Engine
from hegui.corpus.sampling import merge_bottom_k
from hegui.corpus.shards import Shard, ShardResult
from hegui.corpus.summary import AuditSummary, CheckResult, SourceDecision, SourceVerdict
from hegui.errors import UserError
from hegui.stats import judge_rate

SUMMARY = "summary.json"
MANIFEST = "audit.json"
SHARDS = "shards"
CLEANED = "cleaned"
SOURCES_CSV = "sources.csv"
MANUAL_SAMPLE = "manual_sample.jsonl"
MANUAL_EXPORT = "manual_review.xlsx"
ERRORS_KEPT = 100
"""Bad-record lines kept in the summary (all are counted; the shard files keep every one)."""

DECISION: dict[str, SourceDecision] = {"PASS": "ACCEPT", "FAIL": "REJECT", "NOT PROVEN": "NOT PROVEN"}


class AuditError(UserError):
    pass


# -- atomic files ---------------------------------------------------------------------------------

def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it: a reader (or a resume after
    a crash) sees the old file or the whole new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8"))


# -- digests: what a finished shard's result depends on -------------------------------------------

def settings_digest(settings: dict[str, Any], config_bytes: bytes | None) -> str:
    """The scan settings (and the moderation config file's bytes, whose lexicon and policy decide
    what is flagged): a change in either makes earlier shard results incomparable."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode("utf-8"))
    h.update(b"\0" + (config_bytes or b""))
    return h.hexdigest()


def _file_stamp(url: str) -> tuple[int | None, str | None]:
    """Size and modification time of a shard's file (local or fsspec), for the shard digest."""
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(url)
        info = fs.info(path)
    except (OSError, ValueError, ImportError):
        return None, None
    mtime = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("created")
    size = info.get("size")
    return (int(size) if size is not None else None), (str(mtime) if mtime is not None else None)


def shard_stamp(shard: Shard, stamps: dict[str, tuple[int | None, str | None]]) -> Any:
    """What the digest watches of a shard's files: the file's size and mtime, or, for a text shard
    (a folder's ``.txt`` files grouped), every member's, so editing one of them is noticed too."""
    if shard.members:
        return [stamps.get(m, (None, None)) for m in shard.members]
    return stamps.get(shard.url, (None, None))


def shard_digest(shard: Shard, stamp: Any) -> str:
    h = hashlib.sha256(shard.model_dump_json().encode("utf-8"))
    h.update(json.dumps(stamp).encode("utf-8"))
    return h.hexdigest()


# -- the scanner's side (hegui.corpus.sources / scan / review, built alongside) --------------------

@dataclass
class Plan:
    shards: list[Shard]
    source_types: dict[str, str]
    problems: dict[str, list[str]]
    bytes_total: int
    stamps: dict[str, tuple[int | None, str | None]] = field(default_factory=dict)


def plan_audit(sources_file: Path, min_shards: int = 0) -> Plan:
    """Load and check the registry, plan the shards (at least ``min_shards`` when files can be
    split, so every worker has work), stamp their files."""
    from hegui.corpus.sources import check_sources, load_sources, plan_shards

    sources = load_sources(sources_file)
    problems: dict[str, list[str]] = {}
    for p in check_sources(sources):
        if p.source:
            problems.setdefault(p.source, []).append(f"{p.severity}: {p.message}")
    shards = plan_shards(sources, min_shards=min_shards)
    ids = Counter(s.shard_id for s in shards)
    dup = [i for i, n in ids.items() if n > 1]
    if dup:
        raise AuditError(f"{sources_file}: two shards have the same id {dup[0]!r} (two sources share a file?)")
    stamps = {url: _file_stamp(url) for url in {s.url for s in shards if not s.members}
              | {m for s in shards for m in s.members}}
    total = sum(size or 0 for size, _ in stamps.values())
    return Plan(shards, {s.name: s.type for s in sources}, problems, total, stamps)


def build_scan_settings(out: Path, corpus: CorpusConfig, config_path: Path | None) -> Any:
    """The scanner's settings from the ``corpus:`` section (the sample draw, the cleaned copy)."""
    from hegui.corpus.scan import ScanSettings

    values: dict[str, Any] = {
        "config_path": str(config_path.resolve()) if config_path else None,
        "auto_rate": corpus.auto_sample_rate,
        "manual_k": corpus.manual_sample_size,
        "seed": corpus.seed,
        "excerpt_chars": corpus.excerpt_chars,
        "output_dir": str(out.resolve()),
        "cleaned_format": corpus.cleaned_format,
    }
    known = set(ScanSettings.model_fields)
    return ScanSettings(**{k: v for k, v in values.items() if k in known})


def default_scan_fn(settings: Any) -> Callable[[Shard], ShardResult]:
    from hegui.corpus.scan import scan_shard

    return partial(scan_shard, settings=settings)


# -- merging --------------------------------------------------------------------------------------

@dataclass
class SourceTotals:
    records: int = 0
    chars: int = 0
    flagged: int = 0
    errors: int = 0
    shards: int = 0
    bytes_read: int = 0
    by_risk: Counter[str] = field(default_factory=Counter)
    pii: Counter[str] = field(default_factory=Counter)


@dataclass
class Merged:
    sources: dict[str, SourceTotals] = field(default_factory=dict)
    auto_sampled: int = 0
    auto_passed: int = 0
    candidates: list[list[dict[str, str]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, r: ShardResult, k: int) -> None:
        t = self.sources.setdefault(r.source, SourceTotals())
        t.records += r.records
        t.chars += r.chars
        t.flagged += r.flagged
        t.errors += max(r.error_count, len(r.errors))
        t.bytes_read += r.bytes_read
        t.shards += 1
        t.by_risk.update(r.by_risk)
        t.pii.update(r.pii)
        self.auto_sampled += r.auto_sampled
        self.auto_passed += r.auto_passed
        # keep the running bottom-k small: merging as results arrive bounds memory on big audits
        self.candidates = [merge_bottom_k([*self.candidates, r.manual_candidates], k)]
        self.errors.extend(r.errors)


def _sorted_counts(c: Counter[str]) -> dict[str, int]:
    return {k: c[k] for k in sorted(c) if c[k]}


def decide(merged: Merged, plan: Plan, corpus: CorpusConfig) -> tuple[list[SourceVerdict], CheckResult,
                                                                           list[dict[str, str]]]:
    verdicts = []
    for name in sorted(set(plan.source_types) | set(merged.sources)):
        t = merged.sources.get(name, SourceTotals())
        outcome, low, high = judge_rate(t.flagged, t.records, corpus.source_threshold, "<=", corpus.confidence)
        problems = list(plan.problems.get(name, []))
        if t.errors:
            problems.append(f"{t.errors} record(s) could not be read (see the shard results)")
        verdicts.append(SourceVerdict(
            source=name, source_type=plan.source_types.get(name, "unknown"), records=t.records,
            flagged=t.flagged, rate=(t.flagged / t.records) if t.records else None,
            ci_low=low if t.records else None, ci_high=high if t.records else None,
            decision=DECISION[outcome], by_risk=_sorted_counts(t.by_risk), pii=_sorted_counts(t.pii),
            provenance_problems=problems))
    total = sum(t.records for t in merged.sources.values())
    required = math.ceil(corpus.auto_required_share * total)
    outcome, low, high = judge_rate(merged.auto_passed, merged.auto_sampled, corpus.auto_pass_threshold, ">=",
                                    corpus.confidence)
    if merged.auto_sampled < required:
        # a sample under the standard's minimum proves nothing either way
        outcome = "NOT PROVEN"
    automated = CheckResult(
        name="automated", sampled=merged.auto_sampled, required=required, passed=merged.auto_passed,
        rate=(merged.auto_passed / merged.auto_sampled) if merged.auto_sampled else None,
        ci_low=low if merged.auto_sampled else None, ci_high=high if merged.auto_sampled else None,
        threshold=corpus.auto_pass_threshold, verdict=outcome)
    sample = merge_bottom_k(merged.candidates, corpus.manual_sample_size)
    return verdicts, automated, sample


def pending_manual(sampled: int, total: int, corpus: CorpusConfig) -> CheckResult:
    return CheckResult(name="manual", sampled=sampled, required=min(corpus.manual_sample_size, total), passed=0,
                       rate=None, ci_low=None, ci_high=None, threshold=corpus.manual_pass_threshold,
                       verdict="PENDING")


# -- resuming -------------------------------------------------------------------------------------

def _load_done(out: Path, plan: Plan, digest: str) -> dict[str, ShardResult]:
    """The finished shards' results, refusing (one line) those scanned with other settings or from a
    file that changed since, and those no source plans any more."""
    wanted = {s.shard_id: s for s in plan.shards}
    done: dict[str, ShardResult] = {}
    folder = out / SHARDS
    if not folder.is_dir():
        return done
    for stale in folder.glob(".*.tmp"):
        # a result being written when the driver was killed: its shard is simply scanned again
        stale.unlink(missing_ok=True)
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            result = ShardResult.model_validate(data["result"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AuditError(f"{path}: not a shard result ({exc}); rerun with --restart") from None
        shard = wanted.get(result.shard_id)
        if shard is None:
            raise AuditError(f"{path}: shard {result.shard_id!r} is no longer in the sources (a source was "
                             "removed or renamed); rerun with --restart")
        if data.get("settings_digest") != digest:
            raise AuditError(f"{out}: the finished shards were scanned with other settings (corpus section or "
                             "moderation config changed); rerun with --restart to scan again")
        if data.get("shard_digest") != shard_digest(shard, shard_stamp(shard, plan.stamps)):
            raise AuditError(f"{path}: source `{shard.source}` changed since this shard was scanned "
                             f"({shard.url}); rerun with --restart")
        done[result.shard_id] = result
    return done


def _reset(out: Path) -> None:
    """``--restart``: remove what an earlier audit wrote in ``out`` (only hegui's own names)."""
    for name in (SHARDS, CLEANED):
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    for name in (MANIFEST, SUMMARY, SOURCES_CSV, MANUAL_SAMPLE):
        (out / name).unlink(missing_ok=True)


# -- outputs --------------------------------------------------------------------------------------

def sources_csv(verdicts: Sequence[SourceVerdict]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["source", "source_type", "records", "flagged", "rate", "ci_low", "ci_high", "decision",
                "by_risk", "pii", "provenance_problems"])
    for v in verdicts:
        def num(x: float | None) -> str:
            return "" if x is None else f"{x:.6f}"
        w.writerow([v.source, v.source_type, v.records, v.flagged, num(v.rate), num(v.ci_low), num(v.ci_high),
                    v.decision, json.dumps(v.by_risk, ensure_ascii=False), json.dumps(v.pii, ensure_ascii=False),
                    "; ".join(v.provenance_problems)])
    # a BOM so Excel opens the Chinese source names as UTF-8
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def write_manual_sample(out: Path, sample: Sequence[dict[str, str]]) -> None:
    lines = "".join(json.dumps(c, ensure_ascii=False, sort_keys=True) + "\n" for c in sample)
    write_atomic(out / MANUAL_SAMPLE, lines.encode("utf-8"))


def read_manual_sample(out: Path) -> list[dict[str, str]]:
    path = out / MANUAL_SAMPLE
    if not path.is_file():
        raise AuditError(f"{out}: no {MANUAL_SAMPLE} (run `hegui corpus audit … --out {out}` first)")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def export_manual(out: Path, target: Path) -> int:
    """Write the manual sample as the reviewers' spreadsheet (XLSX, or CSV by suffix)."""
    from hegui.corpus import review

    sample = read_manual_sample(out)
    review.export_review(sample, target)
    return len(sample)


def load_summary(out: Path) -> AuditSummary:
    path = out / SUMMARY
    if not path.is_file():
        raise AuditError(f"{out}: no {SUMMARY} (run `hegui corpus audit … --out {out}` first)")
    try:
        return AuditSummary.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise AuditError(f"{path}: not an audit summary ({str(exc).splitlines()[0]})") from None


def save_summary(out: Path, summary: AuditSummary) -> None:
    write_atomic(out / SUMMARY, (summary.model_dump_json(indent=2) + "\n").encode("utf-8"))


def import_manual(out: Path, file: Path, corpus: CorpusConfig) -> AuditSummary:
    """Rate the reviewers' verdicts against 96% and put them in the summary (replacing PENDING)."""
    from hegui.corpus import review

    summary = load_summary(out)
    sample = read_manual_sample(out)
    r = review.import_review(file, sample, threshold=corpus.manual_pass_threshold,
                             required=summary.manual.required, confidence=corpus.confidence)
    summary.manual = CheckResult(name="manual", sampled=r.reviewed, required=summary.manual.required,
                                 passed=r.passed, rate=r.rate, ci_low=r.ci_low, ci_high=r.ci_high,
                                 threshold=r.threshold, verdict=r.outcome)
    summary.outputs["manual_review"] = str(file)
    save_summary(out, summary)
    return summary


# -- the audit ------------------------------------------------------------------------------------

def run_audit(sources_file: Path, out: Path, engine: Engine, settings: Any, *,
              corpus: CorpusConfig | None = None, config_path: Path | None = None, restart: bool = False,
              scan_fn: Callable[[Shard], ShardResult] | None = None,
              on_progress: Callable[[int, int, int], None] | None = None,
              write_report: bool = True) -> AuditSummary:
    """Plan, resume, map, merge and decide; write ``summary.json``, ``sources.csv``, the manual
    sample and the report into ``out``. ``settings`` are the scanner's (see
    :func:`build_scan_settings`); their JSON is the digest a resume checks."""
    corpus = corpus or CorpusConfig()
    if out.exists() and not out.is_dir():
        raise AuditError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    if restart:
        _reset(out)
    plan = plan_audit(sources_file, min_shards=2 * engine.workers)
    settings_json = json.loads(settings.model_dump_json()) if hasattr(settings, "model_dump_json") else settings
    # the output folder is not a scan setting: moving OUT and resuming there must work
    digest_input = {k: v for k, v in dict(settings_json).items() if k not in ("out_dir", "output_dir", "out")}
    config_bytes = config_path.read_bytes() if config_path and config_path.is_file() else None
    digest = settings_digest(digest_input, config_bytes)

    manifest_path = out / MANIFEST
    now = datetime.now(UTC)
    manifest: dict[str, Any] = {"audit_id": f"audit-{now:%Y%m%dT%H%M%SZ}", "started_at": now.isoformat(),
                                "settings_digest": digest, "sources_file": str(sources_file)}
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text(encoding="utf-8"))
        if old.get("settings_digest") != digest:
            raise AuditError(f"{out}: an audit with other settings is there (corpus section or moderation config "
                             "changed); rerun with --restart to scan again, or use another --out")
        manifest = old
    write_json(manifest_path, manifest)

    done = _load_done(out, plan, digest)
    todo = [s for s in plan.shards if s.shard_id not in done]
    merged = Merged()
    k = corpus.manual_sample_size
    for r in done.values():
        merged.add(r, k)
    records = sum(r.records for r in done.values())
    total = len(plan.shards)
    report = on_progress or (lambda d, t, n: None)
    report(len(done), total, records)
    fn = scan_fn or default_scan_fn(settings)
    by_id = {s.shard_id: s for s in plan.shards}
    finished = len(done)
    try:
        for result in engine.map(fn, todo):
            shard = by_id[result.shard_id]
            write_json(out / SHARDS / f"{_file_name(result.shard_id)}.json", {
                "settings_digest": digest,
                "shard_digest": shard_digest(shard, shard_stamp(shard, plan.stamps)),
                "result": json.loads(result.model_dump_json()),
            })
            merged.add(result, k)
            finished += 1
            records += result.records
            report(finished, total, records)
    except UserError as exc:  # a shard's file could not be opened: the registry needs fixing
        raise AuditError(f"{exc}; {finished} of {total} shards are saved in {out / SHARDS}, "
                         "rerun to resume") from None
    except Exception as exc:  # a shard that could not be scanned at all (file gone, bug): stop, keep the rest
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AuditError(f"a shard failed ({type(exc).__name__}: {first}); {finished} of {total} shards are "
                         f"saved in {out / SHARDS}, rerun to resume") from None

    verdicts, automated, sample = decide(merged, plan, corpus)
    total_records = sum(v.records for v in verdicts)
    write_manual_sample(out, sample)
    outputs = {"cleaned": str(out / CLEANED), "summary": str(out / SUMMARY), "sources_csv": str(out / SOURCES_CSV),
               "manual_sample": str(out / MANUAL_SAMPLE)}
    summary = AuditSummary(
        audit_id=manifest["audit_id"], engine=engine.name, started_at=datetime.fromisoformat(manifest["started_at"]),
        finished_at=datetime.now(UTC), records=total_records, bytes_read=sum(t.bytes_read for t in merged.sources.values()) or plan.bytes_total, sources=verdicts,
        automated=automated, manual=pending_manual(len(sample), total_records, corpus), outputs=outputs,
        shards=total, chars=sum(t.chars for t in merged.sources.values()), record_errors=sum(t.errors for t in merged.sources.values()),
        errors=sorted(merged.errors)[:ERRORS_KEPT])
    write_atomic(out / SOURCES_CSV, sources_csv(verdicts))
    try:
        from hegui.corpus import review

        review.export_review(sample, out / MANUAL_EXPORT)
        summary.outputs["manual_export"] = str(out / MANUAL_EXPORT)
    except ImportError:  # pragma: no cover - review.py is part of the package
        pass
    save_summary(out, summary)
    if write_report:
        from hegui.corpus.report import write_audit_report

        font = Path(corpus.report_font) if corpus.report_font else None
        try:
            paths = write_audit_report(out, summary, font, corpus.source_threshold)
        except UserError as exc:
            # no CJK font, say: the audit's verdicts stand; `hegui corpus report OUT` draws it later
            summary.outputs["report_error"] = str(exc)
        else:
            summary.outputs.update(paths)
        save_summary(out, summary)
    return summary


def _file_name(shard_id: str) -> str:
    """Shard ids name files: keep them to safe characters (ids are stable, so the name is too)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in shard_id)
    if safe != shard_id or len(safe) > 150:
        safe = f"{safe[:100]}-{hashlib.sha256(shard_id.encode('utf-8')).hexdigest()[:12]}"
    return safe


def failures(summary: AuditSummary) -> list[str]:
    """What makes ``hegui corpus audit`` exit 1: rejected sources and failed checks."""
    out = [f"source `{v.source}` REJECT: {v.flagged}/{v.records} flagged, interval "
           f"{(v.ci_low or 0):.2%}–{(v.ci_high or 0):.2%} wholly above the threshold"
           for v in summary.sources if v.decision == "REJECT"]
    for check in (summary.automated, summary.manual):
        if check.verdict == "FAIL":
            out.append(f"{check.name} check FAIL: {check.passed}/{check.sampled} passed, "
                       f"below {check.threshold:.0%}")
    return out


def iter_results(out: Path) -> Iterable[ShardResult]:
    """The shard results in ``out`` (for the report and tests)."""
    for path in sorted((out / SHARDS).glob("*.json")):
        yield ShardResult.model_validate(json.loads(path.read_text(encoding="utf-8"))["result"])
