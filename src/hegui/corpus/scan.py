"""One shard through the moderation engine: counts, samples and the cleaned copy.

:func:`scan_shard` is what every engine maps over the planned shards (a top-level function of
picklable arguments, so process pools, Dask and Ray can ship it). Each process builds its
:class:`~hegui.moderation.Moderator` once and reuses it for every shard with the same settings.

Records are checked in the ``input`` direction by default: a training record is third-party text
coming *into* the provider's system, which is what the input policy is written for (the output
policy judges what the model says to a user, and may act differently on, say, a refusal that repeats
a sensitive word). ``ScanSettings.direction`` can say ``output`` for a corpus of model answers.

A record is **flagged** when its verdict does not pass (``refuse`` or ``block``) because of a content
risk (``A1a`` … ``A5b``). Personal information alone does not flag a record: it is masked in the
cleaned copy and counted by type. A record a detector failed on is not counted as checked: it is an
error entry, left out of the cleaned copy and of the samples (fail closed).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hegui.corpus import sampling
from hegui.corpus.clean import CleanedFormat, CleanedWriter, cleaned_path
from hegui.corpus.readers import BadRecord, read_shard
from hegui.corpus.shards import Shard, ShardResult
from hegui.errors import UserError
from hegui.moderation import Moderator
from hegui.taxonomy import SIGNALS


class ScanSettings(BaseModel):
    """What a scan needs besides the shard; the same value goes to every worker."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    config_path: str | None = None
    """``hegui.yaml`` whose moderation sections (lexicon, pii, classifier, guard, policy …) the
    scan uses; unset means the embedded defaults."""
    moderation: dict[str, Any] | None = None
    """The config sections inline (as in ``hegui.yaml``), instead of ``config_path``: for engines
    whose workers cannot see the driver's files."""
    direction: Literal["input", "output"] = "input"
    scene: str = "default"
    seed: str = "hegui"
    """Sampling seed: the same seed picks the same records on every engine and run."""
    auto_rate: float = Field(default=sampling.DEFAULT_AUTO_RATE, gt=0, le=1)
    """Share of records in the automated-check sample (the standard asks for ≥ 10%)."""
    manual_k: int = Field(default=sampling.DEFAULT_MANUAL_K, ge=0)
    """Manual-review candidates each shard keeps (bottom-k on the record hash)."""
    excerpt_chars: int = Field(default=300, ge=1)
    """Length of the excerpt of a manual-review candidate (personal information masked)."""
    output_dir: str | None = None
    """Audit output folder; the cleaned copy goes to ``OUT/cleaned/<source>/<shard_id>.<fmt>``."""
    cleaned_format: CleanedFormat = "jsonl"
    max_error_lines: int = Field(default=1000, ge=0)
    """Bad records listed per shard (all are counted in ``error_count``)."""
    skip_detectors: tuple[str, ...] = ("injection",)
    """Detectors the scan does not run. Prompt injection (``JB``) is a signal, not a content risk, so
    it never flags a training record; skipping it saves about a fifth of the scan's time."""

    def cache_key(self) -> str:
        return json.dumps([self.config_path, self.moderation, sorted(self.skip_detectors)], sort_keys=True,
                          default=str)


_MODERATORS: dict[str, Moderator] = {}


def moderator_for(settings: ScanSettings) -> Moderator:
    """The process's Moderator for these settings (built once: lexicons and models load slowly)."""
    key = settings.cache_key()
    mod = _MODERATORS.get(key)
    if mod is None:
        from hegui.config import HeguiConfig, load_config

        if settings.config_path is not None and settings.moderation is not None:
            raise UserError("scan settings: give config_path or moderation, not both")
        if settings.moderation is not None:
            cfg = HeguiConfig.model_validate(settings.moderation)
        else:
            cfg = load_config(settings.config_path)
        from hegui.detectors.registry import factories

        unknown = [n for n in settings.skip_detectors if n not in factories()]
        if unknown:
            raise UserError(f"scan settings: skip_detectors: unknown detector {unknown[0]!r} "
                            f"(available: {', '.join(factories())})")
        only = [n for n in factories() if n not in settings.skip_detectors]
        mod = _MODERATORS[key] = Moderator.from_config(cfg, only=only)
    return mod


def scan_shard(shard: Shard, settings: ScanSettings) -> ShardResult:
    """Read every record of ``shard``, moderate it, count, sample and write the cleaned copy."""
    t0 = time.perf_counter()
    mod = moderator_for(settings)
    mod._check_scene(settings.scene)
    reader = read_shard(shard)
    records = chars = flagged = auto_sampled = auto_passed = error_count = 0
    by_risk: Counter[str] = Counter()
    pii: Counter[str] = Counter()
    errors: list[str] = []
    manual = sampling.BottomK(settings.manual_k)
    threshold = int(settings.auto_rate * sampling.HASH_SPACE)
    writer: CleanedWriter | None = None
    if settings.output_dir is not None and settings.cleaned_format != "none":
        path = cleaned_path(settings.output_dir, shard.source, shard.shard_id, settings.cleaned_format)
        writer = CleanedWriter(path, settings.cleaned_format, shard.text_field)

    def error(msg: str) -> None:
        nonlocal error_count
        error_count += 1
        if len(errors) < settings.max_error_lines:
            errors.append(msg)

    seen_any = False
    try:
        items = iter(reader)
        while True:
            try:
                item = next(items)
            except StopIteration:
                break
            except Exception as exc:  # a corrupt stream, a vanished file: stop this shard here
                if not seen_any:
                    raise UserError(f"{shard.url}: cannot read ({exc.__class__.__name__}: {exc})") from None
                error(f"{shard.url}: unreadable after {records + error_count} records "
                      f"({exc.__class__.__name__}: {exc})")
                break
            seen_any = True
            if isinstance(item, BadRecord):
                error(str(item))
                continue
            verdict = mod.check(item.text, settings.direction, settings.scene)
            if verdict.failed_detectors:
                error(f"{item.key}: not checked (detector failed: {', '.join(verdict.failed_detectors)})")
                continue
            records += 1
            chars += len(item.text)
            content = {f.risk for f in verdict.findings if f.risk not in SIGNALS}
            is_flagged = bool(content) and not verdict.allowed
            for f in verdict.findings:
                if f.risk == "PI":
                    pii[f.kind or f.evidence_id] += 1
            if is_flagged:
                flagged += 1
                by_risk.update(content)
            h = sampling.record_hash(settings.seed, item.key)
            if h < threshold:
                auto_sampled += 1
                auto_passed += not is_flagged
            if manual.would_keep(h):
                manual.offer(h, {
                    "key": item.key,
                    "source": shard.source,
                    "excerpt": sampling.excerpt(verdict.redacted, settings.excerpt_chars),
                    "rank": sampling.rank(h),
                    "flagged": "1" if is_flagged else "0",
                })
            if writer is not None and not is_flagged:
                writer.write(item, verdict.redacted)
        out: Path | None = writer.commit() if writer is not None else None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return ShardResult(
        shard_id=shard.shard_id,
        source=shard.source,
        records=records,
        chars=chars,
        flagged=flagged,
        by_risk=dict(sorted(by_risk.items())),
        pii=dict(sorted(pii.items())),
        auto_sampled=auto_sampled,
        auto_passed=auto_passed,
        manual_candidates=manual.items(),
        cleaned_path=str(out) if out is not None else None,
        errors=errors,
        error_count=error_count,
        bytes_read=reader.bytes_read,
        seconds=round(time.perf_counter() - t0, 3),
    )
