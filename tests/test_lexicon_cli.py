"""``hegui lexicon …`` commands (typer CliRunner) and the houbb list from the development data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hegui.cli import app
from hegui.detectors.lexicon import LexiconConfig, LexiconDetector, LexiconFileConfig
from hegui.detectors.lexicon_files import ListSpec, load_list
from hegui.text import normalize

runner = CliRunner()

HOUBB_TAGS = {"0": "A1a", "1": "A1h", "2": "A1f", "3": "A1h", "4": "A1h"}


def test_stats_table_reports_shortfalls() -> None:
    res = runner.invoke(app, ["lexicon", "stats"])
    assert res.exit_code == 0, res.output
    assert "A2i" in res.output and "short by" in res.output
    assert "falls short of the standard" in res.output


def test_stats_json_and_strict(tmp_path: Path) -> None:
    (tmp_path / "w.txt").write_text("赌博网站\n六合彩特码\n", encoding="utf-8")
    res = runner.invoke(app, ["lexicon", "stats", "--json", "--no-builtin", "--lexicon", f"{tmp_path / 'w.txt'}:A1h"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["total"] == 2
    assert data["per_risk"]["A1h"] == {"count": 2, "minimum": 200}
    assert data["per_risk"]["A2a"] == {"count": 0, "minimum": 100}
    assert len(data["shortfalls"]) == 17 and data["meets_standard"] is False
    assert data["lists"] == {"w": 2}
    res = runner.invoke(app, ["lexicon", "stats", "--strict", "--no-builtin", "--lexicon", f"{tmp_path / 'w.txt'}:A1h"])
    assert res.exit_code == 1


def test_stats_bad_lexicon_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "w.txt").write_text("赌博网站\n", encoding="utf-8")
    res = runner.invoke(app, ["lexicon", "stats", "--lexicon", str(tmp_path / "w.txt")])
    assert res.exit_code == 2
    assert res.output.strip().startswith("error: ") and "needs a risk" in res.output
    assert "Traceback" not in res.output


def test_stats_from_config(tmp_path: Path) -> None:
    (tmp_path / "w.tsv").write_text("赌博网站\tA1h\n河南人都是骗子\tA2d\n", encoding="utf-8")
    (tmp_path / "hegui.yaml").write_text("lexicon:\n  builtin: false\n  files:\n    - path: w.tsv\n", encoding="utf-8")
    res = runner.invoke(app, ["lexicon", "stats", "--json", "-c", str(tmp_path / "hegui.yaml")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["per_risk"]["A2d"]["count"] == 1


def test_export_xlsx_and_csv_then_reimport(tmp_path: Path) -> None:
    out = tmp_path / "keywords.xlsx"
    res = runner.invoke(app, ["lexicon", "export", str(out)])
    assert res.exit_code == 0, res.output
    wl = load_list(ListSpec(path=out, name="k"))
    starter = LexiconDetector.from_config(LexiconConfig(), tmp_path).stats()
    assert len({e.word for e in wl.entries}) == starter.total
    out_csv = tmp_path / "keywords.csv"
    assert runner.invoke(app, ["lexicon", "export", str(out_csv)]).exit_code == 0
    assert out_csv.read_text(encoding="utf-8-sig").splitlines()[0] == "关键词,一级分类,二级分类"
    tsv = tmp_path / "imported.tsv"
    res = runner.invoke(app, ["lexicon", "import", str(out), str(tsv)])
    assert res.exit_code == 0, res.output
    det = LexiconDetector.from_paths([tsv])
    assert {(f.risk, f.kind) for f in det.detect(normalize("赌博网站"))} == {("A1h", "imported")}


def test_export_to_missing_folder_or_directory(tmp_path: Path) -> None:
    res = runner.invoke(app, ["lexicon", "export", str(tmp_path / "nope" / "k.xlsx")])
    assert res.exit_code == 2 and "does not exist" in res.output
    (tmp_path / "d.xlsx").mkdir()
    res = runner.invoke(app, ["lexicon", "export", str(tmp_path / "d.xlsx")])
    assert res.exit_code == 2 and "is a directory" in res.output
    assert [p.name for p in tmp_path.iterdir()] == ["d.xlsx"]


def test_import_with_map_and_errors(tmp_path: Path) -> None:
    src = tmp_path / "kw.csv"
    src.write_text("关键词,一级分类,二级分类\n约炮,涉黄,色情\n赌博网站,涉赌,赌博\n", encoding="utf-8")
    out = tmp_path / "out.tsv"
    res = runner.invoke(app, ["lexicon", "import", str(src), str(out), "--map", "色情=A1f"])
    assert res.exit_code == 2 and "kw.csv:3" in res.output and "'赌博'" in res.output
    assert not out.exists()
    res = runner.invoke(app, ["lexicon", "import", str(src), str(out), "--map", "色情=A1f", "--map", "赌博=a.1.h"])
    assert res.exit_code == 0, res.output
    assert out.read_text(encoding="utf-8").splitlines()[1:] == ["约炮\tA1f", "赌博网站\tA1h"]
    res = runner.invoke(app, ["lexicon", "import", str(src), str(out), "--map", "色情=Z9"])
    assert res.exit_code == 2 and "--map" in res.output
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_test_command(tmp_path: Path) -> None:
    res = runner.invoke(app, ["lexicon", "test", "我想找个賭 博网站，严厉打击网络赌博"])
    assert res.exit_code == 0, res.output
    assert "賭 博网站" in res.output and "A1h" in res.output
    res = runner.invoke(app, ["lexicon", "test", "--json", "今天天气很好"])
    assert json.loads(res.output)["findings"] == []


def test_help_lists_commands() -> None:
    res = runner.invoke(app, ["lexicon", "--help"])
    assert res.exit_code == 0
    for cmd in ("stats", "export", "import", "test"):
        assert cmd in res.output


# --------------------------------------------------------------------------- houbb (development data)


@pytest.fixture(scope="module")
def houbb(shared_data: Path) -> Path:
    return shared_data / "lexicons" / "houbb"


def test_houbb_lists_load(houbb: Path, tmp_path: Path) -> None:
    cfg = LexiconConfig(
        builtin=False,
        files=[
            LexiconFileConfig(path=str(houbb / "sensitive_word_dict.txt"), name="houbb", risk="A1h"),
            LexiconFileConfig(
                path=str(houbb / "sensitive_word_tags.txt"), name="houbb_tags", format="tags", category_map=HOUBB_TAGS
            ),
        ],
        allow_files=[str(houbb / "sensitive_word_allow.txt")],
    )
    det = LexiconDetector.from_config(cfg, tmp_path)
    dict_list, tags_list = det.lists
    def count(name: str) -> int:
        lines = (houbb / name).read_text(encoding="utf-8").splitlines()
        return sum(1 for line in lines if line.strip() and not line.startswith("#"))

    assert len(dict_list.entries) == count("sensitive_word_dict.txt") > 64_000
    assert len(tags_list.entries) == count("sensitive_word_tags.txt") > 43_000
    by_word = {e.word: e.risks for e in tags_list.entries}
    assert by_word["08宪章"] == ("A1a",)
    assert by_word["0售k粉qq"] == ("A1h",)  # tags 1,4 both map to A1h
    assert len(det.allow_phrases) == count("sensitive_word_allow.txt") >= 11
    assert det.holdback() >= 40
    stats = det.stats()
    assert stats.total >= 64_000 and stats.per_risk["A1a"] > 1000 and stats.per_risk["A1f"] > 100
    found = det.detect(normalize("这里出售冰 毒"))
    assert any(f.risk == "A1h" for f in found)


def test_houbb_tags_without_map_is_a_clear_error(houbb: Path) -> None:
    from hegui.errors import ConfigError

    with pytest.raises(ConfigError, match=r"sensitive_word_tags\.txt:1: unknown risk or category '0'"):
        load_list(ListSpec(path=houbb / "sensitive_word_tags.txt", name="t", format="tags"))
