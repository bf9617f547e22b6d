"""Streaming readers: every format × compression, bad records with file:line, byte-range parts that
read each line exactly once, fsspec URLs, and memory bounded on a 200 MB file."""

from __future__ import annotations

import csv
import gzip
import io
import json
import tracemalloc
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from hegui.corpus import readers
from hegui.corpus.readers import BadRecord, Record, read_shard
from hegui.corpus.shards import Shard

TEXTS = [
    "今天天气很好，适合去公园散步。",
    "第二条记录：含有 emoji 😀 和英文 words.",
    'quotes "inside", commas, and a tab\there',
    "长" * 500,
    "最后一条。",
]


def _compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


SUFFIX = {"none": "", "gzip": ".gz", "zstd": ".zst"}


def _jsonl(texts: list[str], field: str = "text") -> bytes:
    def wrap(t: str) -> dict[str, object]:
        obj: dict[str, object] = {"id": 0}
        cur = obj
        parts = field.split(".")
        for p in parts[:-1]:
            cur[p] = {}
            cur = cur[p]  # type: ignore[assignment]
        cur[parts[-1]] = t
        return obj

    return "".join(json.dumps(wrap(t), ensure_ascii=False) + "\n" for t in texts).encode("utf-8")


def _csv(texts: list[str]) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["id", "text"])
    for i, t in enumerate(texts):
        w.writerow([i, t])
    return buf.getvalue().encode("utf-8")


def _texts(items: list[readers.Item]) -> list[str]:
    return [i.text for i in items if isinstance(i, Record)]


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "text"])
def test_every_format_and_compression_reads_the_planted_texts(tmp_path: Path, fmt: str, compression: str) -> None:
    if fmt == "text":
        folder = tmp_path / "txt"
        folder.mkdir()
        members = []
        for i, t in enumerate(TEXTS):
            p = folder / f"{i}.txt{SUFFIX[compression]}"
            p.write_bytes(_compress(t.encode("utf-8"), compression))
            members.append(str(p))
        shard = Shard(shard_id="s", source="src", url=str(folder), format="text", compression=compression,  # type: ignore[arg-type]
                      members=tuple(members), member_names=tuple(f"{i}.txt" for i in range(len(TEXTS))))
    else:
        data = _jsonl(TEXTS) if fmt == "jsonl" else _csv(TEXTS)
        p = tmp_path / f"c.{fmt}{SUFFIX[compression]}"
        p.write_bytes(_compress(data, compression))
        shard = Shard(shard_id="s", source="src", url=str(p), format=fmt, compression=compression,  # type: ignore[arg-type]
                      name=f"c.{fmt}")
    items = list(read_shard(shard))
    assert [i for i in items if isinstance(i, BadRecord)] == []
    assert _texts(items) == TEXTS
    keys = [i.key for i in items if isinstance(i, Record)]
    assert len(set(keys)) == len(TEXTS)
    if fmt == "jsonl":
        assert keys[0] == "src:c.jsonl:1" and keys[-1] == f"src:c.jsonl:{len(TEXTS)}"
    elif fmt == "csv":  # the header is line 1
        assert keys[0] == "src:c.csv:2"
    else:
        assert keys[0] == "src:0.txt"


@pytest.mark.parametrize("codec", ["snappy", "zstd", "none"])
def test_parquet_row_groups_and_nested_field(tmp_path: Path, codec: str) -> None:
    rows = [{"meta": {"content": f"第{i}行"}, "n": i} for i in range(25)]
    p = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pylist(rows), p, row_group_size=10, compression=codec)
    assert pq.ParquetFile(p).metadata.num_row_groups == 3
    whole = list(read_shard(Shard(shard_id="s", source="src", url=str(p), format="parquet",
                                  text_field="meta.content", name="c.parquet")))
    assert _texts(whole) == [f"第{i}行" for i in range(25)]
    # The second row group alone: rows 10..19, keyed by their row index in the whole file.
    part = [i for i in read_shard(Shard(shard_id="s2", source="src", url=str(p), format="parquet",
                                        text_field="meta.content", name="c.parquet", start=1, stop=2))
            if isinstance(i, Record)]
    assert [r.text for r in part] == [f"第{i}行" for i in range(10, 20)]
    assert part[0].key == "src:c.parquet:10"
    assert part[0].fields == {"meta": {"content": "第10行"}}  # only the text's column is read


def test_nested_jsonl_field(tmp_path: Path) -> None:
    p = tmp_path / "n.jsonl"
    p.write_bytes(_jsonl(TEXTS, "meta.content"))
    items = list(read_shard(Shard(shard_id="s", source="src", url=str(p), format="jsonl", text_field="meta.content")))
    assert _texts(items) == TEXTS


def test_bad_records_are_reported_with_file_and_line_and_reading_goes_on(tmp_path: Path) -> None:
    lines = [
        '{"text": "一"}',
        '{"text": "二"',          # 2: invalid JSON
        "",                       # 3: blank, skipped
        '{"body": "三"}',         # 4: no field
        '{"text": 4}',            # 5: not a string
        '["text"]',               # 6: not an object
        '{"text": "七"}',
    ]
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    items = list(read_shard(Shard(shard_id="s", source="src", url=str(p), format="jsonl", name="bad.jsonl")))
    bad = {i.where: i.reason for i in items if isinstance(i, BadRecord)}
    assert set(bad) == {"bad.jsonl:2", "bad.jsonl:4", "bad.jsonl:5", "bad.jsonl:6"}
    assert "invalid JSON" in bad["bad.jsonl:2"]
    assert "no field 'text'" in bad["bad.jsonl:4"]
    assert "not a string" in bad["bad.jsonl:5"]
    assert "not an object" in bad["bad.jsonl:6"]
    assert _texts(items) == ["一", "七"]
    assert [i.key for i in items if isinstance(i, Record)] == ["src:bad.jsonl:1", "src:bad.jsonl:7"]


