"""The cleaned copy of a shard: flagged records dropped, personal information masked.

Written per shard to ``OUT/cleaned/<source>/<shard_id>.jsonl`` (or ``.parquet``), through a temp file
in the same folder renamed into place, so a crash never leaves a half-written shard that a resumed
audit would take for finished. JSONL keeps each JSONL/CSV record's other fields (the text field
replaced by the masked text; Parquet sources are read by their text column only); Parquet holds
``key`` and ``text`` columns, since records of one source need not share a schema.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from hegui.corpus.readers import Record, set_field

CleanedFormat = Literal["jsonl", "parquet", "none"]
# Rows buffered before a Parquet row group is written: bounded memory, reasonable group size.
PARQUET_FLUSH_ROWS = 10_000
_UNSAFE = re.compile(r"[^\w.\-]+")


def safe_name(name: str) -> str:
    """A file or folder name from a source name or shard id (no separators, no surprises)."""
    return _UNSAFE.sub("_", name).strip("._") or "_"


def cleaned_path(out_dir: str | Path, source: str, shard_id: str, fmt: CleanedFormat) -> Path:
    """``OUT/cleaned/<source>/<shard_id>.<fmt>``, the id made file-safe plus a short digest of it, so
    two ids that make the same safe name (``a/b`` and ``a_b``) still get two files."""
    digest = hashlib.blake2b(shard_id.encode("utf-8"), digest_size=4).hexdigest()
    return Path(out_dir) / "cleaned" / safe_name(source) / f"{safe_name(shard_id)}-{digest}.{fmt}"


class CleanedWriter:
    """Write the kept records of one shard; ``commit`` renames the temp file into place."""

    def __init__(self, path: Path, fmt: CleanedFormat, text_field: str) -> None:
        self.path = path
        self.fmt = fmt
        self.text_field = text_field
        self.written = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        self._fh: Any = None
        self._rows: list[dict[str, str]] = []
        self._pq: Any = None
        if fmt == "jsonl":
            self._fh = open(self._tmp, "w", encoding="utf-8")  # closed in commit/abort

    def write(self, record: Record, masked_text: str) -> None:
        self.written += 1
        if self.fmt == "jsonl":
            obj = set_field(record.fields, self.text_field, masked_text) if record.fields is not None \
                else {"text": masked_text}
            # default=str: a CSV or JSON record holds only JSON types, but a plug-in reader's
            # record may hold dates or decimals; a cleaned copy must not fail on them.
            self._fh.write(json.dumps(obj, ensure_ascii=False, default=str))
            self._fh.write("\n")
        else:
            self._rows.append({"key": record.key, "text": masked_text})
            if len(self._rows) >= PARQUET_FLUSH_ROWS:
                self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([("key", pa.string()), ("text", pa.string())])
        if self._pq is None:
            self._pq = pq.ParquetWriter(str(self._tmp), schema, compression="zstd")
        if self._rows:
            self._pq.write_table(pa.Table.from_pylist(self._rows, schema=schema))
            self._rows = []

    def commit(self) -> Path:
        if self.fmt == "jsonl":
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        else:
            self._flush()
            self._pq.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            if self._fh is not None:
                self._fh.close()
            if self._pq is not None:
                self._pq.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> CleanedWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.abort()
