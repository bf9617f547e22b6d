"""The filing assessment (Art. 17; GB/T 45654 §8–9): question banks, runs against a model, judges
and metrics against the standard's thresholds.

- :mod:`~hegui.assessment.bank`: the bank item, its kinds and the non-refusal topics;
- :mod:`~hegui.assessment.bank_io`: reading and writing banks as XLSX, CSV and JSONL;
- :mod:`~hegui.assessment.coverage`: ``hegui bank check``, sizes and per-risk minimums;
- :mod:`~hegui.assessment.expand`: growing a bank from seeds by templates or a model;
- :mod:`~hegui.assessment.results`: the run folder (answers, judgements, metrics) other parts read;
- :mod:`~hegui.assessment.runner`: asking the model, resumable;
- :mod:`~hegui.assessment.judges`: refusal, keyword, classifier, model and manual judges;
- :mod:`~hegui.assessment.metrics`: rates, Wilson intervals and PASS / FAIL / NOT PROVEN.
"""
