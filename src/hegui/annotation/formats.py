"""Reading annotation exports: CSV, JSON Lines, and Label Studio's JSON export.

Every format comes out as :class:`TaskIn` rows, each knowing where it came from (``file:row`` or
``file:line``) so a refusal can point at it.

CSV / JSONL columns (JSONL may use lists where CSV uses ``|``):

``item_id`` (required), ``text`` (required), ``labels`` (``|``-separated, or a JSON list),
``annotator`` (handle; several ``|``-separated), ``reviewer`` and ``verdict`` (``approved`` /
``rejected``; several reviews as aligned ``|`` lists, or in JSONL ``reviews: [{reviewer, verdict}]``),
``error`` and ``illegal`` (``true``/``false``, ``1``/``0``, ``yes``/``no``, empty = false).

Label Studio (JSON export, a list of tasks): ``item_id`` is ``data.item_id`` or else the task ``id``;
the text is ``data[annotation.label_studio_text_field]``; each annotation that was not cancelled
adds its ``completed_by`` as annotator and the values of its ``result[]`` (``choices``, ``labels``,
``taxonomy``, ``rectanglelabels``…) as labels; its ``reviews[]`` (or the task's) give reviewer
(``created_by``) and verdict (``accepted`` true → approved, false → rejected). Users are mapped to
handles with ``annotation.label_studio_handles`` (by numeric id or e-mail), else ``ls-<id>``;
e-mails are never stored. ``data.error`` / ``data.illegal`` give the flags.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hegui.annotation.config import AnnotationConfig
from hegui.errors import UserError

FORMATS: tuple[str, ...] = ("csv", "jsonl", "label-studio")
VERDICTS: tuple[str, ...] = ("approved", "rejected")
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"", "0", "false", "no", "n", "f"}


class ImportFormatError(UserError):
    pass


@dataclass
class TaskIn:
    where: str
    item_id: str
    text: str
    labels: list[Any] = field(default_factory=list)
    annotators: list[str] = field(default_factory=list)
    reviews: list[tuple[str, str]] = field(default_factory=list)
    error: bool = False
    illegal: bool = False


def guess_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "label-studio"
    raise ImportFormatError(f"{path}: cannot tell the format from the name; give --format csv|jsonl|label-studio")


def read_text(path: Path) -> tuple[str, bytes]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFormatError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return raw.decode("utf-8-sig"), raw
    except UnicodeDecodeError:
        raise ImportFormatError(f"{path}: not UTF-8 text") from None


def _flag(value: Any, where: str, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    s = str(value).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ImportFormatError(f"{where}: {name} {value!r} is not true/false")


def _split(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    s = str(value).strip()
    if s.startswith("["):
        try:
            parsed = json.loads(s)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list):
            return [str(v).strip() for v in parsed if str(v).strip()]
    return [p.strip() for p in s.split("|") if p.strip()]


def _verdict(value: str, where: str) -> str:
    v = value.strip().lower()
    if v not in VERDICTS:
        raise ImportFormatError(f"{where}: verdict {value!r}: approved or rejected")
    return v


def _from_mapping(row: dict[str, Any], where: str) -> TaskIn:
    item_id = str(row.get("item_id") or "").strip()
    if not item_id:
        raise ImportFormatError(f"{where}: item_id is missing")
    if len(item_id) > 128:
        raise ImportFormatError(f"{where}: item_id longer than 128 characters")
    text = row.get("text")
    if text is None or (isinstance(text, str) and text == ""):
        raise ImportFormatError(f"{where}: text is missing (item {item_id})")
    annotators = _split(row.get("annotator")) + _split(row.get("annotators"))
    if not annotators:
        raise ImportFormatError(f"{where}: annotator is missing (item {item_id})")
    reviews: list[tuple[str, str]] = []
    if isinstance(row.get("reviews"), list):
        for rv in row["reviews"]:
            if not isinstance(rv, dict) or not rv.get("reviewer"):
                raise ImportFormatError(f"{where}: reviews: each needs reviewer and verdict (item {item_id})")
            reviews.append((str(rv["reviewer"]).strip(), _verdict(str(rv.get("verdict", "")), where)))
    reviewers, verdicts = _split(row.get("reviewer")), _split(row.get("verdict"))
    if len(reviewers) != len(verdicts):
        raise ImportFormatError(f"{where}: {len(reviewers)} reviewer(s) but {len(verdicts)} verdict(s) "
                                f"(item {item_id})")
    reviews += [(r, _verdict(v, where)) for r, v in zip(reviewers, verdicts, strict=True)]
    labels = row.get("labels")
    return TaskIn(where, item_id, str(text), labels if isinstance(labels, list) else _split(labels),
                  annotators, reviews, _flag(row.get("error"), where, "error"),
                  _flag(row.get("illegal"), where, "illegal"))


def read_rows(path: Path, fmt: str) -> list[tuple[str, dict[str, Any]]]:
    """CSV rows or JSONL objects with their place (``file:row`` counts the header as row 1)."""
    text, _ = read_text(path)
    out: list[tuple[str, dict[str, Any]]] = []
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "item_id" not in reader.fieldnames:
            raise ImportFormatError(f"{path}:1: the CSV header must name item_id (and the other columns)")
        for i, row in enumerate(reader, start=2):
            out.append((f"{path}:{i}", {k.strip(): v for k, v in row.items() if k is not None}))
    elif fmt == "jsonl":
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ImportFormatError(f"{path}:{i}: invalid JSON: {exc.msg}") from None
            if not isinstance(obj, dict):
                raise ImportFormatError(f"{path}:{i}: each line must be a JSON object")
            out.append((f"{path}:{i}", obj))
    else:
        raise ImportFormatError(f"--format {fmt!r}: csv or jsonl here")
    return out


def _ls_user(user: Any, cfg: AnnotationConfig, where: str) -> str:
    if isinstance(user, dict):
        for key in (user.get("id"), user.get("email")):
            if key is not None and str(key) in cfg.label_studio_handles:
                return cfg.label_studio_handles[str(key)]
        if user.get("id") is None:
            raise ImportFormatError(f"{where}: a Label Studio user without an id")
        return f"ls-{user['id']}"
    if user is None or isinstance(user, bool):
        raise ImportFormatError(f"{where}: completed_by/created_by is missing")
    return cfg.label_studio_handles.get(str(user), f"ls-{user}")


def _ls_labels(result: Any) -> list[Any]:
    labels: list[Any] = []
    for r in result if isinstance(result, list) else []:
        value = r.get("value") if isinstance(r, dict) else None
        if not isinstance(value, dict):
            continue
        for key, v in value.items():
            if key in ("choices", "labels", "taxonomy") or key.endswith("labels"):
                for item in v if isinstance(v, list) else [v]:
                    # taxonomy values are paths (lists); keep them joined so a label stays one string
                    label = "/".join(map(str, item)) if isinstance(item, list) else item
                    if label not in labels:
                        labels.append(label)
    return labels


def read_label_studio(path: Path, cfg: AnnotationConfig) -> list[TaskIn]:
    text, _ = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    if not isinstance(data, list):
        raise ImportFormatError(f"{path}: a Label Studio JSON export is a list of tasks")
    out: list[TaskIn] = []
    for n, task in enumerate(data, start=1):
        where = f"{path}: task #{n}"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise ImportFormatError(f"{where}: not a Label Studio task (no data object)")
        tdata = task["data"]
        item_id = str(tdata.get("item_id") or task.get("id") or "").strip()
        if not item_id:
            raise ImportFormatError(f"{where}: neither data.item_id nor id")
        where = f"{path}: task {item_id}"
        body = tdata.get(cfg.label_studio_text_field)
        if not isinstance(body, str) or not body:
            raise ImportFormatError(f"{where}: data.{cfg.label_studio_text_field} is missing")
        annotators: list[str] = []
        labels: list[Any] = []
        reviews: list[tuple[str, str]] = []
        review_lists = [task.get("reviews")]
        for ann in task.get("annotations") or []:
            if not isinstance(ann, dict) or ann.get("was_cancelled"):
                continue
            handle = _ls_user(ann.get("completed_by"), cfg, where)
            if handle not in annotators:
                annotators.append(handle)
            labels += [lb for lb in _ls_labels(ann.get("result")) if lb not in labels]
            review_lists.append(ann.get("reviews"))
        for rl in review_lists:
            for rv in rl if isinstance(rl, list) else []:
                if not isinstance(rv, dict):
                    continue
                reviewer = _ls_user(rv.get("created_by"), cfg, where)
                reviews.append((reviewer, "approved" if rv.get("accepted") else "rejected"))
        if not annotators:
            raise ImportFormatError(f"{where}: no annotation that was not cancelled")
        out.append(TaskIn(where, item_id, body, labels, annotators, reviews,
                          _flag(tdata.get("error"), where, "error"), _flag(tdata.get("illegal"), where, "illegal")))
    return out


def read_tasks(path: Path, fmt: str, cfg: AnnotationConfig) -> list[TaskIn]:
    if fmt not in FORMATS:
        raise ImportFormatError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
    if fmt == "label-studio":
        tasks = read_label_studio(path, cfg)
    else:
        tasks = [_from_mapping(row, where) for where, row in read_rows(path, fmt)]
    if not tasks:
        raise ImportFormatError(f"{path}: no tasks")
    seen: dict[str, str] = {}
    for t in tasks:
        if t.item_id in seen:
            raise ImportFormatError(f"{t.where}: item {t.item_id} appears twice (first at {seen[t.item_id]})")
        seen[t.item_id] = t.where
    return tasks
