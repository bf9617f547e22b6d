"""The training-data audit (Art. 7; GB/T 45654 §5, §9): sources and their provenance, streaming
readers, a scan of every record through the moderation engine, the 5% rule per source, sampling for
the automated and the manual checks, a cleaned copy and the audit report.

- :mod:`~hegui.corpus.sources`: the source registry (YAML/CSV) and ``hegui corpus sources check``;
- :mod:`~hegui.corpus.readers`: memory-bounded readers, shards as the unit of work;
- :mod:`~hegui.corpus.shards`: a shard and what scanning it yields (the engines' only contract);
- :mod:`~hegui.corpus.scan`: one shard through the moderation engine;
- :mod:`~hegui.corpus.engines`: local processes or a distributed engine mapping ``scan_shard``;
- :mod:`~hegui.corpus.audit`: planning, resuming, merging, deciding;
- :mod:`~hegui.corpus.summary`: the audit summary the filing package reads.
"""
