"""Labelled examples for training and evaluation, read from JSONL.

One JSON object a line: ``text`` (str), ``label`` (1 unsafe / 0 safe) and optional ``tc260``
(risk codes, ``|``-separated, any spelling :func:`hegui.taxonomy.normalize_code` accepts), ``source``,
``kind``, ``id``, ``split``, ``prompt`` (the question an answer belongs to). A bad line raises :class:`UserError` naming ``file:line`` and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hegui import taxonomy
from hegui.errors import UserError


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: int
    codes: tuple[str, ...] = ()
    """Normalised risk codes (``A2d``) or category codes (``A2``) from ``tc260``."""
    source: str = ""
    kind: str = ""
    id: str = ""
    split: str = ""
    prompt: str = ""
    """For an answer (``kind`` = ``response``): the question it answers, when the source has it."""


def parse_codes(raw: object, where: str) -> tuple[str, ...]:
    if raw is None or raw == "":
        return ()
    if isinstance(raw, list):
        parts = [str(p) for p in raw]
    elif isinstance(raw, str):
        parts = raw.split("|")
    else:
        raise UserError(f"{where}: field 'tc260' must be a string or a list of risk codes")
    out: list[str] = []
    for part in parts:
        part = part.strip()
        if not part:
            continue
        code = taxonomy.normalize_code(part)
        if not (taxonomy.is_known(code) or _is_category(code)):
            raise UserError(f"{where}: field 'tc260': unknown risk code {part!r}")
        if code not in out:
            out.append(code)
    return tuple(out)


def _is_category(code: str) -> bool:
    return len(code) == 2 and code in {c.value for c in taxonomy.Category}


def read_examples(path: str | Path, *, default_source: str | None = None) -> Iterator[Example]:
    """Yield the examples of one JSONL file; ``source`` defaults to the file's stem."""
    p = Path(path)
    src = default_source if default_source is not None else p.stem
    try:
        fh = p.open(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{p}: file not found") from None
    except OSError as exc:
        raise UserError(f"{p}: cannot read ({exc.strerror})") from None
    with fh:
        try:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                yield _parse_line(line, f"{p}:{lineno}", src)
        except UnicodeDecodeError:
            raise UserError(f"{p}: not UTF-8 text") from None


def _parse_line(line: str, where: str, default_source: str) -> Example:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: invalid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{where}: each line must be a JSON object")
    text = obj.get("text")
    if not isinstance(text, str):
        raise UserError(f"{where}: field 'text' is missing or not a string")
    label = obj.get("label")
    if isinstance(label, bool) or label not in (0, 1):
        raise UserError(f"{where}: field 'label' must be 0 (safe) or 1 (unsafe), got {label!r}")
    codes = parse_codes(obj.get("tc260"), where)
    return Example(
        text=text,
        label=int(label),
        codes=codes,
        source=str(obj.get("source") or default_source),
        kind=str(obj.get("kind") or ""),
        id=str(obj.get("id") or ""),
        split=str(obj.get("split") or ""),
        prompt=str(obj.get("prompt") or ""),
    )


def load_examples(paths: Iterable[str | Path]) -> list[Example]:
    out: list[Example] = []
    for p in paths:
        out.extend(read_examples(p))
    return out
