"""Streaming readers: one shard's records, memory bounded whatever the file's size.

Every reader opens its file through fsspec (so ``s3://``, ``gs://`` and ``file://`` work the same as
a local path), decompresses gzip or zstd as a stream, and yields :class:`Record` values one at a
time, or a :class:`BadRecord` for a record it could not read (invalid JSON, a missing or non-string
text field, an over-long line). A bad record is reported and counted by the scanner, never fatal
for the shard, never silently skipped.

Record keys are stable, so sampling picks the same records on every engine and a resumed audit
agrees with the first run: ``source:file:line`` for JSONL/CSV files read whole (CSV counts the
header as line 1), ``source:file:@offset`` (the byte offset of the record's first line) for files
split into byte-range parts, ``source:file:row`` for Parquet rows and ``source:file`` for text files.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import fsspec

from hegui.corpus.shards import Compression, Shard

# Lines or text files longer than this are reported as bad records instead of being held in memory:
# a corpus record of 16 MiB is a broken file (a missing newline), not a training example.
MAX_RECORD_BYTES = 16 * 1024 * 1024
# Rows per Parquet batch: bounded memory with little per-batch overhead.
PARQUET_BATCH_ROWS = 2048
# Buffer of the binary stream under the text decoders.
READ_BUFFER = 1 << 20


@dataclass(frozen=True, slots=True)
class Record:
    key: str
    text: str
    fields: dict[str, Any] | None = None
    """The whole record (JSON object, CSV row) so the cleaned copy keeps its other fields; for
    Parquet only the text's column is read; ``None`` for text files."""


@dataclass(frozen=True, slots=True)
class BadRecord:
    where: str
    """``file:line`` (or ``file:@offset``, ``file:row N``) of the record."""
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


Item = Record | BadRecord


class CountingReader(io.RawIOBase):
    """Counts the bytes read from the underlying (compressed) file, for ``bytes_read``."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.raw.read(len(b))
        n = len(data)
        b[:n] = data
        self.count += n
        return n


def get_field(obj: Any, path: str) -> Any:
    """The value at a dotted path (``meta.content``) in nested mappings; ``KeyError`` if absent."""
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(path)
        cur = cur[part]
    return cur


def set_field(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``obj`` with the value at the dotted path replaced (copies only the path's dicts)."""
    head, _, rest = path.partition(".")
    out = dict(obj)
    out[head] = set_field(out[head], rest, value) if rest else value
    return out


def _decompressed(raw: IO[bytes], compression: Compression) -> IO[bytes]:
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if compression == "zstd":
        import zstandard

        # read_across_frames: files written by pzstd or concatenated shards hold several frames.
        stream = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return io.BufferedReader(stream, READ_BUFFER)
    return raw


