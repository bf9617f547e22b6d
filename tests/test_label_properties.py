"""Property tests: the label record round-trips, and writing a label never changes the content digest."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from hegui.labeling import documents as docs
from hegui.labeling.metadata import FIELDS, AIGCLabel, LabelFormatError, charset_problem

ALLOWED = st.text(
    alphabet=st.sampled_from([chr(c) for c in [0x21, *range(0x23, 0x5C), *range(0x5D, 0x7F)]]),
    min_size=1,
    max_size=40,
)
LABEL_JSON = AIGCLabel("1", "acme", "0123abcd", "h1.x", "acme", "0123abcd", "").to_json()


@given(
    st.sampled_from(["1", "2", "3"]),
    ALLOWED,
    ALLOWED,
    st.lists(ALLOWED | st.just(""), min_size=4, max_size=4),
)
def test_record_round_trips_in_order(label: str, producer: str, pid: str, rest: list[str]) -> None:
    lab = AIGCLabel(label, producer, pid, rest[0], rest[1], rest[2], rest[3])
    lab.validate()
    text = lab.to_json()
    assert AIGCLabel.from_json(text) == lab
    assert list(json.loads(text)["AIGC"]) == list(FIELDS)
    assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)  # compact


@given(st.text(max_size=30))
def test_charset_check_agrees_with_the_definition(value: str) -> None:
    ok = all(ord(c) == 0x21 or 0x23 <= ord(c) <= 0x5B or 0x5D <= ord(c) <= 0x7E for c in value)
    assert (charset_problem(value) is None) == ok
    if not ok:
        try:
            AIGCLabel("1", "a", value or "x", reserved_code2=value).validate()
        except LabelFormatError as exc:
            assert "ReservedCode2" in str(exc) or "ProduceID" in str(exc)
        else:
            raise AssertionError("validate accepted a bad value")


def _same_digest(kind: docs.DocKind, text: str) -> None:
    original = docs.digest_bytes(text.encode("utf-8"), "x", kind)
    once = docs.embed_label(text.encode("utf-8"), LABEL_JSON, "x", kind)
    assert docs.digest_bytes(once, "x", kind) == original
    twice = docs.embed_label(once, LABEL_JSON.replace("0123abcd", "ffff"), "x", kind)
    assert docs.digest_bytes(twice, "x", kind) == original
    assert docs._split(twice, "x", kind)[1] is not None


@settings(max_examples=150)
@given(st.text(max_size=200).filter(lambda t: "AIGC" not in t))
def test_plain_text_label_leaves_digest(text: str) -> None:
    _same_digest("plain", text)


@settings(max_examples=150)
@given(st.text(max_size=200).filter(lambda t: "AIGC" not in t and not t.startswith("---")))
def test_markdown_label_leaves_digest(text: str) -> None:
    _same_digest("markdown", text)


@settings(max_examples=150)
@given(st.text(max_size=200).filter(lambda t: "aigc" not in t.lower()))
def test_html_label_leaves_digest(text: str) -> None:
    _same_digest("html", text)


def _labelled_images() -> dict[str, bytes]:
    import io

    import numpy as np
    from PIL import Image

    from hegui.labeling.image import embed_label

    img = Image.fromarray(np.random.default_rng(5).integers(0, 256, (24, 32, 3), dtype=np.uint8))
    out = {}
    for fmt, params in (("PNG", {}), ("JPEG", {}), ("WEBP", {"lossless": True}), ("WEBP", {"quality": 80})):
        buf = io.BytesIO()
        img.save(buf, fmt, **params)
        out[f"{fmt}{params}"] = embed_label(buf.getvalue(), LABEL_JSON, "x")
    return out


IMAGES = _labelled_images()


@settings(max_examples=200)
@given(st.sampled_from(sorted(IMAGES)), st.data())
def test_damaged_images_fail_only_with_label_format_error(name: str, data: st.DataObject) -> None:
    from hegui.labeling.image import content_digest_bytes, embed_label, read_labels

    blob = bytearray(IMAGES[name])
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 4))):
            pos = data.draw(st.integers(0, len(blob) - 1))
            blob[pos] = data.draw(st.integers(0, 255))
    for op in (
        lambda b: read_labels(b, "x"),
        lambda b: embed_label(b, LABEL_JSON, "x"),
        lambda b: content_digest_bytes(b, "x"),
    ):
        try:
            op(bytes(blob))
        except LabelFormatError as exc:
            assert str(exc).startswith("x: ") and "\n" not in str(exc)


def _docx() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "[Content_Types].xml",
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"></Types>',
        )
        z.writestr(
            "_rels/.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"></Relationships>',
        )
        z.writestr(
            "word/document.xml",
            '<w:document xmlns:w="w"><w:body><w:p><w:r><w:t>'
            + "文字" * 50
            + "</w:t></w:r></w:p></w:body></w:document>",
        )
    return docs.embed_label(buf.getvalue(), LABEL_JSON, "x", "docx")


DOCX = _docx()


@settings(max_examples=200)
@given(st.data())
def test_damaged_docx_fails_only_with_label_format_error(data: st.DataObject) -> None:
    blob = bytearray(DOCX)
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 4))):
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    for op in (
        lambda b: docs.embed_label(b, LABEL_JSON, "x", "docx"),
        lambda b: docs.digest_bytes(b, "x", "docx"),
        lambda b: docs.apply_explicit(b, "x", "docx", "AI生成", ""),
    ):
        try:
            op(bytes(blob))
        except LabelFormatError as exc:
            assert str(exc).startswith("x: ") and "\n" not in str(exc)
