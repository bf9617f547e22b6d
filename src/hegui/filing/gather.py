"""Gathering :class:`~hegui.filing.inputs.FilingInputs` from the command line's options."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from hegui.filing import inputs as fi

if TYPE_CHECKING:
    from hegui.config import HeguiConfig
    from hegui.ledger.store import Ledger


def gather(cfg: HeguiConfig, *, ledger: Ledger | None, run: Path | None = None, annotation: Path | None = None,
           corpus_audit: Path | None = None, rules: list[Path] | None = None, banks: list[Path] | None = None,
           now: datetime | None = None) -> fi.FilingInputs:
    inp = fi.FilingInputs(cfg=cfg, generated_at=now or datetime.now(UTC))
    if run is not None:
        inp.run = fi.RunData.read(run)
    if annotation is not None:
        inp.annotation, inp.annotation_source = fi.read_annotation(annotation), str(annotation)
    elif ledger is not None:
        summary = fi.annotation_from_ledger(ledger, cfg.annotation)
        if summary is not None:
            inp.annotation, inp.annotation_source = summary, "ledger"
    if corpus_audit is not None:
        inp.audit, inp.audit_dir = fi.read_audit(corpus_audit), corpus_audit
    inp.rules = fi.read_rules(rules or [])
    if not inp.rules and ledger is not None and inp.annotation is not None:
        inp.rules = fi.rules_from_ledger(ledger, inp.annotation)
    inp.banks = fi.bank_info(banks or [], inp.run)
    if cfg.lexicon.enabled:
        inp.lexicon, inp.lexicon_rows = fi.lexicon_inputs(cfg)
    inp.detectors = fi.detector_summary(cfg)
    inp.policy = fi.policy_summary(cfg)
    inp.agreements = fi.agreements(ledger)
    if ledger is not None:
        inp.ledger = fi.ledger_facts(ledger)
    return inp