class ShardReader:
    """Reads one shard; ``bytes_read`` afterwards is how many bytes it took from storage."""

    def __init__(self, shard: Shard, display: str | None = None) -> None:
        self.shard = shard
        self.display = display or shard.name or shard.url
        self._counters: list[CountingReader] = []
        self._consumed: int | None = None

    @property
    def bytes_read(self) -> int:
        """Bytes this shard covers: for a byte-range part, the bytes of its lines (the buffer reads
        ahead past the part's end, which the next part counts); else what came from storage."""
        if self._consumed is not None:
            return self._consumed
        return sum(c.count for c in self._counters)

    def _open(self, url: str) -> tuple[Any, CountingReader]:
        fobj = fsspec.open(url, "rb").open()
        counter = CountingReader(fobj)
        self._counters.append(counter)
        return fobj, counter

    def __iter__(self) -> Iterator[Item]:
        fmt = self.shard.format
        if fmt == "jsonl":
            return self._jsonl()
        if fmt == "csv":
            return self._csv()
        if fmt == "parquet":
            return self._parquet()
        return self._text()

    # -- line formats ---------------------------------------------------------------------------

    def _lines(self) -> Iterator[tuple[str, bytes | None]]:
        """``(where, line)`` for each line of the shard (``None`` for an over-long line)."""
        s = self.shard
        fobj, counter = self._open(s.url)
        try:
            if s.stop is None:
                stream = _decompressed(io.BufferedReader(counter, READ_BUFFER), s.compression)
                lineno = 0
                while True:
                    line, size = _read_line(stream)
                    if not size:
                        return
                    lineno += 1
                    yield f"{self.display}:{lineno}", line
            else:
                yield from self._range_lines(fobj, counter, s.start, s.stop)
        finally:
            fobj.close()

    def _range_lines(self, fobj: Any, counter: CountingReader, start: int,
                     stop: int) -> Iterator[tuple[str, bytes | None]]:
        """Lines that *start* in ``[start, stop)``: a line straddling ``stop`` belongs to this part,
        the partial line at ``start`` to the previous part (the usual split rule, so every line is
        read exactly once whatever the part boundaries)."""
        pos = start
        if start > 0:
            fobj.seek(start - 1)
        stream = io.BufferedReader(counter, READ_BUFFER)
        if start > 0:
            # The byte before `start` ends the previous part's last line if it is a newline;
            # otherwise skip the rest of the line that began in the previous part.
            pos = start - 1
            while True:
                chunk = stream.readline(READ_BUFFER)
                pos += len(chunk)
                if not chunk or chunk.endswith(b"\n"):
                    break
        first = pos
        while pos < stop:
            line, size = _read_line(stream)
            if not size:
                break
            yield f"{self.display}:@{pos}", line
            pos += size
        self._consumed = pos - first

    def _jsonl(self) -> Iterator[Item]:
        field = self.shard.text_field
        for where, line in self._lines():
            if line is None:
                yield BadRecord(where, f"line longer than {MAX_RECORD_BYTES} bytes")
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except UnicodeDecodeError as exc:
                yield BadRecord(where, f"not UTF-8 ({exc.reason} at byte {exc.start})")
                continue
            except json.JSONDecodeError as exc:
                yield BadRecord(where, f"invalid JSON ({exc.msg} at column {exc.colno})")
                continue
            yield self._record(where, obj, field)

    def _record(self, where: str, obj: Any, field: str) -> Item:
        if not isinstance(obj, dict):
            return BadRecord(where, f"not an object (a JSON {type(obj).__name__})")
        try:
            text = get_field(obj, field)
        except KeyError:
            return BadRecord(where, f"no field {field!r}")
        if not isinstance(text, str):
            return BadRecord(where, f"field {field!r} is not a string ({type(text).__name__})")
        return Record(f"{self.shard.source}:{where}", text, obj)

    def _csv(self) -> Iterator[Item]:
        s = self.shard
        field = s.text_field
        header: list[str] | None = None
        if s.stop is not None and s.start > 0:
            header = self._csv_header()
        feeder = _LineFeeder(self._lines())
        reader = csv.reader(feeder)
        if header is None:
            try:
                header = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                yield BadRecord(feeder.row_where or self.display, f"unreadable CSV header ({exc})")
                return
        if field not in header:
            yield BadRecord(f"{self.display}:1", f"no column {field!r} (columns: {', '.join(header)})")
            return
        idx = header.index(field)
        while True:
            feeder.start_row()
            try:
                row = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                yield BadRecord(feeder.row_where or self.display, f"invalid CSV ({exc})")
                continue
            where = feeder.row_where or self.display
            if feeder.too_long:
                yield BadRecord(where, f"line longer than {MAX_RECORD_BYTES} bytes")
                continue
            if not row:
                continue
            if len(row) != len(header):
                yield BadRecord(where, f"{len(row)} fields where the header has {len(header)}")
                continue
            yield Record(f"{s.source}:{where}", row[idx], dict(zip(header, row, strict=True)))

    def _csv_header(self) -> list[str]:
        s = self.shard
        with fsspec.open(s.url, "rb") as f:
            first = f.readline(MAX_RECORD_BYTES)
        return next(csv.reader([first.decode("utf-8-sig")]), [])

    # -- Parquet --------------------------------------------------------------------------------

    def _parquet(self) -> Iterator[Item]:
        import pyarrow.parquet as pq

        s = self.shard
        field = s.text_field
        column = field.split(".")[0]
        fobj, _ = self._open(s.url)
        try:
            pf = pq.ParquetFile(fobj)
            md = pf.metadata
            groups = list(range(s.start, s.stop if s.stop is not None else md.num_row_groups))
            if column not in pf.schema_arrow.names:
                yield BadRecord(f"{self.display}", f"no column {column!r} (columns: {', '.join(pf.schema_arrow.names)})")
                return
            row = sum(md.row_group(i).num_rows for i in range(groups[0])) if groups else 0
            # Only the text's column: corpora often carry wide columns (embeddings, HTML) the scan
            # does not need, and Parquet can skip them on disk.
            for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=groups, columns=[column]):
                for obj in batch.to_pylist():
                    where = f"{self.display}:{row}"
                    row += 1
                    yield self._record(where, obj, field)
            # pyarrow reads through its own buffers (and the footer); the row groups' compressed
            # column chunks are what this part took from storage.
            self._consumed = sum(
                chunk.total_compressed_size
                for chunk in (md.row_group(i).column(c) for i in groups for c in range(md.num_columns))
                if chunk.path_in_schema.split(".")[0] == column)
        finally:
            fobj.close()

    # -- text files -----------------------------------------------------------------------------

    def _text(self) -> Iterator[Item]:
        s = self.shard
        names = s.member_names if len(s.member_names) == len(s.members) else s.members
        for member, display in zip(s.members, names, strict=True) if s.members else ((s.url, self.display),):
            fobj = None
            try:
                fobj, counter = self._open(member)
                stream = _decompressed(io.BufferedReader(counter, READ_BUFFER), s.compression)
                data = stream.read(MAX_RECORD_BYTES + 1)
            except Exception as exc:  # one broken file (bad gzip/zstd, gone) is one bad record
                yield BadRecord(display, f"unreadable ({exc.__class__.__name__}: {exc})")
                continue
            finally:
                if fobj is not None:
                    fobj.close()
            if len(data) > MAX_RECORD_BYTES:
                yield BadRecord(display, f"file longer than {MAX_RECORD_BYTES} bytes")
                continue
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                yield BadRecord(display, f"not UTF-8 ({exc.reason} at byte {exc.start})")
                continue
            yield Record(f"{s.source}:{display}", text, None)