def test_bad_csv_rows_and_missing_column(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("id,text\n1,好\n2,多,一列\n3,也好\n", encoding="utf-8")
    items = list(read_shard(Shard(shard_id="s", source="src", url=str(p), format="csv", name="bad.csv")))
    assert [str(i) for i in items if isinstance(i, BadRecord)] == ["bad.csv:3: 3 fields where the header has 2"]
    assert _texts(items) == ["好", "也好"]
    items = list(read_shard(Shard(shard_id="s", source="src", url=str(p), format="csv", name="bad.csv",
                                  text_field="body")))
    assert len(items) == 1 and isinstance(items[0], BadRecord) and "no column 'body'" in items[0].reason


def test_over_long_line_is_one_bad_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "MAX_RECORD_BYTES", 64)
    p = tmp_path / "long.jsonl"
    p.write_text('{"text": "短"}\n{"text": "' + "x" * 500 + '"}\n{"text": "尾"}\n', encoding="utf-8")
    for stop in (None, p.stat().st_size):
        items = list(read_shard(Shard(shard_id="s", source="src", url=str(p), format="jsonl", name="long.jsonl",
                                      stop=stop)))
        bad = [i for i in items if isinstance(i, BadRecord)]
        assert len(bad) == 1 and "longer than 64 bytes" in bad[0].reason
        assert _texts(items) == ["短", "尾"]


def _line_starts(data: bytes) -> list[int]:
    starts = [0]
    for i, b in enumerate(data):
        if b == 0x0A and i + 1 < len(data):
            starts.append(i + 1)
    return starts


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_byte_range_parts_read_every_line_exactly_once(tmp_path: Path, fmt: str) -> None:
    texts = [f"记录{i}" + "字" * (i % 7) for i in range(40)]
    data = _jsonl(texts) if fmt == "jsonl" else _csv(texts)
    p = tmp_path / f"r.{fmt}"
    p.write_bytes(data)
    starts = _line_starts(data)
    # Cuts at line starts, one byte either side of them, inside multibyte characters, and at the end.
    cuts = sorted({c for s in starts[1:] for c in (s - 1, s, s + 1)} | {len(data) // 3, len(data) - 1})
    for cut in cuts:
        got: list[str] = []
        offsets: list[str] = []
        for start, stop in ((0, cut), (cut, len(data))):
            for item in read_shard(Shard(shard_id="s", source="src", url=str(p), format=fmt,  # type: ignore[arg-type]
                                         name=p.name, start=start, stop=stop)):
                assert isinstance(item, Record), f"cut {cut}: {item}"
                got.append(item.text)
                offsets.append(item.key.rsplit("@", 1)[1])
        assert got == texts, f"cut at byte {cut}"
        # Keys are the byte offsets of the lines, whatever the cut (so sampling ignores the split).
        first_line = 1 if fmt == "csv" else 0
        assert offsets == [str(s) for s in starts[first_line:]]


def test_fsspec_urls_are_read_like_paths() -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/h5a-corpus/m.jsonl.zst", _compress(_jsonl(TEXTS), "zstd"))
    try:
        items = list(read_shard(Shard(shard_id="s", source="src", url="memory://h5a-corpus/m.jsonl.zst",
                                      format="jsonl", compression="zstd")))
        assert _texts(items) == TEXTS
    finally:
        fs.rm("/h5a-corpus", recursive=True)


def test_reading_a_200_mb_jsonl_stays_in_bounded_memory(tmp_path: Path) -> None:
    line = (json.dumps({"text": "这是一条重复的训练语料。" * 300}, ensure_ascii=False) + "\n").encode("utf-8")
    p = tmp_path / "big.jsonl"
    block = line * max(1, (1 << 20) // len(line))
    target = 200 * 1024 * 1024
    with p.open("wb") as fh:
        written = 0
        while written < target:
            fh.write(block)
            written += len(block)
    expected = written // len(line)
    tracemalloc.start()
    try:
        n = 0
        for item in read_shard(Shard(shard_id="s", source="src", url=str(p), format="jsonl")):
            assert isinstance(item, Record)
            n += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == expected
    # Two 1 MiB buffers, a line and its parsed object: far below the file's 200 MB.
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_csv_quoted_line_breaks_keep_the_row_line_numbers(tmp_path: Path) -> None:
    p = tmp_path / "q.csv"
    p.write_text('id,text\n1,"两行\n的记录"\n2,单行\n', encoding="utf-8")
    items = list(read_shard(Shard(shard_id="s", source="src", url=str(p), format="csv", name="q.csv")))
    assert [(i.key, i.text) for i in items if isinstance(i, Record)] == [
        ("src:q.csv:2", "两行\n的记录"), ("src:q.csv:4", "单行")]


def test_a_broken_text_file_is_one_bad_record(tmp_path: Path) -> None:
    good, bad = tmp_path / "a.txt.zst", tmp_path / "b.txt.zst"
    good.write_bytes(_compress("好".encode(), "zstd"))
    bad.write_bytes(b"\x28\xb5\x2f\xfd garbage")
    items = list(read_shard(Shard(shard_id="s", source="src", url=str(tmp_path), format="text", compression="zstd",
                                  members=(str(bad), str(good)), member_names=("b.txt.zst", "a.txt.zst"))))
    assert isinstance(items[0], BadRecord) and items[0].where == "b.txt.zst"
    assert items[0].reason.startswith("unreadable")
    assert _texts(items) == ["好"]
