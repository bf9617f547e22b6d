"""Docs move with code: every config key and every CLI command must be documented (as Datasette does)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main
from pydantic import BaseModel

from hegui.cli import app
from hegui.config import HeguiConfig

DOCS = Path(__file__).resolve().parents[1] / "docs"


def config_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        keys.append(path)
        ann = field.annotation
        inner = getattr(ann, "__args__", None)
        candidates = [ann, *(inner or ())]
        for c in candidates:
            if isinstance(c, type) and issubclass(c, BaseModel):
                keys.extend(config_keys(c, f"{path}."))
                break
    return keys


def docs_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.glob("**/*.md")))


def test_every_config_key_is_documented() -> None:
    text = docs_text()
    missing = [k for k in config_keys(HeguiConfig) if f"`{k}`" not in text]
    assert not missing, f"config keys not documented in docs/*.md (as `key`): {missing}"


def cli_commands() -> list[str]:
    root = typer.main.get_command(app)
    out: list[str] = []

    def walk(cmd: Any, prefix: str) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, f"{prefix} {name}".strip())
        else:
            out.append(prefix)

    walk(root, "")
    return out


def test_every_cli_command_is_documented() -> None:
    text = docs_text()
    missing = [c for c in cli_commands() if not re.search(rf"hegui {re.escape(c)}\b", text)]
    assert not missing, f"CLI commands not documented in docs/*.md: {missing}"


def test_every_command_has_help() -> None:
    root = typer.main.get_command(app)
    assert hasattr(root, "commands")  # typer vendors click: duck-type its Group and Option

    def walk(cmd: Any, name: str) -> None:
        assert (cmd.help or "").strip(), f"`hegui {name}` has no help text"
        for p in cmd.params:
            if p.param_type_name == "option":
                assert (p.help or "").strip(), f"`hegui {name}` option {p.opts} has no help text"
        if hasattr(cmd, "commands"):
            for sub_name, sub in cmd.commands.items():
                walk(sub, f"{name} {sub_name}".strip())

    for sub_name, sub in root.commands.items():
        walk(sub, sub_name)