def _read_line(stream: IO[bytes]) -> tuple[bytes | None, int]:
    """The next line and its size in bytes; an over-long line is skipped without being held and
    comes back as ``None`` (its size still counted, so byte offsets stay right)."""
    line = stream.readline(MAX_RECORD_BYTES + 1)
    if len(line) <= MAX_RECORD_BYTES or line.endswith(b"\n"):
        return line, len(line)
    size = len(line)
    while True:
        chunk = stream.readline(READ_BUFFER)
        size += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return None, size


class _LineFeeder:
    """Feeds decoded lines to ``csv.reader`` and remembers where the current row began."""

    def __init__(self, lines: Iterable[tuple[str, bytes | None]]) -> None:
        self._lines = iter(lines)
        self.row_where: str | None = None
        self.too_long = False
        self._first = True
        self._fresh = True

    def start_row(self) -> None:
        self._fresh = True
        self.too_long = False

    def __iter__(self) -> _LineFeeder:
        return self

    def __next__(self) -> str:
        where, line = next(self._lines)
        if self._fresh:
            self.row_where = where
            self._fresh = False
        if line is None:
            self.too_long = True
            return "\n"
        text = line.decode("utf-8-sig" if self._first else "utf-8")
        self._first = False
        return text


def read_shard(shard: Shard, display: str | None = None) -> ShardReader:
    """The records of ``shard`` (iterate it); ``display`` is how files are named in keys and errors."""
    return ShardReader(shard, display)
