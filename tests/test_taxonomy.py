from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from hegui import taxonomy
from hegui.cli import app


def test_31_risks_in_standard_order() -> None:
    codes = [r.code for r in taxonomy.CONTENT_RISKS]
    assert len(codes) == 31
    assert codes[:8] == [f"A1{c}" for c in "abcdefgh"]
    assert codes[8:17] == [f"A2{c}" for c in "abcdefghi"]
    assert codes[17:22] == [f"A3{c}" for c in "abcde"]
    assert codes[22:29] == [f"A4{c}" for c in "abcdefg"]
    assert codes[29:] == ["A5a", "A5b"]
    assert len(taxonomy.KEYWORD_RISKS) == 17
    assert taxonomy.get("A2d").name_zh == "地域歧视"
    assert taxonomy.get("PI").is_signal and taxonomy.get("JB").is_signal


@pytest.mark.parametrize(("raw", "code"), [("A.1.a", "A1a"), ("a2D", "A2d"), ("pi", "PI"), ("A.3", "A3")])
def test_code_spellings(raw: str, code: str) -> None:
    assert taxonomy.normalize_code(raw) == code


def test_selectors() -> None:
    assert taxonomy.matches("*", "A4f")
    assert taxonomy.matches("A4", "A4f")
    assert not taxonomy.matches("A4", "A1a")
    assert taxonomy.matches("A.4.f", "A4f")
    with pytest.raises(KeyError, match="hegui risks"):
        taxonomy.get("A9z")


def test_cli_risks_json() -> None:
    result = CliRunner().invoke(app, ["risks", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert len(rows) == 33
    assert rows[0]["code"] == "A1a" and rows[-1]["code"] == "JB"
