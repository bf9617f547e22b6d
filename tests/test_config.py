from __future__ import annotations

from pathlib import Path

import pytest

from hegui.config import load_config
from hegui.errors import ConfigError


def test_defaults_without_file() -> None:
    cfg = load_config(None, environ={})
    assert cfg.provider.name == "hegui-demo"
    assert cfg.ledger.url.startswith("sqlite")


def test_env_override_nested(tmp_path: Path) -> None:
    cfg = load_config(None, environ={"HEGUI__LEDGER__URL": "sqlite:///x.db", "HEGUI__PROVIDER__NAME": "acme"})
    assert cfg.ledger.url == "sqlite:///x.db"
    assert cfg.provider.name == "acme"


def test_unknown_key_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "hegui.yaml"
    f.write_text("provider:\n  name: acme\n  colour: blue\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(f, environ={})
    assert str(err.value) == f"{f}:3: provider.colour: unknown key"


def test_bad_yaml_names_line(tmp_path: Path) -> None:
    f = tmp_path / "hegui.yaml"
    f.write_text("provider:\n  name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"hegui\.yaml:\d+: invalid YAML"):
        load_config(f, environ={})


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("/nonexistent/hegui.yaml", environ={})


def test_relative_paths_resolve_against_file(tmp_path: Path) -> None:
    f = tmp_path / "hegui.yaml"
    f.write_text("policy: policy.yaml\n", encoding="utf-8")
    cfg = load_config(f, environ={})
    assert cfg.resolve_path(cfg.policy or "") == tmp_path / "policy.yaml"
