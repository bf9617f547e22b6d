"""Load YAML while remembering where each value came from, so errors can say ``file:line``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from hegui.errors import ConfigError

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


class LocatedYaml:
    """Parsed YAML data plus a map from a key path to its 1-based line number."""

    def __init__(self, source: str, data: Any, lines: dict[Loc, int]) -> None:
        self.source = source
        self.data = data
        self.lines = lines

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest known prefix of ``loc`` (pydantic locs may go deeper than YAML)."""
        probe = tuple(loc)
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            probe = probe[:-1]
        return self.lines.get((), None)

    def where(self, loc: Loc) -> str:
        line = self.line_of(loc)
        return f"{self.source}:{line}" if line else self.source


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            child = (*loc, key)
            lines[child] = key_node.start_mark.line + 1
            _walk(value_node, child, lines)
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*loc, i), lines)


def parse_yaml(text: str, source: str) -> LocatedYaml:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}{line}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    lines: dict[Loc, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return LocatedYaml(source, data, lines)


def load_yaml(path: str | Path) -> LocatedYaml:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror})") from None
    return parse_yaml(text, str(p))


def validate(model: type[M], located: LocatedYaml, prefix: Loc = ()) -> M:
    """Validate ``located.data`` (or the part at ``prefix``) as ``model``; errors name file:line: field."""
    data = located.data if located.data is not None else {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, located, prefix)) from None


def format_validation_error(exc: ValidationError, located: LocatedYaml, prefix: Loc = ()) -> str:
    err = exc.errors()[0]
    loc: Loc = (*prefix, *(p for p in err["loc"] if not (isinstance(p, str) and "[" in p)))
    field = ".".join(str(p) for p in loc) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{located.where(loc)}: {field}: {msg}{more}"
