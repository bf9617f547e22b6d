"""scan_shard over planted corpora: counts, risks, PII, the cleaned copy, samples, bad records."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from hegui.corpus import sampling
from hegui.corpus.scan import ScanSettings, moderator_for, scan_shard
from hegui.corpus.shards import Shard, ShardResult
from hegui.errors import UserError

A1H_WORD = "黑彩平台"      # refused by the starter policy (A.1 risks are refused)
A1A_WORD = "颠覆测试词"    # blocked (A1a–A1d block)
A3A_WORD = "地域测试词"    # A.3 is only flagged for review: the record passes
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def resident_id(i: int) -> str:
    """A valid 18-digit 居民身份证号码 (GB 11643 checksum), different for each ``i``."""
    born = dt.date(1970, 1, 1) + dt.timedelta(days=37 * i)
    body = f"110105{born:%Y%m%d}{i % 1000:03d}"
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, WEIGHTS, strict=True)) % 11]
    return body + check


@dataclass
class Expected:
    records: int
    flagged: int
    by_risk: dict[str, int]
    pii: dict[str, int]
    ids: list[str]
    chars: int
    both: int
    """Records with a refused word and an ID number (dropped from the cleaned copy, PII counted)."""


def planted() -> tuple[list[str], Expected]:
    """Texts with known content and the counts a scan must find (computed here, by construction)."""
    texts: list[str] = []
    ids: list[str] = []
    n = {"clean": 0, "a1h": 0, "a1a": 0, "a3a": 0, "id": 0, "both": 0}
    for i in range(400):
        kind = i % 10
        if kind == 1:
            texts.append(f"欢迎访问{A1H_WORD}，注册就送。第{i}条")
            n["a1h"] += 1
        elif kind == 2 and i % 20 == 2:
            texts.append(f"这里有{A1A_WORD}的讨论，第{i}条")
            n["a1a"] += 1
        elif kind == 3:
            texts.append(f"一段{A3A_WORD}的评论，第{i}条")
            n["a3a"] += 1
        elif kind == 4:
            ids.append(resident_id(i))
            texts.append(f"联系人身份证号码{ids[-1]}，第{i}条")
            n["id"] += 1
        elif kind == 5 and i % 20 == 5:
            ids.append(resident_id(i))
            texts.append(f"{A1H_WORD}会员{ids[-1]}，第{i}条")
            n["both"] += 1
        else:
            texts.append(f"今天的天气很好，我们去公园散步。第{i}条")
            n["clean"] += 1
    expected = Expected(
        records=len(texts),
        flagged=n["a1h"] + n["a1a"] + n["both"],
        by_risk={"A1a": n["a1a"], "A1h": n["a1h"] + n["both"]},
        pii={"CN_RESIDENT_ID": n["id"] + n["both"]},
        ids=ids,
        chars=sum(len(t) for t in texts),
        both=n["both"],
    )
    return texts, expected


@pytest.fixture(scope="module")
def moderation(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A moderation config whose lexicon is the test's own words, so every hit is known here."""
    d = tmp_path_factory.mktemp("lex")
    files = []
    for word, risk in ((A1H_WORD, "A1h"), (A1A_WORD, "A1a"), (A3A_WORD, "A3a")):
        p = d / f"{risk}.txt"
        p.write_text(word + "\n", encoding="utf-8")
        files.append({"path": str(p), "risk": risk})
    return {"lexicon": {"builtin": False, "files": files}, "classifier": {"enabled": False},
            "injection": {"enabled": False}}


def write_corpus(folder: Path, texts: list[str], fmt: str) -> Shard:
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl.gz":
        p = folder / "c.jsonl.gz"
        p.write_bytes(gzip.compress("".join(json.dumps({"text": t, "n": i}, ensure_ascii=False) + "\n"
                                            for i, t in enumerate(texts)).encode("utf-8")))
        return Shard(shard_id="src:c.jsonl.gz", source="src", url=str(p), format="jsonl", compression="gzip",
                     name=p.name)
    if fmt == "csv.zst":
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(["n", "content"])
        w.writerows([i, t] for i, t in enumerate(texts))
        p = folder / "c.csv.zst"
        p.write_bytes(zstandard.ZstdCompressor().compress(buf.getvalue().encode("utf-8")))
        return Shard(shard_id="src:c.csv.zst", source="src", url=str(p), format="csv", compression="zstd",
                     text_field="content", name=p.name)
    if fmt == "parquet":
        p = folder / "c.parquet"
        pq.write_table(pa.Table.from_pylist([{"text": t} for t in texts]), p, row_group_size=64)
        return Shard(shard_id="src:c.parquet", source="src", url=str(p), format="parquet", name=p.name)
    members = []
    for i, t in enumerate(texts):
        p = folder / f"{i:04d}.txt"
        p.write_text(t, encoding="utf-8")
        members.append(str(p))
    return Shard(shard_id="src:txt", source="src", url=str(folder), format="text", members=tuple(members),
                 member_names=tuple(Path(m).name for m in members))


