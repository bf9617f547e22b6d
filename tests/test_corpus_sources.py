"""The source registry: loading YAML and CSV with located errors, the provenance check, the mixing
rule, and planning shards (globs, folders, fsspec URLs, byte-range and row-group parts)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hegui.corpus.readers import Record, read_shard
from hegui.corpus.sources import check_sources, infer_format, load_sources, plan_shards
from hegui.errors import ConfigError, UserError

COMPLETE = """\
- name: wiki
  type: open_source
  licence: CC-BY-SA-4.0
  licence_evidence: https://example.org/licence
  pi_basis: none_present
  languages: [zh, en]
  origin: overseas
  locations: data/wiki/*.jsonl
- name: crawl-news
  type: self_collected
  collection_method: crawler v2, seeds in records.txt
  robots_txt_respected: true
  pi_basis: other_legal_basis
  separate_consent_for_sensitive: true
  languages: [zh]
  origin: domestic
  locations: [data/news]
- name: bought
  type: commercial
  contract_ref: HT-2025-001
  vendor_evidence: evidence/vendor.pdf
  pi_basis: consent
  separate_consent_for_sensitive: true
  languages: [en, zh]
  origin: domestic
  locations: data/bought.parquet
"""


def write_corpus(root: Path) -> None:
    (root / "data" / "wiki").mkdir(parents=True)
    (root / "data" / "news" / "2025").mkdir(parents=True)
    (root / "evidence").mkdir()
    (root / "evidence" / "vendor.pdf").write_bytes(b"%PDF-1.4")
    for name in ("a", "b"):
        (root / "data" / "wiki" / f"{name}.jsonl").write_text(
            "".join(json.dumps({"text": f"{name}{i}"}) + "\n" for i in range(10)), encoding="utf-8")
    (root / "data" / "news" / "1.txt").write_text("新闻一", encoding="utf-8")
    (root / "data" / "news" / "2025" / "2.txt").write_text("新闻二", encoding="utf-8")
    (root / "data" / "news" / "notes.md").write_text("not a corpus file", encoding="utf-8")
    pq.write_table(pa.Table.from_pylist([{"text": f"行{i}"} for i in range(30)]), root / "data" / "bought.parquet",
                   row_group_size=10)


def test_complete_registry_has_no_errors_and_plans_every_file(tmp_path: Path) -> None:
    write_corpus(tmp_path)
    (tmp_path / "sources.yaml").write_text(COMPLETE, encoding="utf-8")
    sources = load_sources(tmp_path / "sources.yaml")
    assert [s.name for s in sources] == ["wiki", "crawl-news", "bought"]
    assert [p for p in check_sources(sources) if p.severity == "error"] == []
    shards = plan_shards(sources)
    by_source = {s: [sh for sh in shards if sh.source == s] for s in ("wiki", "crawl-news", "bought")}
    assert sorted(sh.name or "" for sh in by_source["wiki"]) == ["a.jsonl", "b.jsonl"]
    # The folder's .txt files, in their sub-folders; notes.md is not a corpus file.
    names = sorted(n for sh in by_source["crawl-news"] for n in sh.member_names)
    assert names == ["1.txt", "2025/2.txt"]
    assert len(by_source["bought"]) == 1 and by_source["bought"][0].format == "parquet"
    # Every record of the corpus is in exactly one shard.
    texts = [i.text for sh in shards for i in read_shard(sh) if isinstance(i, Record)]
    assert len(texts) == 20 + 2 + 30 == len(set(texts))
    # Keys name files relative to the location, so they survive moving the corpus.
    keys = [i.key for i in read_shard(by_source["wiki"][0]) if isinstance(i, Record)]
    assert keys[0] == "wiki:a.jsonl:1"


@pytest.mark.parametrize(("field", "message"), [
    ("licence", "src `wiki`: open-source data needs licence"),
    ("licence_evidence", "src `wiki`: open-source data needs licence_evidence"),
    ("collection_method", "src `crawl-news`: self-collected data needs collection_method"),
    ("robots_txt_respected", "src `crawl-news`: self-collected data needs robots_txt_respected: true"),
    ("contract_ref", "src `bought`: commercial data needs contract_ref"),
    ("vendor_evidence", "src `bought`: commercial data (the vendor's evidence of source, quality and safety) "
                        "needs vendor_evidence"),
    ("pi_basis", "src `wiki`: pi_basis is missing"),
    ("separate_consent_for_sensitive", "src `crawl-news`: sensitive personal information needs separate consent"),
])
def test_each_missing_field_is_named(tmp_path: Path, field: str, message: str) -> None:
    write_corpus(tmp_path)
    lines = COMPLETE.splitlines()
    # Drop the field from the first source that has it.
    idx = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{field}:"))
    del lines[idx]
    (tmp_path / "sources.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    errors = [p for p in check_sources(load_sources(tmp_path / "sources.yaml")) if p.severity == "error"]
    assert len(errors) == 1, errors
    assert errors[0].message.startswith(message)
    assert errors[0].where.startswith(f"{tmp_path / 'sources.yaml'}:")


def test_robots_false_and_missing_evidence_file_and_user_input(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"text": "x"}\n', encoding="utf-8")
    (tmp_path / "s.yaml").write_text(
        "sources:\n"
        "  - {name: c, type: self_collected, collection_method: crawl, robots_txt_respected: false,"
        " pi_basis: none_present, languages: [zh], locations: d.jsonl}\n"
        "  - {name: o, type: open_source, licence: MIT, licence_evidence: LICENSE.txt, pi_basis: none_present,"
        " languages: [zh], locations: d.jsonl}\n"
        "  - {name: u, type: user_input, pi_basis: consent, separate_consent_for_sensitive: true,"
        " languages: [zh], locations: d.jsonl}\n", encoding="utf-8")
    msgs = sorted(p.message for p in check_sources(load_sources(tmp_path / "s.yaml")) if p.severity == "error")
    assert msgs == [
        "src `c`: self-collected data needs robots_txt_respected: true",
        "src `o`: licence_evidence file LICENSE.txt does not exist",
        "src `u`: user input needs authorisation_record (a URL or a file)",
    ]
    (tmp_path / "LICENSE.txt").write_text("MIT", encoding="utf-8")
    msgs = [p.message for p in check_sources(load_sources(tmp_path / "s.yaml")) if p.severity == "error"]
    assert not any("LICENSE" in m for m in msgs)


def test_mixing_rule_warnings(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"text": "x"}\n', encoding="utf-8")
    common = "type: open_source, licence: MIT, licence_evidence: 'https://x', pi_basis: none_present, locations: d.jsonl"
    (tmp_path / "s.yaml").write_text(
        f"- {{name: a, languages: [zh, en], origin: overseas, {common}}}\n"
        f"- {{name: b, languages: [zh], origin: overseas, {common}}}\n"
        f"- {{name: c, {common}}}\n", encoding="utf-8")
    warnings = sorted(p.message for p in check_sources(load_sources(tmp_path / "s.yaml")) if p.severity == "warning")
    assert warnings == [
        "language `en` has 1 source (a); the standard asks for several sources per language",
        "language `en`: no domestic source (0 domestic, 1 overseas); the standard asks to balance overseas sources "
        "with domestic ones",
        "language `zh`: no domestic source (0 domestic, 2 overseas); the standard asks to balance overseas sources "
        "with domestic ones",
        "src `c`: languages is missing (the mixing rule counts sources per language)",
    ]


def test_yaml_errors_name_file_line_and_field(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("- name: a\n  type: open_source\n  locations: x\n- name: b\n  type: comercial\n  locations: y\n",
                 encoding="utf-8")
    with pytest.raises(ConfigError, match=r"s\.yaml:5: sources\.1\.type: Input should be"):
        load_sources(p)
    p.write_text("- name: a\n  type: open_source\n  locations: x\n  licnce: MIT\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"s\.yaml:4: sources\.0\.licnce: unknown key"):
        load_sources(p)
    p.write_text("- name: a\n  type: open_source\n  locations: x\n- name: a\n  type: open_source\n  locations: y\n",
                 encoding="utf-8")
    with pytest.raises(ConfigError, match=r"s\.yaml:4: name: source `a` is already defined at .*s\.yaml:1"):
        load_sources(p)
    p.write_text("name: a\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"s\.yaml:1: a source registry is a list"):
        load_sources(p)


def test_csv_registry_with_lists_and_booleans(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"text": "x"}\n', encoding="utf-8")
    p = tmp_path / "s.csv"
    p.write_text(
        "name,type,collection_method,robots_txt_respected,pi_basis,languages,locations\n"
        "c1,self_collected,crawl,是,none_present,zh;en,d.jsonl\n"
        "c2,self_collected,crawl,no,none_present,zh,d.jsonl\n", encoding="utf-8")
    sources = load_sources(p)
    assert sources[0].languages == ["zh", "en"] and sources[0].robots_txt_respected is True
    assert sources[1].where == f"{p}:3"
    errors = [p for p in check_sources(sources) if p.severity == "error"]
    assert [e.message for e in errors] == ["src `c2`: self-collected data needs robots_txt_respected: true"]
    p.write_text("name,type,robots_txt_respected,locations\nc,self_collected,maybe,d.jsonl\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"s\.csv:2: robots_txt_respected: 'maybe' is not true or false"):
        load_sources(p)
    p.write_text("name,type,locations,licence\nc,open_sauce,d.jsonl,MIT\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"s\.csv:2: type: Input should be"):
        load_sources(p)
    p.write_text("name,kind\nc,x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"s\.csv:1: unknown column 'kind'"):
        load_sources(p)


def test_big_files_split_into_parts_and_parquet_into_row_groups(tmp_path: Path) -> None:
    lines = "".join(json.dumps({"text": f"第{i}条记录" + "字" * (i % 5)}, ensure_ascii=False) + "\n"
                    for i in range(500))
    (tmp_path / "big.jsonl").write_text(lines, encoding="utf-8")
    pq.write_table(pa.Table.from_pylist([{"text": f"行{i}"} for i in range(100)]), tmp_path / "t.parquet",
                   row_group_size=10)
    (tmp_path / "s.yaml").write_text("- {name: a, type: open_source, locations: ['*.jsonl', '*.parquet']}\n",
                                     encoding="utf-8")
    sources = load_sources(tmp_path / "s.yaml")
    size = (tmp_path / "big.jsonl").stat().st_size
    md = pq.ParquetFile(tmp_path / "t.parquet").metadata
    sizes = [md.row_group(i).total_byte_size for i in range(md.num_row_groups)]
    # With parts of 3 × the largest group, three groups always fit and four never do (if groups are
    # within 25% of each other's size, which ten rows of similar text are).
    assert 4 * min(sizes) > 3 * max(sizes)
    shards = plan_shards(sources, part_bytes=size // 4 + 1)
    jsonl = [s for s in shards if s.format == "jsonl"]
    assert len(jsonl) == 4 and [s.part for s in jsonl] == [0, 1, 2, 3]
    assert jsonl[0].start == 0 and jsonl[-1].stop == size
    assert all(a.stop == b.start for a, b in itertools.pairwise(jsonl))
    assert len({s.shard_id for s in shards}) == len(shards)
    texts = [i.text for s in jsonl for i in read_shard(s) if isinstance(i, Record)]
    assert texts == [json.loads(x)["text"] for x in lines.splitlines()]
    # Parquet: groups of whole row groups of at most part_bytes (here 3 groups a part → 4 parts).
    parquet = plan_shards(sources, part_bytes=3 * max(sizes))
    parts = [s for s in parquet if s.format == "parquet"]
    assert [(s.start, s.stop) for s in parts] == [(0, 3), (3, 6), (6, 9), (9, 10)]
    rows = [i.text for s in parts for i in read_shard(s) if isinstance(i, Record)]
    assert rows == [f"行{i}" for i in range(100)]
    # min_shards shrinks parts (down to 4 MiB): a 20 KB file stays whole.
    assert len([s for s in plan_shards(sources, min_shards=8) if s.format == "jsonl"]) == 1


def test_compressed_files_are_never_split_and_formats_come_from_suffixes(tmp_path: Path) -> None:
    assert infer_format("x/a.jsonl.zst") == ("jsonl", "zstd")
    assert infer_format("a.CSV.gz") == ("csv", "gzip")
    assert infer_format("a.txt") == ("text", "none")
    assert infer_format("a.bin") == (None, "none")
    import gzip

    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(b'{"text": "x"}\n' * 10_000))
    (tmp_path / "s.yaml").write_text("- {name: a, type: open_source, locations: '*.gz'}\n", encoding="utf-8")
    shards = plan_shards(load_sources(tmp_path / "s.yaml"), part_bytes=100)
    assert len(shards) == 1 and shards[0].compression == "gzip" and shards[0].stop is None


def test_unknown_format_and_empty_locations_are_user_errors(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"x")
    (tmp_path / "s.yaml").write_text("- {name: a, type: open_source, locations: a.bin}\n"
                                     "- {name: b, type: open_source, locations: 'none/*.jsonl'}\n", encoding="utf-8")
    sources = load_sources(tmp_path / "s.yaml")
    with pytest.raises(UserError, match=r"s\.yaml:1: src `a`: cannot tell the format of .*a\.bin"):
        plan_shards(sources[:1])
    with pytest.raises(UserError, match=r"s\.yaml:2: src `b`: its locations match no files"):
        plan_shards(sources[1:])


def test_fsspec_locations(tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/h5a-src/x/1.jsonl", b'{"text": "m1"}\n')
    fs.pipe("/h5a-src/x/2.jsonl", b'{"text": "m2"}\n')
    try:
        (tmp_path / "s.yaml").write_text("- {name: m, type: open_source, locations: 'memory://h5a-src/x/*.jsonl'}\n",
                                         encoding="utf-8")
        shards = plan_shards(load_sources(tmp_path / "s.yaml"))
        assert [s.url.replace("memory:///", "memory://") for s in shards] == [
            "memory://h5a-src/x/1.jsonl", "memory://h5a-src/x/2.jsonl"]
        assert [s.name for s in shards] == ["1.jsonl", "2.jsonl"]
        texts = [i.text for s in shards for i in read_shard(s) if isinstance(i, Record)]
        assert texts == ["m1", "m2"]
    finally:
        fs.rm("/h5a-src", recursive=True)
