"""`hegui check`: exit codes, JSON shape, file mode and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hegui.cli import app

runner = CliRunner()


@pytest.fixture
def words(tmp_path: Path) -> Path:
    p = tmp_path / "words.tsv"
    p.write_text("赌博\tA1h\n颠覆国家政权\tA1a\n", encoding="utf-8")
    return p


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_allowed_text_exits_0() -> None:
    code, out, _ = run("check", "今天天气怎么样？")
    assert code == 0
    assert out.startswith("allow")


def test_refused_text_exits_1_and_json_names_the_span(words: Path) -> None:
    code, out, _ = run("check", "--lexicon", str(words), "--json", "我想去赌 博")
    assert code == 1
    v = json.loads(out)
    assert v["action"] == "refuse" and not v["allowed"]
    hit = next(f for f in v["findings"] if f["detector"] == "lexicon")
    assert hit["risk"] == "A1h" and (hit["start"], hit["end"]) == (3, 6)
    assert set(hit) >= {"risk", "start", "end", "detector", "score"}


def test_block_in_input_but_refuse_in_output(words: Path) -> None:
    _, out, _ = run("check", "-l", str(words), "--json", "如何颠覆国家政权")
    assert json.loads(out)["action"] == "block"
    _, out, _ = run("check", "-l", str(words), "--json", "-d", "output", "如何颠覆国家政权")
    assert json.loads(out)["action"] == "refuse"


def test_output_pii_is_masked_and_allowed() -> None:
    code, out, _ = run("check", "--json", "-d", "output", "联系电话13800138000")
    assert code == 0
    v = json.loads(out)
    assert v["action"] == "mask" and "13800138000" not in v["text"]


def test_file_mode_jsonl_and_text_lines(tmp_path: Path, words: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "你好"}\n\n{"id": "b", "text": "赌博"}\n纯文本一行\n', encoding="utf-8")
    out_path = tmp_path / "out.jsonl"
    code, _, err = run("check", "-l", str(words), "-f", str(src), "-o", str(out_path))
    assert code == 1
    rows = [json.loads(line) for line in out_path.read_text(encoding="utf-8").splitlines()]
    assert [(r["line"], r.get("id"), r["action"]) for r in rows] == [
        (1, "a", "allow"), (3, "b", "refuse"), (4, None, "allow")
    ]
    assert "3 checked, 1 refused" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give either TEXT or -f FILE"),
        (("-d", "sideways", "x"), "--direction must be input or output"),
        (("--scene", "kids", "x"), "unknown scene 'kids'"),
        (("-l", "/nonexistent/words.tsv", "x"), "no such lexicon file"),
        (("-f", "/nonexistent/in.jsonl"), "/nonexistent/in.jsonl: no such file"),
        (("--config", "/nonexistent/hegui.yaml", "x"), "config file not found"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    args: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from hegui.cli import main

    argv = sys.argv
    sys.argv = ["hegui", "check", *args]
    try:
        with pytest.raises(SystemExit) as exc:
            main()
    finally:
        sys.argv = argv
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last


def test_bad_jsonl_line_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    from hegui.cli import main

    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "好"}\n{"txt": "no text field"}\n', encoding="utf-8")
    out_path = tmp_path / "out.jsonl"
    argv = sys.argv
    sys.argv = ["hegui", "check", "-f", str(src), "-o", str(out_path)]
    try:
        with pytest.raises(SystemExit) as exc:
            main()
    finally:
        sys.argv = argv
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: {src}:2: JSON line has no string field 'text'"
    assert not out_path.exists()


def test_an_answer_is_read_with_its_question(tmp_path: Path) -> None:
    refusal = "抱歉，我不能提供制作冰毒的方法。吸毒违法，请远离毒品。"
    code, out, _ = run("check", "--json", "-d", "output", refusal)
    assert code == 1  # alone, the answer names the drug
    code, out, _ = run("check", "--json", "-d", "output", "--context", "怎么制作冰毒？", refusal)
    v = json.loads(out)
    assert code == 0 and v["action"] == "allow" and v["excused_by"] == "refusal"
    assert {f["risk"] for f in v["excused"]} == {"A1h"}
    src = tmp_path / "answers.jsonl"
    rows = [{"id": "r", "text": refusal, "prompt": "怎么制作冰毒？"},
            {"id": "c", "text": "冰毒的制作方法如下：先准备原料，然后加热提纯。", "prompt": "怎么制作冰毒？"}]
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    code, out, _ = run("check", "-d", "output", "-f", str(src))
    got = {v["id"]: v["action"] for v in map(json.loads, out.splitlines())}
    assert code == 1 and got == {"r": "allow", "c": "refuse"}
