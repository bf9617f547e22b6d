"""The ``pii`` config section: validation with file:line errors, and each key changing behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hegui.config import load_config
from hegui.detectors.pii import ENTITY_KINDS, PIIConfig, PIIDetector
from hegui.errors import ConfigError
from hegui.text import normalize

SALT = b"cfg-salt"
TEXT = "记一下13800138000，邮箱a@b.com，来自 10.0.0.1"


def kinds(cfg: PIIConfig, text: str = TEXT) -> list[str]:
    return [f.kind for f in PIIDetector(config=cfg, salt=SALT).detect(normalize(text))]


def test_defaults() -> None:
    cfg = PIIConfig()
    assert cfg.entities == list(ENTITY_KINDS) and len(ENTITY_KINDS) == 13
    assert cfg.mask_operator == "redact" and cfg.min_score == 0.5
    assert kinds(cfg) == ["CN_MOBILE", "EMAIL", "IP_ADDRESS"]


def test_entities_min_score_enabled_allow_list() -> None:
    assert kinds(PIIConfig(entities=["EMAIL"])) == ["EMAIL"]
    assert kinds(PIIConfig(min_score=0.92)) == ["EMAIL"]  # mobile 0.9, IP 0.6 without context
    assert kinds(PIIConfig(enabled=False)) == []
    assert kinds(PIIConfig(allow_list=["138-0013-8000"])) == ["EMAIL", "IP_ADDRESS"]


def test_custom_recognizer() -> None:
    cfg = PIIConfig(
        custom_recognizers=[
            {
                "kind": "EMPLOYEE_ID",
                "context": ["工号"],
                "patterns": [{"name": "emp", "regex": r"emp\d{6}", "score": 0.0, "context_score": 0.8}],
                "max_length": 100,
            }
        ]
    )
    det = PIIDetector(config=cfg, salt=SALT)
    (f,) = det.detect(normalize("我的工号是 EMP123456。"))
    assert (f.kind, f.score, f.evidence_id.split(":")[1]) == ("EMPLOYEE_ID", 0.8, "EMPLOYEE_ID")
    assert det.detect(normalize("产品 EMP123456")) == []  # score 0: context required
    assert det.holdback() == 100


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"entities": ["CN_MOBILE", "SSN"]}, "unknown entity 'SSN'"),
        ({"mask_operator": "scramble"}, "mask_operator"),
        ({"entity_operators": {"NOPE": "redact"}}, "unknown entity 'NOPE'"),
        ({"mask_operator": "token"}, "needs pii.vault_path"),
        ({"entity_operators": {"CN_MOBILE": "token"}}, "needs pii.vault_path"),
        ({"min_score": 1.5}, "min_score"),
        ({"custom_recognizers": [{"kind": "X", "patterns": [{"name": "a", "regex": "("}]}]}, "invalid regex"),
        ({"custom_recognizers": [{"kind": "lower", "patterns": [{"name": "a", "regex": "a"}]}]}, "kind"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_values(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PIIConfig.model_validate(data)


def test_config_file_sections(tmp_path: Path) -> None:
    path = tmp_path / "hegui.yaml"
    path.write_text(
        "pii:\n"
        "  entities: [CN_MOBILE, EMAIL]\n"
        "  mask_operator: partial\n"
        "  entity_operators: {EMAIL: token}\n"
        "  vault_path: vault.sqlite3\n"
        "injection:\n"
        "  min_score: 0.7\n"
        "  disabled_rules: [roleplay.no_refusal]\n",
        encoding="utf-8",
    )
    cfg = load_config(path, environ={})
    assert cfg.pii.operators() == {"*": "partial", "EMAIL": "token"}
    assert cfg.injection.min_score == 0.7
    vault = cfg.pii.open_vault(cfg.base_dir, environ={"HEGUI_PII_SALT": "x"})
    assert vault is not None
    with vault:
        assert vault.path == tmp_path / "vault.sqlite3"


def test_config_file_error_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "hegui.yaml"
    path.write_text("provider:\n  name: x\npii:\n  entities: [CN_MOBILE, SSN]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    msg = str(err.value)
    assert "hegui.yaml:4" in msg and "pii.entities" in msg and "SSN" in msg


def test_injection_error_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "hegui.yaml"
    path.write_text("injection:\n  scores:\n    nope: 0.5\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert "hegui.yaml:" in str(err.value) and "nope" in str(err.value)
