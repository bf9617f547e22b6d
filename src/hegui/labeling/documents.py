"""Text documents: DOCX, Markdown, HTML and plain text.

Implicit label per format (GB 45438 has a rule only for OOXML; the others follow vendor practice):

- **DOCX**: custom document property ``AIGC`` in ``docProps/custom.xml`` (the part, its content type
  and its package relationship are added when absent; other properties are kept).
- **Markdown**: YAML front matter key ``AIGC:`` (merged into existing front matter, line by line, so
  its other keys and comments stay as written).
- **HTML**: ``<meta name="AIGC" content='…'>`` in ``<head>``.
- **Plain text**: no rule exists. Default: a last line ``AIGC: {…}`` (``trailer``); or a sidecar
  ``FILE.aigc.json`` (``labeling.text.plain_implicit: sidecar``) that leaves the text untouched.

``content_digest`` covers the document without its label, so writing or replacing the label keeps
it, while editing the text changes it.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import zipfile
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from xml.etree import ElementTree as ET

import yaml
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from hegui.errors import UserError
from hegui.labeling.fileio import atomic_output, read_input, write_bytes_atomic
from hegui.labeling.metadata import AIGCLabel, LabelFormatError
from hegui.labeling.text import explicit_parts

if TYPE_CHECKING:
    from hegui.config import HeguiConfig

DocKind = Literal["docx", "markdown", "html", "plain"]
SUFFIX_KINDS: dict[str, DocKind] = {
    ".docx": "docx",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".txt": "plain",
    ".text": "plain",
}
PlainMode = Literal["trailer", "sidecar"]
SIDECAR_SUFFIX = ".aigc.json"


def kind_of(path: Path) -> DocKind:
    kind = SUFFIX_KINDS.get(Path(path).suffix.lower())
    if kind is None:
        raise UserError(f"{path}: not a text document hegui labels (.txt, .md, .html, .docx)")
    return kind


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LabelFormatError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _sha(text: str) -> bytes:
    return hashlib.sha256(text.rstrip("\r\n").encode("utf-8")).digest()


def _normalise_json(raw: str, name: str) -> str:
    try:
        return AIGCLabel.from_json(raw).to_json()
    except LabelFormatError as exc:
        raise LabelFormatError(f"{name}: {exc}") from None


# --- plain text ---------------------------------------------------------------------------------

_TRAILER = re.compile(r"(?:\r?\n)?AIGC: (\{[^\r\n]*\})[ \t]*(?:\r?\n)?\Z")


def _plain_split(text: str) -> tuple[str, str | None]:
    m = _TRAILER.search(text)
    if m and (m.start() == 0 or text[m.start()] in "\r\n"):
        return text[: m.start()], m.group(1)
    return text, None


def _plain_embed(text: str, label_json: str) -> str:
    body, _old = _plain_split(text)
    nl = _newline(body)
    return body.rstrip("\r\n") + nl + "AIGC: " + label_json + nl


# --- Markdown -----------------------------------------------------------------------------------

_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)(?:^|\r?\n)(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)
_TOP_KEY = re.compile(r"^AIGC\s*:")


def _front_matter(text: str) -> tuple[str, str, str] | None:
    """(opening, yaml body, rest) when ``text`` starts with a YAML mapping front matter."""
    m = _FRONT.match(text)
    if not m:
        return None
    try:
        data = yaml.safe_load(m.group(1))
    except yaml.YAMLError:
        return None
    if data is not None and not isinstance(data, dict):
        return None
    return text[: m.start(1)], m.group(1), text[m.end(1) :]


def _drop_key(lines: list[str]) -> list[str]:
    """Front-matter lines without the top-level ``AIGC`` key and its continuation lines."""
    out: list[str] = []
    skipping = False
    for line in lines:
        if _TOP_KEY.match(line):
            skipping = True
            continue
        if skipping and (line[:1] in (" ", "\t") or not line.strip()):
            continue
        skipping = False
        out.append(line)
    return out


def _md_split(text: str) -> tuple[str, str | None]:
    """(text without the label, label JSON or None)."""
    fm = _front_matter(text)
    if fm is None:
        return text, None
    opening, body, rest = fm
    data = yaml.safe_load(body) or {}
    raw = data.get("AIGC")
    found: str | None
    if raw is None:
        found = None
    elif isinstance(raw, dict):
        found = json.dumps(raw if set(raw) != {"AIGC"} else raw["AIGC"], ensure_ascii=False)
    else:
        found = str(raw)
    kept = "".join(_drop_key(body.splitlines(keepends=True)))
    if found is not None and not kept.strip():
        # The front matter held only the label (hegui added it): the content is what follows it.
        rest = re.sub(r"\A\r?\n?(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", "", rest, count=1)
        return rest, found
    if found is not None:
        kept = kept.rstrip("\r\n")
    return opening + kept + rest, found


def _md_embed(text: str, label_json: str) -> str:
    entry = yaml.safe_dump({"AIGC": label_json}, allow_unicode=True, width=1 << 30).rstrip("\n")
    fm = _front_matter(text)
    nl = _newline(text)
    if fm is None:
        return f"---{nl}{entry}{nl}---{nl}{text}"
    opening, body, rest = fm
    kept = "".join(_drop_key(body.splitlines(keepends=True)))
    if kept and not kept.endswith("\n"):
        kept += nl
    return (
        opening + kept + entry + rest
        if rest.startswith(("\n", "\r\n"))
        else opening + kept + entry + nl + rest
    )


# --- HTML ---------------------------------------------------------------------------------------

_META = re.compile(r"<meta\b[^>]*\bname\s*=\s*(?:\"AIGC\"|'AIGC'|AIGC\b)[^>]*>", re.I)
_HEAD = re.compile(r"<head\b[^>]*>", re.I)
_HTML = re.compile(r"<html\b[^>]*>", re.I)
_DOCTYPE = re.compile(r"\A\s*<!doctype[^>]*>", re.I)


class _MetaFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta" and self.found is None:
            d = {k.lower(): v for k, v in attrs}
            if (d.get("name") or "").upper() == "AIGC" and d.get("content") is not None:
                self.found = d["content"]


def _html_split(text: str) -> tuple[str, str | None]:
    finder = _MetaFinder()
    finder.feed(text)
    finder.close()
    return _META.sub("", text), finder.found


def _html_meta(label_json: str) -> str:
    value = html.escape(label_json, quote=False).replace("'", "&#39;")
    return f"<meta name=\"AIGC\" content='{value}'>"


def _html_embed(text: str, label_json: str) -> str:
    meta = _html_meta(label_json)
    if _META.search(text):
        first = True

        def keep_first(_m: re.Match[str]) -> str:
            nonlocal first
            out = meta if first else ""
            first = False
            return out

        return _META.sub(keep_first, text)
    if m := _HEAD.search(text):
        return text[: m.end()] + meta + text[m.end() :]
    if m := _HTML.search(text):
        return text[: m.end()] + "<head>" + meta + "</head>" + text[m.end() :]
    m = _DOCTYPE.match(text)
    at = m.end() if m else 0
    return text[:at] + meta + text[at:]


def _html_explicit(text: str, prefix: str, suffix: str) -> str:
    def para(label: str) -> str:
        return f'<p class="aigc-label">{html.escape(label)}</p>'

    if prefix:
        m = re.search(r"<body\b[^>]*>", text, re.I)
        at = m.end() if m else _after_head(text)
        text = text[:at] + para(prefix) + text[at:]
    if suffix:
        m = re.search(r"</body\s*>", text, re.I)
        at = m.start() if m else len(text.rstrip())
        text = text[:at] + para(suffix) + text[at:]
    return text


def _after_head(text: str) -> int:
    m = re.search(r"</head\s*>", text, re.I)
    if m:
        return m.end()
    m = _HTML.search(text) or _DOCTYPE.match(text)
    return m.end() if m else 0


# --- DOCX ---------------------------------------------------------------------------------------

CUSTOM_PART = "docProps/custom.xml"
CUSTOM_NS = "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"
VT_NS = "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"
CUSTOM_CT = "application/vnd.openxmlformats-officedocument.custom-properties+xml"
CUSTOM_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties"
FMTID = "{D5CDD505-2E9C-101B-9397-08002B2CF9AE}"
_METADATA_PARTS = ("[Content_Types].xml", "_rels/.rels")


def _part_text(data: bytes, name: str, part: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LabelFormatError(f"{name}: {part} is not UTF-8 ({exc.reason} at byte {exc.start})") from None


def _open_zip(data: bytes, name: str) -> zipfile.ZipFile:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        bad = zf.testzip()
    except zipfile.BadZipFile as exc:
        raise LabelFormatError(f"{name}: not a DOCX file (broken or truncated ZIP: {exc})") from None
    except (zipfile.LargeZipFile, zlib.error, OSError, EOFError, ValueError, KeyError) as exc:
        raise LabelFormatError(f"{name}: corrupt DOCX ({exc})") from None
    except (NotImplementedError, RuntimeError) as exc:  # encrypted parts, unknown compression
        raise LabelFormatError(f"{name}: unsupported DOCX ({exc})") from None
    if bad is not None:
        raise LabelFormatError(f"{name}: corrupt DOCX (bad CRC in {bad})")
    if "[Content_Types].xml" not in zf.namelist() or "word/document.xml" not in zf.namelist():
        raise LabelFormatError(f"{name}: not a Word document (no [Content_Types].xml or word/document.xml)")
    return zf


def _parse_xml(data: bytes, what: str) -> ET.Element:
    try:
        root: ET.Element = SafeET.fromstring(data)
    except (ET.ParseError, DefusedXmlException) as exc:
        raise LabelFormatError(f"{what}: not well-formed XML ({exc})") from None
    return root


def _custom_xml(old: bytes | None, label_json: str, name: str) -> bytes:
    """custom.xml with one ``AIGC`` property; edited as text so every other property stays byte-identical."""

    def prop_xml(prefix: str, pid: int) -> str:
        return (
            f'<{prefix}property fmtid="{FMTID}" pid="{pid}" name="AIGC">'
            f'<vt:lpwstr xmlns:vt="{VT_NS}">{html.escape(label_json, quote=False)}</vt:lpwstr></{prefix}property>'
        )

    if not old:
        return (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<Properties xmlns="{CUSTOM_NS}" xmlns:vt="{VT_NS}">' + prop_xml("", 2) + "</Properties>"
        ).encode("utf-8")
    root = _parse_xml(old, f"{name}: {CUSTOM_PART}")
    if root.tag != f"{{{CUSTOM_NS}}}Properties":
        raise LabelFormatError(f"{name}: {CUSTOM_PART} is not a custom-properties part")
    text = _part_text(old, name, CUSTOM_PART)
    m = re.search(r"<(\w+:)?Properties\b", text)
    prefix = (m.group(1) or "") if m else ""
    p = re.escape(prefix)
    text = re.sub(
        rf"<{p}property\b[^>]*\bname\s*=\s*[\"']AIGC[\"'][^>]*?(?:/>|>.*?</{p}property\s*>)",
        "",
        text,
        flags=re.S,
    )
    pids = [int(x) for x in re.findall(rf"<{p}property\b[^>]*\bpid\s*=\s*[\"'](\d+)[\"']", text)]
    new = prop_xml(prefix, max([1, *pids]) + 1)
    closing = re.search(rf"</{p}Properties\s*>", text)
    if closing is None:
        text = re.sub(
            rf"<{p}Properties\b([^>]*?)/>",
            rf"<{prefix}Properties\1>{new}</{prefix}Properties>",
            text,
            count=1,
        )
    else:
        text = text[: closing.start()] + new + text[closing.start() :]
    _parse_xml(text.encode("utf-8"), f"{name}: {CUSTOM_PART} (after edit)")
    return text.encode("utf-8")


def _custom_read(data: bytes, name: str) -> str | None:
    root = _parse_xml(data, f"{name}: {CUSTOM_PART}")
    for prop in root.findall(f"{{{CUSTOM_NS}}}property"):
        if prop.get("name") == "AIGC":
            for child in prop:
                return child.text or ""
    return None


def _insert_before_close(text: str, tag: str, item: str, name: str, part: str) -> str:
    """``item`` added as the last child of the root element ``tag`` (kept as text: formatting stays)."""
    close = text.rfind(f"</{tag}>")
    if close >= 0:
        return text[:close] + item + text[close:]
    m = re.search(rf"<{tag}\b([^>]*?)\s*/>", text)
    if m:
        return text[: m.start()] + f"<{tag}{m.group(1)}>{item}</{tag}>" + text[m.end() :]
    raise LabelFormatError(f"{name}: {part} has no <{tag}> element")


def _content_types(data: bytes, name: str) -> bytes:
    text = _part_text(data, name, "[Content_Types].xml")
    _parse_xml(data, f"{name}: [Content_Types].xml")
    if re.search(r"PartName\s*=\s*[\"']/docProps/custom\.xml[\"']", text):
        return data
    override = f'<Override PartName="/{CUSTOM_PART}" ContentType="{CUSTOM_CT}"/>'
    return _insert_before_close(text, "Types", override, name, "[Content_Types].xml").encode("utf-8")


def _package_rels(data: bytes | None, name: str) -> bytes:
    if data is None:
        text = (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"></Relationships>'
        )
    else:
        text = _part_text(data, name, "_rels/.rels")
        _parse_xml(data, f"{name}: _rels/.rels")
    if re.search(r"Target\s*=\s*[\"']/?docProps/custom\.xml[\"']", text):
        return text.encode("utf-8")
    ids = set(re.findall(r"Id\s*=\s*[\"']([^\"']+)[\"']", text))
    n = 1
    while f"rIdAIGC{n}" in ids:
        n += 1
    rel = f'<Relationship Id="rIdAIGC{n}" Type="{CUSTOM_REL}" Target="{CUSTOM_PART}"/>'
    return _insert_before_close(text, "Relationships", rel, name, "_rels/.rels").encode("utf-8")


def _w_paragraph(text: str) -> str:
    return f'<w:p><w:r><w:t xml:space="preserve">{html.escape(text, quote=False)}</w:t></w:r></w:p>'


def _docx_explicit(document_xml: bytes, prefix: str, suffix: str, name: str) -> bytes:
    text = _part_text(document_xml, name, "word/document.xml")
    body = re.search(r"<w:body\b[^>]*>", text)
    end = text.rfind("</w:body>")
    if body is None or end < 0:
        raise LabelFormatError(f"{name}: word/document.xml has no <w:body>; cannot add the explicit label")
    if suffix:
        last_block = max(
            text.rfind("</w:p>", 0, end), text.rfind("</w:tbl>", 0, end), text.rfind("</w:sdt>", 0, end)
        )
        sect = re.compile(r"<w:sectPr[\s>]").search(text, max(last_block, body.end()), end)
        at = sect.start() if sect else end
        text = text[:at] + _w_paragraph(suffix) + text[at:]
    if prefix:
        text = text[: body.end()] + _w_paragraph(prefix) + text[body.end() :]
    return text.encode("utf-8")


def _docx_rewrite(data: bytes, name: str, replace: dict[str, bytes]) -> bytes:
    zf = _open_zip(data, name)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in zf.infolist():
            content = replace.pop(info.filename, None)
            dst.writestr(
                info, zf.read(info) if content is None else content, compress_type=info.compress_type
            )
        for part, content in replace.items():
            dst.writestr(part, content, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _docx_embed(data: bytes, label_json: str, name: str) -> bytes:
    zf = _open_zip(data, name)
    names = set(zf.namelist())
    old_custom = zf.read(CUSTOM_PART) if CUSTOM_PART in names else None
    replace = {
        CUSTOM_PART: _custom_xml(old_custom, label_json, name),
        "[Content_Types].xml": _content_types(zf.read("[Content_Types].xml"), name),
        "_rels/.rels": _package_rels(zf.read("_rels/.rels") if "_rels/.rels" in names else None, name),
    }
    return _docx_rewrite(data, name, replace)


def _docx_read(data: bytes, name: str) -> str | None:
    zf = _open_zip(data, name)
    if CUSTOM_PART not in zf.namelist():
        return None
    return _custom_read(zf.read(CUSTOM_PART), name)


def _docx_digest(data: bytes, name: str) -> bytes:
    zf = _open_zip(data, name)
    h = hashlib.sha256(b"hegui-docx-v1")
    for part in sorted(zf.namelist()):
        if part.startswith("docProps/") or part in _METADATA_PARTS:
            continue
        h.update(part.encode("utf-8") + b"\x00")
        h.update(hashlib.sha256(zf.read(part)).digest())
    return h.digest()


# --- the format trio ----------------------------------------------------------------------------


def embed_label(data: bytes, label_json: str, name: str, kind: DocKind) -> bytes:
    """``data`` with the implicit label (trailer mode for plain text)."""
    label_json = _normalise_json(label_json, name)
    if kind == "docx":
        return _docx_embed(data, label_json, name)
    text = _decode(data, name)
    if kind == "markdown":
        return _md_embed(text, label_json).encode("utf-8")
    if kind == "html":
        return _html_embed(text, label_json).encode("utf-8")
    return _plain_embed(text, label_json).encode("utf-8")


def _split(data: bytes, name: str, kind: DocKind) -> tuple[str, str | None]:
    text = _decode(data, name)
    if kind == "markdown":
        return _md_split(text)
    if kind == "html":
        return _html_split(text)
    return _plain_split(text)


def digest_bytes(data: bytes, name: str, kind: DocKind) -> bytes:
    if kind == "docx":
        return _docx_digest(data, name)
    return _sha(_split(data, name, kind)[0])


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def write_label(src: Path, dst: Path, label_json: str, *, plain_mode: PlainMode | None = None) -> None:
    """Copy ``src`` to ``dst`` with the implicit label.

    Plain text: ``plain_mode``, or by default where ``src`` keeps its label (a sidecar stays a
    sidecar), else a trailer line.
    """
    src, dst = Path(src), Path(dst)
    kind = kind_of(src)
    data = read_input(src)
    if kind == "plain" and plain_mode is None:
        has_trailer = _plain_split(_decode(data, str(src)))[1] is not None
        plain_mode = "sidecar" if not has_trailer and sidecar_path(src).is_file() else "trailer"
    if kind == "plain" and plain_mode == "sidecar":
        label_json = _normalise_json(label_json, str(src))
        body, _old = _plain_split(_decode(data, str(src)))
        with atomic_output(dst) as tmp, atomic_output(sidecar_path(dst)) as side:
            tmp.write_bytes(body.encode("utf-8"))
            side.write_text(label_json + "\n", encoding="utf-8")
        return
    write_bytes_atomic(dst, embed_label(data, label_json, str(src), kind))


def read_label(path: Path) -> str | None:
    """The label JSON in the document (for plain text: its trailer, else its sidecar), or None."""
    path = Path(path)
    kind = kind_of(path)
    data = read_input(path)
    if kind == "docx":
        return _docx_read(data, str(path))
    _body, found = _split(data, str(path), kind)
    if found is None and kind == "plain":
        side = sidecar_path(path)
        if side.is_file():
            found = _decode(read_input(side), str(side)).strip()
    return found


def content_digest(path: Path) -> bytes:
    """SHA-256 of the document without its label (DOCX: the package parts outside docProps)."""
    path = Path(path)
    kind = kind_of(path)
    return digest_bytes(read_input(path), str(path), kind)


# --- labelling ----------------------------------------------------------------------------------


def apply_explicit(data: bytes, name: str, kind: DocKind, prefix: str, suffix: str) -> bytes:
    """The document with the explicit text label at its start and/or end."""
    if not prefix and not suffix:
        return data
    if kind == "docx":
        zf = _open_zip(data, name)
        doc = _docx_explicit(zf.read("word/document.xml"), prefix, suffix, name)
        return _docx_rewrite(data, name, {"word/document.xml": doc})
    text = _decode(data, name)
    if kind == "html":
        return _html_explicit(text, prefix, suffix).encode("utf-8")
    nl = _newline(text)
    head, body = "", text
    if kind == "markdown" and (fm := _front_matter(text)):
        opening, fm_body, rest = fm
        m = re.match(r"\r?\n?(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", rest)
        cut = m.end() if m else 0
        head, body = opening + fm_body + rest[:cut], rest[cut:]
    sep = nl + nl if kind == "markdown" else nl
    if prefix:
        body = prefix + sep + body
    if suffix:
        body = body.rstrip("\r\n") + sep + suffix + nl
    return (head + body).encode("utf-8")


def label_document(
    src: Path,
    dst: Path,
    cfg: HeguiConfig,
    label: AIGCLabel,
    *,
    explicit: bool | None = None,
) -> AIGCLabel:
    """Explicit label (unless off), then the implicit label signed over the result; writes ``dst``."""
    from hegui.labeling.signing import load_signing_key, sign

    src, dst = Path(src), Path(dst)
    kind = kind_of(dst)
    if kind_of(src) != kind:
        raise UserError(f"{dst}: must have the same kind of suffix as {src} (no format conversion)")
    data = read_input(src)
    prefix, suffix = explicit_parts(
        cfg.labeling.text, cfg.labeling.explicit if explicit is None else explicit
    )
    body = apply_explicit(data, str(src), kind, prefix, suffix)
    plain_mode: PlainMode = cfg.labeling.text.plain_implicit
    if kind == "plain" and plain_mode == "sidecar":
        digest = digest_bytes(body, str(src), kind)
        final = sign(label, digest, load_signing_key(cfg))
        final.validate()
        with atomic_output(dst) as tmp, atomic_output(sidecar_path(dst)) as side:
            tmp.write_bytes(_plain_split(_decode(body, str(src)))[0].encode("utf-8"))
            side.write_text(final.to_json() + "\n", encoding="utf-8")
        return final
    # Embed a placeholder first: the digest is of the document as it will be, minus the label.
    staged = embed_label(body, label.to_json(), str(src), kind)
    final = sign(label, digest_bytes(staged, str(src), kind), load_signing_key(cfg))
    final.validate()
    write_bytes_atomic(dst, embed_label(staged, final.to_json(), str(src), kind))
    return final


def describe() -> dict[str, Any]:
    """Where each document kind keeps its implicit label (for ``--help`` and docs)."""
    return {
        "docx": f"custom property AIGC in {CUSTOM_PART}",
        "markdown": "YAML front matter key AIGC",
        "html": '<meta name="AIGC" content=…> in <head>',
        "plain": "last line 'AIGC: {…}' (or FILE.aigc.json with labeling.text.plain_implicit: sidecar)",
    }


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head", "title"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head", "title") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def visible_text(data: bytes, name: str, kind: DocKind) -> str:
    """The document's text as a reader sees it (no label metadata, markup or front matter)."""
    if kind == "docx":
        zf = _open_zip(data, name)
        xml = zf.read("word/document.xml").decode("utf-8", "replace")
        paragraphs = re.findall(r"<w:p[\s>].*?</w:p>", xml, re.S)
        return "\n".join(
            html.unescape("".join(re.findall(r"<w:t(?:\s[^>]*)?>([^<]*)</w:t>", p))) for p in paragraphs
        ).strip()
    body, _found = _split(data, name, kind)
    if kind == "html":
        collector = _TextCollector()
        collector.feed(body)
        collector.close()
        return "".join(collector.parts).strip()
    if kind == "markdown" and (fm := _front_matter(body)):
        rest = fm[2]
        m = re.match(r"\r?\n?(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", rest)
        body = rest[m.end() if m else 0 :]
    return body.strip()


def explicit_label_in_file(path: Path, cfg: HeguiConfig) -> bool:
    """Does the document start with ``labeling.text.prefix`` / end with ``suffix`` as configured?"""
    path = Path(path)
    kind = kind_of(path)
    text = visible_text(read_input(path), str(path), kind)
    prefix, suffix = explicit_parts(cfg.labeling.text, True)
    ok = True
    if prefix:
        ok = ok and text.startswith(prefix)
    if suffix:
        ok = ok and text.endswith(suffix)
    return ok