def settings(moderation: dict[str, object], **kw: object) -> ScanSettings:
    return ScanSettings(moderation=moderation, **kw)  # type: ignore[arg-type]


def cleaned_texts(result: ShardResult, text_field: str = "text") -> list[str]:
    assert result.cleaned_path is not None
    path = Path(result.cleaned_path)
    if path.suffix == ".parquet":
        return [str(t) for t in pq.read_table(path).column("text").to_pylist()]
    return [json.loads(line)[text_field] for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("fmt", ["jsonl.gz", "csv.zst", "parquet", "text"])
def test_scan_counts_risks_pii_and_cleans(tmp_path: Path, moderation: dict[str, object], fmt: str) -> None:
    texts, exp = planted()
    shard = write_corpus(tmp_path / "in", texts, fmt)
    cleaned_format = "parquet" if fmt == "parquet" else "jsonl"
    r = scan_shard(shard, settings(moderation, output_dir=str(tmp_path / "out"), cleaned_format=cleaned_format))
    assert (r.records, r.flagged, r.chars) == (exp.records, exp.flagged, exp.chars)
    assert r.by_risk == exp.by_risk
    assert r.pii == exp.pii
    assert r.error_count == 0 and r.errors == []
    assert r.bytes_read > 0
    kept = cleaned_texts(r, shard.text_field)
    assert len(kept) == exp.records - exp.flagged
    blob = "\n".join(kept)
    assert A1H_WORD not in blob and A1A_WORD not in blob
    assert A3A_WORD in blob  # flag-only risks stay: the policy does not refuse them
    for planted_id in exp.ids:
        assert planted_id not in blob
    assert blob.count("[身份证号]") == exp.pii["CN_RESIDENT_ID"] - exp.both
    assert Path(r.cleaned_path or "").parent == tmp_path / "out" / "cleaned" / "src"


def test_cleaned_jsonl_keeps_the_other_fields(tmp_path: Path, moderation: dict[str, object]) -> None:
    texts, _ = planted()
    shard = write_corpus(tmp_path / "in", texts[:20], "jsonl.gz")
    r = scan_shard(shard, settings(moderation, output_dir=str(tmp_path / "out")))
    rows = [json.loads(x) for x in Path(r.cleaned_path or "").read_text(encoding="utf-8").splitlines()]
    assert all(set(row) == {"text", "n"} for row in rows)
    assert [row["n"] for row in rows] == [i for i, t in enumerate(texts[:20]) if A1H_WORD not in t
                                          and A1A_WORD not in t]


def test_no_half_written_cleaned_file_and_no_output_without_a_folder(tmp_path: Path,
                                                                     moderation: dict[str, object]) -> None:
    texts, _ = planted()
    shard = write_corpus(tmp_path / "in", texts[:10], "jsonl.gz")
    r = scan_shard(shard, settings(moderation))
    assert r.cleaned_path is None
    out = tmp_path / "out"
    r = scan_shard(shard, settings(moderation, output_dir=str(out)))
    assert [p.name for p in (out / "cleaned" / "src").iterdir()] == [Path(r.cleaned_path or "").name]


def test_automated_sample_counts(tmp_path: Path, moderation: dict[str, object]) -> None:
    texts, exp = planted()
    shard = write_corpus(tmp_path / "in", texts, "jsonl.gz")
    everything = scan_shard(shard, settings(moderation, auto_rate=1.0))
    assert everything.auto_sampled == exp.records
    assert everything.auto_passed == exp.records - exp.flagged
    tenth = scan_shard(shard, settings(moderation, auto_rate=0.1))
    # 400 records at 10%: mean 40, sd sqrt(400*0.1*0.9) = 6; five sd either side.
    assert 10 <= tenth.auto_sampled <= 70
    assert tenth.auto_passed <= tenth.auto_sampled
    again = scan_shard(shard, settings(moderation, auto_rate=0.1))
    assert (again.auto_sampled, again.auto_passed) == (tenth.auto_sampled, tenth.auto_passed)


def test_hash_rate_is_close_to_the_rate() -> None:
    n, rate = 20_000, 0.1
    hits = sum(sampling.in_auto_sample(sampling.record_hash("s", f"src:f:{i}"), rate) for i in range(n))
    # mean 2,000, sd sqrt(20000*0.1*0.9) = 42.4; five sd either side.
    assert 1788 <= hits <= 2212


def test_manual_candidates_are_deterministic_masked_and_merge_to_the_global_bottom_k(
        tmp_path: Path, moderation: dict[str, object]) -> None:
    texts, exp = planted()
    p = tmp_path / "c.jsonl"
    p.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    size = p.stat().st_size
    bounds = [0, size // 3, 2 * size // 3, size]
    parts = [Shard(shard_id=f"src:c.jsonl#{i + 1}of3", source="src", url=str(p), format="jsonl", name="c.jsonl",
                   part=i, parts=3, start=bounds[i], stop=bounds[i + 1]) for i in range(3)]
    small = [scan_shard(s, settings(moderation, manual_k=25, excerpt_chars=12)) for s in parts]
    full = [scan_shard(s, settings(moderation, manual_k=10_000, excerpt_chars=12)) for s in parts]
    assert sum(len(r.manual_candidates) for r in full) == exp.records
    everything = sorted((c for r in full for c in r.manual_candidates), key=lambda c: c["rank"])
    merged = sampling.merge_bottom_k([r.manual_candidates for r in small], k=25)
    assert [c["key"] for c in merged] == [c["key"] for c in everything[:25]]
    # Same seed, same draw; another seed, another draw.
    again = [scan_shard(s, settings(moderation, manual_k=25, excerpt_chars=12)) for s in parts]
    assert [r.manual_candidates for r in again] == [r.manual_candidates for r in small]
    other = [scan_shard(s, settings(moderation, manual_k=25, seed="other")) for s in parts]
    assert {c["key"] for r in other for c in r.manual_candidates} != {c["key"] for c in merged}
    for c in everything:
        assert len(c["excerpt"]) <= 12
        assert set(c) >= {"key", "source", "excerpt", "rank"}
        assert not any(i[:12] in c["excerpt"] for i in exp.ids)


def test_bad_records_are_counted_and_listed_with_file_and_line(tmp_path: Path, moderation: dict[str, object]) -> None:
    p = tmp_path / "bad.jsonl"
    lines = ['{"text": "好"}', "{oops", '{"x": 1}'] * 5
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    shard = Shard(shard_id="src:bad", source="src", url=str(p), format="jsonl", name="bad.jsonl")
    r = scan_shard(shard, settings(moderation, max_error_lines=4))
    assert r.records == 5
    assert r.error_count == 10
    assert len(r.errors) == 4
    assert r.errors[0].startswith("bad.jsonl:2: invalid JSON")
    assert r.errors[1] == "bad.jsonl:3: no field 'text'"


def test_truncated_stream_keeps_what_was_read(tmp_path: Path, moderation: dict[str, object]) -> None:
    data = gzip.compress("".join(json.dumps({"text": f"第{i}条"}) + "\n" for i in range(2000)).encode())
    p = tmp_path / "cut.jsonl.gz"
    p.write_bytes(data[: len(data) // 2])
    r = scan_shard(Shard(shard_id="src:cut", source="src", url=str(p), format="jsonl", compression="gzip"),
                   settings(moderation))
    assert 0 < r.records < 2000
    assert r.error_count == 1 and "unreadable after" in r.errors[0]


def test_missing_file_is_a_user_error(tmp_path: Path, moderation: dict[str, object]) -> None:
    with pytest.raises(UserError, match=r"nope\.jsonl: cannot read"):
        scan_shard(Shard(shard_id="x", source="src", url=str(tmp_path / "nope.jsonl"), format="jsonl"),
                   settings(moderation))


def test_settings_and_results_pickle_and_the_moderator_is_built_once(moderation: dict[str, object]) -> None:
    s = settings(moderation)
    assert moderator_for(s) is moderator_for(settings(moderation))
    assert pickle.loads(pickle.dumps(s)) == s
    assert pickle.loads(pickle.dumps(scan_shard)) is scan_shard
    r = ShardResult(shard_id="a", source="b", records=1, chars=1, flagged=0)
    assert pickle.loads(pickle.dumps(r)) == r
    with pytest.raises(UserError, match="not both"):
        moderator_for(ScanSettings(config_path="x.yaml", moderation=moderation))


def test_config_path_resolves_lexicon_files_against_its_folder(tmp_path: Path) -> None:
    (tmp_path / "words.txt").write_text(A1H_WORD + "\n", encoding="utf-8")
    (tmp_path / "hegui.yaml").write_text(
        "lexicon:\n  builtin: false\n  files:\n    - {path: words.txt, risk: A1h}\n"
        "classifier: {enabled: false}\n", encoding="utf-8")
    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps({"text": f"去{A1H_WORD}"}, ensure_ascii=False) + "\n" + '{"text": "好"}\n',
                 encoding="utf-8")
    r = scan_shard(Shard(shard_id="x", source="src", url=str(p), format="jsonl"),
                   ScanSettings(config_path=str(tmp_path / "hegui.yaml")))
    assert (r.records, r.flagged, r.by_risk) == (2, 1, {"A1h": 1})


def test_unknown_skipped_detector_is_named(moderation: dict[str, object]) -> None:
    with pytest.raises(UserError, match="skip_detectors: unknown detector 'lexcon'"):
        moderator_for(ScanSettings(moderation=moderation, skip_detectors=("lexcon",)))
    names = [d.name for d in moderator_for(ScanSettings(moderation={}, skip_detectors=())).detectors]
    assert "injection" in names
    assert "injection" not in [d.name for d in moderator_for(ScanSettings(moderation={})).detectors]
