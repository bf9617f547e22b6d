from __future__ import annotations

from pathlib import Path

import pytest

from hegui.errors import ConfigError
from hegui.policy import Action, load_policy


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_starter_policy_loads_and_decides() -> None:
    p = load_policy()
    assert p.action_for("A1a", "input", "default", 1.0)[0] is Action.BLOCK
    assert p.action_for("A1a", "output", "default", 1.0)[0] is Action.REFUSE
    assert p.action_for("PI", "output", "default", 1.0)[0] is Action.MASK
    assert p.action_for("PI", "input", "default", 1.0)[0] is Action.FLAG
    assert p.action_for("A3a", "output", "default", 1.0)[0] is Action.FLAG
    assert p.has_scene("minor")
    assert p.refusal_for("minor") != p.refusal_for("default")


def test_first_matching_rule_and_score_threshold(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, """
rules:
  - risks: [A2]
    min_score: 0.7
    action: refuse
    message: 不行
  - risks: ["*"]
    action: flag
"""))
    assert p.action_for("A2d", "input", "default", 0.9) == (Action.REFUSE, "不行")
    assert p.action_for("A2d", "input", "default", 0.5) == (Action.FLAG, None)
    assert p.action_for("A1a", "input", "default", 0.9) == (Action.FLAG, None)


def test_scene_and_direction_rules(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, """
default_action: allow
scenes:
  minor: {fail_mode: open}
rules:
  - risks: [A4a]
    scenes: [minor]
    direction: output
    action: refuse
"""))
    assert p.action_for("A4a", "output", "minor", 1.0)[0] is Action.REFUSE
    assert p.action_for("A4a", "input", "minor", 1.0)[0] is Action.ALLOW
    assert p.action_for("A4a", "output", "default", 1.0)[0] is Action.ALLOW
    assert p.fails_closed("default") and not p.fails_closed("minor")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("rules:\n  - risks: [A9z]\n    action: refuse\n", r"policy\.yaml:2: rules\.0\.risks: unknown risk 'A9z'"),
        ("rules:\n  - risks: [A1]\n    action: destroy\n", r"policy\.yaml:3: rules\.0\.action: Input should be"),
        ("rules:\n  - risks: [A1]\n    action: refuse\n    colour: red\n", r"policy\.yaml:4: rules\.0\.colour: unknown key"),
        ("rules:\n  - risks: [A1]\n    action: refuse\n    min_score: 2\n", r"policy\.yaml:4: rules\.0\.min_score"),
        ("rules:\n  - risks: [A1]\n    action: refuse\n    scenes: [kids]\n",
         r"policy\.yaml:4: rules\.0\.scenes: scene 'kids' is not declared"),
        ("rules: [\n", r"policy\.yaml:\d+: invalid YAML"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_policy(write(tmp_path, body))
